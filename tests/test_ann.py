"""Search indexes: exact in chunks, approximate (FAISS) against exact, persistence, fallback."""

from __future__ import annotations

import json
import sys
from typing import Any

import numpy as np
import pytest

from faceprint.errors import GalleryError
from faceprint.gallery.sqlite import SqliteDatabase
from faceprint.gallery.store import NewTemplate, Store
from faceprint.match import index as index_mod
from faceprint.match import search
from faceprint.match.ann import AnnIndex, manifest_path
from faceprint.match.index import SearchIndex, build_index
from faceprint.match.search import ExactIndex


def needs_faiss() -> Any:
    """faiss, or skip: only the tests that need it (the fallback test runs without it)."""
    return pytest.importorskip("faiss", reason="faiss-cpu is in the 'scale' extra")


def open_store(path: Any) -> Store:
    return SqliteDatabase(path, create=True).collection("default", create=True)


def current_index(store: Store) -> SearchIndex:
    """The index the store's last search used (its database caches one per collection)."""
    return store.db._indexes[store.collection_id][1]


def generation(store: Store) -> int:
    return store._generation()


@pytest.fixture(scope="module")
def real(reference: dict[str, Any]) -> np.ndarray:
    """Every face descriptor of the dlib reference run over ../shared/faces (real templates)."""
    vecs = [f["descriptor"] for img in reference.values() for f in img["faces"]]
    emb = np.asarray(vecs, dtype=np.float32)
    return emb / np.linalg.norm(emb, axis=1, keepdims=True)


def _unit(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def _top1(hits: list[list[Any]]) -> list[int]:
    return [row[0].person for row in hits]


def test_ann_top1_equals_exact_on_real_embeddings(real: np.ndarray) -> None:
    needs_faiss()
    # The real faces are the people to find, hidden among 20k face-like distractors
    # (real templates pushed away from their person), spread over 64 inverted lists.
    rng = np.random.default_rng(0)
    distract = _unit(
        real[rng.integers(0, len(real), 20_000)] + 0.08 * rng.standard_normal((20_000, 128))
    )
    emb = np.concatenate([real, distract])
    people = np.r_[np.arange(len(real)), len(real) + np.arange(len(distract)) // 4]
    probes = _unit(real + 0.02 * rng.standard_normal(real.shape))
    exact = ExactIndex(emb, people).search(probes, 3)
    ann = AnnIndex.train(emb, np.arange(len(emb), dtype=np.int64), people, nlist=64)
    approx = ann.search(probes, 3)
    assert _top1(approx) == _top1(exact)
    for a, e in zip(approx, exact, strict=True):  # candidates are re-scored exactly
        assert a[0].score == pytest.approx(e[0].score, abs=1e-5)
        assert len({h.person for h in a}) == 3


def test_exact_in_chunks_equals_one_pass(real: np.ndarray, monkeypatch: pytest.MonkeyPatch) -> None:
    people = np.arange(len(real)) // 2
    whole = ExactIndex(real, people).search(real, 4)
    monkeypatch.setattr(search, "SCORE_BYTES", 4 * len(real) * 3)  # 3 probes per chunk
    chunked = ExactIndex(real, people).search(real, 4)
    assert [[h.person for h in r] for r in chunked] == [[h.person for h in r] for r in whole]
    np.testing.assert_allclose(
        [[h.score for h in r] for r in chunked], [[h.score for h in r] for r in whole], atol=1e-6
    )


def _enroll_all(store: Store, real: np.ndarray) -> None:
    """p0..p19: two noisy copies each of real faces 0, 2, ..., 38 (40 templates)."""
    rng = np.random.default_rng(5)
    for i in range(0, 40, 2):
        copies = _unit(real[[i, i]] + 0.01 * rng.standard_normal((2, real.shape[1])))
        store.add_templates(f"p{i // 2}", [NewTemplate(c) for c in copies], pack="dlib")


def _manifest(store: Store) -> dict[str, Any]:
    path = store.db.index_path(store.name)
    data: dict[str, Any] = json.loads(manifest_path(path).read_text())
    return data


def test_persisted_index_reloads_and_follows_enroll_and_forget(
    real: np.ndarray, tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    needs_faiss()
    monkeypatch.setenv("FACEPRINT_INDEX", "ann")
    path = tmp_path / "g.db"
    store = open_store(path)
    _enroll_all(store, real)
    assert [c[0].name for c in store.search(real[:40:2])] == [f"p{i}" for i in range(20)]
    assert isinstance(current_index(store), AnnIndex)
    assert _manifest(store)["generation"] == generation(store)
    assert len(_manifest(store)["ids"]) == 40
    store.close()
    faiss_file = store.db.index_path("default")
    saved = faiss_file.stat().st_mtime_ns
    store, other = open_store(path), open_store(path)
    store.search(real[:1])
    index = current_index(store)
    assert isinstance(index, AnnIndex) and len(index) == 40
    assert faiss_file.stat().st_mtime_ns == saved  # unchanged: loaded, not rewritten
    # Another connection enrolls and forgets; this one's index follows.
    other.add_templates("newcomer", [NewTemplate(real[45])], pack="dlib")
    assert store.search(real[45:46])[0][0].name == "newcomer"
    other.remove("p3")
    names = {c.name for c in store.search(real[6:8], k=30)[0]}
    assert names == {f"p{i}" for i in range(20) if i != 3} | {"newcomer"}
    index = current_index(store)
    assert isinstance(index, AnnIndex) and len(index) == 39
    assert index._index.ntotal == 39
    assert _manifest(store)["generation"] == generation(store)
    assert set(_manifest(store)["ids"]) == {t.id for t in store.templates()}
    store.close()
    other.close()
    # A stale file (other generation, other ids) is brought in sync when opened again.
    store = open_store(path)
    store.add_templates("late", [NewTemplate(real[50])], pack="dlib")
    store.close()
    store = open_store(path)
    assert store.search(real[50:51])[0][0].name == "late"
    assert set(_manifest(store)["ids"]) == {t.id for t in store.templates()}
    store.close()


def test_read_only_gallery_loads_the_index_and_never_writes_it(
    real: np.ndarray, tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    needs_faiss()
    monkeypatch.setenv("FACEPRINT_INDEX", "ann")
    path = tmp_path / "g.db"
    store = open_store(path)
    _enroll_all(store, real)
    store.search(real[:1])
    store.close()
    faiss_file = store.db.index_path("default")
    before = faiss_file.read_bytes()
    reader = SqliteDatabase(path, read_only=True).collection("default")
    assert reader.search(real[10:11])[0][0].name == "p5"
    reader.close()
    assert faiss_file.read_bytes() == before


def test_corrupt_index_file_is_rebuilt(
    real: np.ndarray, tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    faiss = needs_faiss()
    monkeypatch.setenv("FACEPRINT_INDEX", "ann")
    path = tmp_path / "g.db"
    store = open_store(path)
    _enroll_all(store, real)
    store.search(real[:1])
    store.close()
    faiss_file = store.db.index_path("default")
    faiss_file.write_bytes(b"garbage")
    store = open_store(path)
    assert store.search(real[10:11])[0][0].name == "p5"
    store.close()
    assert faiss.read_index(str(faiss_file)).ntotal == 40


def test_falls_back_to_exact_without_faiss(
    real: np.ndarray, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setitem(sys.modules, "faiss", None)  # "import faiss" raises ImportError
    monkeypatch.setattr(index_mod, "_warned", set())
    people = np.arange(len(real))
    index = build_index(real, people, kind="ann")
    assert isinstance(index, ExactIndex)
    assert "faiss-cpu is not installed" in caplog.text
    assert _top1(index.search(real)) == list(range(len(real)))


def test_auto_is_exact_below_the_measured_size(real: np.ndarray) -> None:
    assert isinstance(build_index(real, np.arange(len(real)), kind="auto"), ExactIndex)


def test_unknown_index_kind(real: np.ndarray, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(GalleryError, match="unknown index"):
        build_index(real, np.arange(len(real)), kind="hnsw-please")
    monkeypatch.setenv("FACEPRINT_INDEX", "fast")
    with pytest.raises(GalleryError, match="FACEPRINT_INDEX"):
        build_index(real, np.arange(len(real)))
