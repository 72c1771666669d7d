"""The store contract: one behaviour suite, run against the SQLite and the PostgreSQL engine
(same test ids, ``[sqlite]`` and ``[postgresql]``)."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest

from faceprint.errors import GalleryError, NotFoundError
from faceprint.gallery.database import Conflict, Database
from faceprint.gallery.store import NewTemplate, Store
from faceprint.match.search import ExactIndex
from tests.pgtools import opener_of, temp_database

ENGINES = ["sqlite", "postgresql"]


def unit(rng: np.random.Generator, n: int, d: int = 128) -> np.ndarray:
    v = rng.standard_normal((n, d)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def new(vectors: np.ndarray, hashes: list[str | None] | None = None) -> list[NewTemplate]:
    hashes = hashes or [None] * len(vectors)
    return [NewTemplate(v, h, 0.9) for v, h in zip(vectors, hashes, strict=True)]


@pytest.fixture(scope="module")
def pg_url() -> Iterator[str]:
    with temp_database() as url:
        yield url


Opener = Callable[[], Database]


@pytest.fixture(params=ENGINES)
def opener(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Opener]:
    """A function opening (another connection to) one fresh database of the engine."""
    with opener_of(request.param, tmp_path, request) as open_db:
        yield open_db


@pytest.fixture()
def store(opener: Opener) -> Store:
    return opener().collection("c", create=True)


def test_crud_and_persistence(store: Store, opener: Opener) -> None:
    rng = np.random.default_rng(1)
    store.add_templates("alice", new(unit(rng, 2)), pack="p1", metadata={"team": "a"})
    store.add_templates("bob", new(unit(rng, 3)), pack="p1")
    store.add_templates("alice", new(unit(rng, 1)), pack="p1")
    assert [(p.name, p.templates) for p in store.people()] == [("alice", 3), ("bob", 3)]
    store.update_person("bob", new_name="robert", metadata={"x": 1})
    again = opener().collection("c")
    assert again.get("robert").metadata == {"x": 1}
    assert again.get("alice").metadata == {"team": "a"}
    assert again.remove("alice") == 3
    assert [p.name for p in again.people()] == ["robert"] and len(again) == 1
    assert len(again.templates()) == 3


def test_not_found_is_one_error_type(store: Store) -> None:
    rng = np.random.default_rng(2)
    store.add_templates("alice", new(unit(rng, 1)), pack="p1")
    tid = store.templates()[0].id
    calls: list[Callable[[], object]] = [
        lambda: store.get("nobody"),
        lambda: store.remove("nobody"),
        lambda: store.templates("nobody"),
        lambda: store.update_person("nobody", new_name="x"),
        lambda: store.remove_template(10**9),
        lambda: store.remove_template(tid, person="nobody"),
        lambda: store.db.collection("missing"),
    ]
    for call in calls:
        with pytest.raises(NotFoundError):
            call()


def test_names_conflicts_and_bad_input(store: Store) -> None:
    rng = np.random.default_rng(3)
    store.add_templates("alice", new(unit(rng, 1)), pack="p1")
    store.add_person("bob")
    with pytest.raises(Conflict):
        store.add_person("bob")
    with pytest.raises(Conflict):
        store.update_person("bob", new_name="alice")
    for bad in ("", "   ", "a\x00b", "x" * 201, "tab\there"):
        with pytest.raises(GalleryError, match="invalid person name"):
            store.add_templates(bad, new(unit(rng, 1)), pack="p1")
    with pytest.raises(GalleryError, match="JSON"):
        store.add_person("carol", metadata={"f": float("nan")})
    assert [p.name for p in store.people()] == ["alice", "bob"]


def test_refuses_to_mix_packs_and_stores_nothing_of_a_failed_write(store: Store) -> None:
    rng = np.random.default_rng(4)
    store.add_templates("alice", new(unit(rng, 2)), pack="p1")
    with pytest.raises(GalleryError, match="refusing to mix"):
        store.add_templates("carol", new(unit(rng, 1)), pack="p2")
    with pytest.raises(GalleryError, match="refusing to mix"):
        store.add_templates("carol", new(unit(rng, 1, d=64)), pack="p1")
    bad = [*new(unit(rng, 2)), NewTemplate(np.full(128, np.nan, np.float32))]
    with pytest.raises(GalleryError, match="not finite"):
        store.add_templates("dave", bad, pack="p1")
    assert [p.name for p in store.people()] == ["alice"] and len(store.templates()) == 2


def test_a_photo_is_enrolled_once(store: Store) -> None:
    rng = np.random.default_rng(5)
    v = unit(rng, 3)
    first = store.add_templates("alice", new(v[:2], ["h1", "h2"]), pack="p1")
    again = store.add_templates("alice", new(v[:3], ["h1", "h2", "h3"]), pack="p1")
    assert len(first.ids) == 2 and len(again.ids) == 1 and again.already == ["h1", "h2"]
    with pytest.raises(Conflict, match="already enrolled as 'alice'"):
        store.add_templates("bob", new(v[:1], ["h1"]), pack="p1")
    assert store.has_image("h3") and not store.has_image("h9")
    assert len(store.templates()) == 3 and [p.name for p in store.people()] == ["alice"]


def test_concurrent_writers_store_a_photo_once(store: Store, opener: Opener) -> None:
    rng = np.random.default_rng(6)
    v = unit(rng, 20)
    hashes: list[str | None] = [f"photo{i}" for i in range(20)]
    stores = [opener().collection("c") for _ in range(3)]
    errors: list[BaseException] = []

    def run(s: Store) -> None:
        try:
            for i in range(20):
                s.add_templates("alice", new(v[i : i + 1], hashes[i : i + 1]), pack="p1")
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(s,)) for s in stores]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert sorted(t.image_sha256 or "" for t in store.templates()) == sorted(map(str, hashes))


def test_search_matches_brute_force_and_sees_other_writers(store: Store, opener: Opener) -> None:
    rng = np.random.default_rng(7)
    emb = unit(rng, 60)
    for i in range(20):
        store.add_templates(f"p{i:02d}", new(emb[3 * i : 3 * i + 3]), pack="p1")
    probes = emb[[0, 10, 59]] + 0.05 * unit(rng, 3)
    got = store.search(probes, k=3)
    ref = ExactIndex(emb, np.repeat(np.arange(20), 3)).search(probes, 3)
    assert [[c.name for c in row] for row in got] == [[f"p{h.person:02d}" for h in r] for r in ref]
    assert np.allclose([c.similarity for c in got[0]], [h.score for h in ref[0]], atol=1e-5)
    other = opener().collection("c")
    other.add_templates("newcomer", new(probes[:1]), pack="p1")
    assert store.search(probes[:1], k=1)[0][0].name == "newcomer"
    other.remove("newcomer")
    assert store.search(probes[:1], k=1)[0][0].name != "newcomer"


def test_empty_and_wrong_probes_are_errors(store: Store) -> None:
    with pytest.raises(GalleryError, match="empty"):
        store.search(np.ones((1, 128), np.float32))
    store.add_templates("a", new(unit(np.random.default_rng(8), 1)), pack="p1")
    with pytest.raises(GalleryError, match="dimensions"):
        store.search(np.ones((1, 64), np.float32))
    with pytest.raises(GalleryError, match="not finite"):
        store.search(np.full((1, 128), np.nan, np.float32))


def test_templates_are_unit_norm_and_round_trip(store: Store) -> None:
    raw = np.arange(1, 129, dtype=np.float32)
    store.add_templates("a", [NewTemplate(raw, "h", 0.5)], pack="p1")
    (t,) = store.templates("a")
    assert t.embedding.dtype == np.float32 and np.linalg.norm(t.embedding) == pytest.approx(1)
    assert np.allclose(t.embedding, raw / np.linalg.norm(raw), atol=1e-7)
    assert (t.name, t.pack, t.image_sha256, t.quality) == ("a", "p1", "h", 0.5)


def test_remove_template_of_a_person(store: Store) -> None:
    rng = np.random.default_rng(9)
    a = store.add_templates("alice", new(unit(rng, 2)), pack="p1")
    b = store.add_templates("bob", new(unit(rng, 1)), pack="p1")
    with pytest.raises(NotFoundError):
        store.remove_template(b.ids[0], person="alice")  # bob's template via alice: refused
    store.remove_template(a.ids[0], person="alice")
    assert [t.id for t in store.templates()] == [a.ids[1], b.ids[0]]


def test_settings_are_one_write(store: Store) -> None:
    store.set_settings({"threshold": "0.9", "threshold_fmr": "0.001"})
    assert store.setting("threshold") == "0.9" and store.setting("threshold_fmr") == "0.001"
    store.set_settings({"threshold": None})
    assert store.setting("threshold") is None and store.setting("nothing") is None


def test_collections_are_isolated(store: Store) -> None:
    rng = np.random.default_rng(10)
    db = store.db
    db.create_collection("other")
    other = db.collection("other")
    store.add_templates("alice", new(unit(rng, 2)), pack="p1")
    other.add_templates("alice", new(unit(rng, 1)), pack="p2")  # each collection its pack
    assert store.get("alice").templates == 2 and other.get("alice").templates == 1
    with pytest.raises(Conflict):
        db.create_collection("other")
    for bad in ("", "a b", "x" * 101, "a/b", "nul\x00"):
        with pytest.raises(GalleryError, match="invalid collection name"):
            db.create_collection(bad)
    names = {c.name: (c.people, c.templates) for c in db.collections()}
    assert names["c"] == (1, 2) and names["other"] == (1, 1)
    db.delete_collection("other")
    with pytest.raises(NotFoundError):
        other.get("alice")
    assert store.get("alice").templates == 2


def test_approximate_index_behind_the_same_interface(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("faiss")
    monkeypatch.setenv("FACEPRINT_INDEX", "ann")
    rng = np.random.default_rng(11)
    emb = unit(rng, 400)
    for i in range(100):
        store.add_templates(f"p{i}", new(emb[4 * i : 4 * i + 4]), pack="p1")
    probes = emb[::37] + 0.02 * unit(rng, len(emb[::37]))
    got = store.search(probes, k=1)
    assert [row[0].name for row in got] == [f"p{i // 4}" for i in range(0, 400, 37)]


def test_templates_encrypted_at_rest(opener: Opener, monkeypatch: pytest.MonkeyPatch) -> None:
    rng = np.random.default_rng(12)
    monkeypatch.setenv("FACEPRINT_TEMPLATE_KEY", os.urandom(32).hex())
    db = opener()
    store = db.collection("secret", create=True)
    emb = unit(rng, 4)
    store.add_templates("alice", new(emb[:2]), pack="p1")
    store.add_templates("bob", new(emb[2:]), pack="p1")
    assert db.codec.encrypted and store.search(emb[3:4], k=1)[0][0].name == "bob"
    assert np.allclose(store.templates("alice")[0].embedding, emb[0], atol=1e-6)
    with db.reading() as tx:
        blobs = [bytes(r[0]) for r in tx.execute("SELECT embedding FROM templates")]
    assert all(b.startswith(b"FPT1") for b in blobs)
    assert not any(e.astype("<f4").tobytes() in b for b in blobs for e in emb)
    monkeypatch.setenv("FACEPRINT_TEMPLATE_KEY", os.urandom(32).hex())
    with pytest.raises(GalleryError, match="not the key"):
        opener()
    monkeypatch.delenv("FACEPRINT_TEMPLATE_KEY")
    with pytest.raises(GalleryError, match="templates are encrypted"):
        opener()


def test_a_damaged_template_is_a_gallery_error(store: Store) -> None:
    store.add_templates("a", new(unit(np.random.default_rng(13), 1)), pack="p1")
    with store.db.transaction() as tx:
        tx.execute("UPDATE templates SET embedding = %s", (b"12345",))
    with pytest.raises(GalleryError, match="damaged"):
        store.templates()
    with store.db.transaction() as tx:
        tx.execute("UPDATE people SET metadata = %s", ("{not json",))
    with pytest.raises(GalleryError, match="damaged"):
        store.people()
