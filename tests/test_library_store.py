"""The photo library's storage and decisions (faceprint.library.store / people / regroup /
sync) on both engines, with synthetic face templates (the real pipeline is tested through
the CLI in test_library_cli.py)."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest

from faceprint.errors import GalleryError, NotFoundError
from faceprint.gallery.database import Database
from faceprint.library import people
from faceprint.library.index import IndexReport, Plan, forget_gone
from faceprint.library.records import PhotoMeta, face_key
from faceprint.library.regroup import assign_pending, keep_ids, recluster
from faceprint.library.schema import COMPONENT
from faceprint.library.store import Library
from faceprint.library.view import listing
from faceprint.models.packs import DEFAULT_PACK
from faceprint.types import Box, Face
from tests.pgtools import opener_of, temp_database

Opener = Callable[[], Database]


@pytest.fixture(scope="module")
def pg_url() -> Iterator[str]:
    with temp_database() as url:
        yield url


@pytest.fixture(params=["sqlite", "postgresql"])
def opener(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Opener]:
    """Opens (another connection to) one fresh database of the engine, library included."""
    with opener_of(request.param, tmp_path, request, components=[COMPONENT]) as open_db:
        yield open_db


@pytest.fixture()
def lib(opener: Opener) -> Library:
    return Library(opener().collection("photos", create=True))


def centres(n: int, seed: int = 0) -> np.ndarray:
    c = np.random.default_rng(seed).normal(size=(n, DEFAULT_PACK.dim))
    return c / np.linalg.norm(c, axis=1, keepdims=True)


def sample(centre: np.ndarray, rng: np.random.Generator, spread: float = 0.15) -> np.ndarray:
    v = centre + spread * rng.normal(size=len(centre)) / len(centre) ** 0.5
    return (v / np.linalg.norm(v)).astype(np.float32)


def sha(name: str) -> str:
    return hashlib.sha256(name.encode()).hexdigest()


def add_photo(
    lib: Library, name: str, vectors: list[np.ndarray], quality: float = 0.9
) -> list[str]:
    """A photo file ``name`` with one face per vector (boxes side by side)."""
    faces = [
        Face(Box(10 + 200 * i, 20, 110 + 200 * i, 140), 0.99, np.zeros((5, 2), np.float32),
             embedding=v, pack=DEFAULT_PACK.id, quality=quality)
        for i, v in enumerate(vectors)
    ]  # fmt: skip
    with lib.store.write() as tx:
        keys = lib.add_photo(tx, PhotoMeta(sha(name), 1000, 800, None, 1.0e9), faces)
        lib.set_file(tx, f"/photos/{name}", 1, 1, sha(name))
    return [k for k in keys if k is not None]


def remove_photo(lib: Library, name: str) -> list[str]:
    """What indexing does when a file is gone (its faces and their templates go)."""
    with lib.db.reading() as tx:
        before = set(lib.faces(tx).keys)
    forget_gone(lib, Plan(removed=[f"/photos/{name}"]), IndexReport())
    with lib.db.reading() as tx:
        return sorted(before - set(lib.faces(tx).keys))


def build(lib: Library) -> dict[str, list[str]]:
    """Three people, four photos each, plus a photo of person 0 and 1 together."""
    rng = np.random.default_rng(1)
    c = centres(3)
    keys: dict[str, list[str]] = {}
    for p in range(3):
        for j in range(4):
            keys.setdefault(f"p{p}", []).extend(
                add_photo(lib, f"p{p}-{j}.jpg", [sample(c[p], rng)])
            )
    both = add_photo(lib, "group.jpg", [sample(c[0], rng), sample(c[1], rng)])
    keys["p0"].append(both[0])
    keys["p1"].append(both[1])
    assign_pending(lib)
    return keys


def clusters_by_key(lib: Library) -> dict[str, int | None]:
    with lib.db.reading() as tx:
        t = lib.faces(tx)
    return {
        k: (int(c) if c >= 0 else None) for k, c in zip(t.keys, t.cluster.tolist(), strict=True)
    }


def face_ids(lib: Library) -> dict[str, int]:
    with lib.db.reading() as tx:
        t = lib.faces(tx)
    return dict(zip(t.keys, t.ids.tolist(), strict=True))


def gallery(lib: Library) -> dict[str, set[str]]:
    return {p.name: {t.image_sha256 or "" for t in lib.store.templates(p.name)}
            for p in lib.store.people()}  # fmt: skip


def test_faces_cluster_into_people_and_the_listing_has_the_issue_shape(lib: Library) -> None:
    keys = build(lib)
    got = clusters_by_key(lib)
    for p in ("p0", "p1", "p2"):
        assert len({got[k] for k in keys[p]}) == 1 and got[keys[p][0]] is not None
    assert len({got[keys[p][0]] for p in ("p0", "p1", "p2")}) == 3
    with lib.db.reading() as tx:
        shown = listing(lib, tx).to_dict()
    assert set(shown) == {"people", "unassigned"} and shown["unassigned"] == []
    assert {len(g["faces"]) for g in shown["people"]} == {5, 4}
    for g in shown["people"]:
        assert set(g) == {"id", "name", "faces"} and g["name"] is None
        for f in g["faces"]:
            assert set(f) == {"face_id", "photo", "box"} and f["photo"].startswith("/photos/")


def test_every_decision_survives_recluster_and_reindex(lib: Library) -> None:
    keys = build(lib)
    ids = face_ids(lib)
    got = clusters_by_key(lib)
    c0, c1, c2 = (got[keys[p][0]] for p in ("p0", "p1", "p2"))
    assert c0 is not None and c1 is not None and c2 is not None
    people.name(lib, c0, "ann")
    people.reject(lib, ids[keys["p0"][1]], "ann")  # this face is not ann
    people.hide(lib, ids[keys["p1"][0]])
    people.merge(lib, c1, c2)  # p1 and p2 are one person (wrong, but a human said so)
    people.split(lib, c1, [ids[keys["p2"][0]], ids[keys["p2"][1]]])  # ... partly undone
    people.move(lib, ids[keys["p0"][1]], person="bea")  # not ann: bea

    def holds() -> None:
        now = clusters_by_key(lib)
        ann = now[keys["p0"][0]]
        assert ann is not None and all(now[k] == ann for k in keys["p0"] if k != keys["p0"][1])
        assert now[keys["p0"][1]] not in (None, ann)  # bea, alone
        assert now[keys["p1"][0]] is None  # hidden
        assert now[keys["p1"][1]] == now[keys["p2"][2]]  # merged
        assert now[keys["p2"][0]] != now[keys["p1"][1]]  # split off
        with lib.db.reading() as tx:
            names = {g.name for g in listing(lib, tx).people if g.name}
        assert names == {"ann", "bea"}
        g = gallery(lib)
        assert g["bea"] == {keys["p0"][1]} and keys["p0"][1] not in g["ann"]
        assert g["ann"] == set(keys["p0"]) - {keys["p0"][1]}

    holds()
    recluster(lib)
    holds()
    # the photo of the face that is bea is deleted: its face (and template) go; it comes back
    gone = remove_photo(lib, "p0-1.jpg")
    assert gone == [keys["p0"][1]] and keys["p0"][1] not in clusters_by_key(lib)
    assert "bea" not in gallery(lib)  # its one template went with the photo
    rng = np.random.default_rng(1)
    c = centres(3)
    for _ in range(1):  # the same content again: the same face key, the decisions apply
        again = add_photo(lib, "p0-1.jpg", [sample(c[0], rng)])
    assert again == [keys["p0"][1]]
    assign_pending(lib)
    holds()


def test_the_gallery_follows_the_names(lib: Library) -> None:
    keys = build(lib)
    ids = face_ids(lib)
    got = clusters_by_key(lib)
    c0, c1 = got[keys["p0"][0]], got[keys["p1"][0]]
    assert c0 is not None and c1 is not None
    people.name(lib, c0, "ann")
    assert gallery(lib) == {"ann": set(keys["p0"])}
    probe = lib.store.templates("ann")[0].embedding
    assert lib.store.search(probe[None], k=1)[0][0].name == "ann"  # identify finds her
    people.name(lib, c0, "anna")  # a rename keeps the templates
    assert gallery(lib) == {"anna": set(keys["p0"])}
    people.name(lib, c1, "bob")
    people.merge(lib, c0, c1)  # two named people: bob becomes anna
    assert gallery(lib) == {"anna": set(keys["p0"]) | set(keys["p1"])}
    people.reject(lib, ids[keys["p1"][2]], "anna")
    assert keys["p1"][2] not in gallery(lib)["anna"]
    for k in keys["p0"] + keys["p1"]:
        people.hide(lib, ids[k])
    assert gallery(lib) == {}  # nobody left: the person went
    people.hide(lib, ids[keys["p0"][0]], undo=True)
    people.move(lib, ids[keys["p0"][0]], person="zoe")
    assert gallery(lib) == {"zoe": {keys["p0"][0]}}


def test_a_refused_decision_changes_nothing(lib: Library) -> None:
    keys = build(lib)
    ids = face_ids(lib)
    got = clusters_by_key(lib)
    c0 = got[keys["p0"][0]]
    assert c0 is not None
    # an earlier decision (written directly) says two faces of p0 are never one person
    with lib.store.write() as tx:
        lib.add_group(tx, "apart", [[keys["p0"][0]], [keys["p0"][2]]])
    before = clusters_by_key(lib)
    with pytest.raises(GalleryError, match="contradicts an earlier decision"):
        people.name(lib, c0, "ann")
    assert clusters_by_key(lib) == before and gallery(lib) == {}
    with lib.db.reading() as tx:
        assert lib.labels(tx) == {}
    with pytest.raises(NotFoundError):
        people.name(lib, 10_000, "x")
    with pytest.raises(NotFoundError):
        people.hide(lib, 10**9)
    with pytest.raises(GalleryError, match="invalid person name"):
        people.move(lib, ids[keys["p0"][0]], person="a\x00b")
    with pytest.raises(GalleryError, match="not in cluster"):
        people.split(lib, c0, [ids[keys["p1"][0]]])


def test_face_templates_are_encrypted_at_rest(
    opener: Opener, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FACEPRINT_TEMPLATE_KEY", os.urandom(32).hex())
    lib = Library(opener().collection("secret", create=True))
    rng = np.random.default_rng(3)
    vec = sample(centres(1)[0], rng)
    (key,) = add_photo(lib, "a.jpg", [vec])
    add_photo(lib, "b.jpg", [sample(centres(1)[0], rng)])
    with lib.db.reading() as tx:
        rows = tx.execute("SELECT face_key, embedding FROM library_faces ORDER BY id")
        assert np.allclose(lib.faces(tx, vectors=True).templates[0], vec, atol=1e-6)  # type: ignore[index]
    blobs = [bytes(r[1]) for r in rows]
    assert all(b.startswith(b"FPT1") for b in blobs) and vec.tobytes() not in blobs[0]
    with lib.db.transaction() as tx:  # a blob moved to another face's row does not decrypt
        tx.execute("UPDATE library_faces SET embedding = %s WHERE face_key <> %s",
                   (blobs[0], key))  # fmt: skip
    with lib.db.reading() as tx, pytest.raises(GalleryError):
        lib.faces(tx, vectors=True)


def test_photo_faces_keep_their_keys_and_ids_carry_over() -> None:
    box = Box(10.4, 20.6, 110.5, 140.49)
    assert face_key("ab" * 32, box) == "ab" * 32 + ":10,21,110,140"
    old = np.array([5, 5, 5, 7, 7, -1, -1])
    new = np.array([0, 0, 1, 1, 1, 2, 2])  # 0 is mostly old 5, 1 mostly old 7, 2 is new
    assert keep_ids(old, new).tolist() == [5, 5, 7, 7, 7, 8, 8]
