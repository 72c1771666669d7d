"""Gallery store: CRUD, transactions, pack mixing, exact search (random unit vectors)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import numpy as np
import pytest

from faceprint.errors import GalleryError
from faceprint.gallery.sqlite import SqliteGallery
from faceprint.match.search import ExactIndex


def unit(rng: np.random.Generator, n: int, d: int = 128) -> np.ndarray:
    v = rng.standard_normal((n, d)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def test_crud_and_persistence(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    path = tmp_path / "g.db"
    with SqliteGallery(path) as g:
        g.add_templates("alice", list(unit(rng, 2)), pack="p1", metadata={"team": "a"})
        g.add_templates("bob", list(unit(rng, 3)), pack="p1")
        g.add_templates("alice", list(unit(rng, 1)), pack="p1")
        assert [(p.name, p.templates) for p in g.people()] == [("alice", 3), ("bob", 3)]
        g.update_person("bob", new_name="robert", metadata={"x": 1})
    with SqliteGallery(path, create=False) as g:
        assert g.get("robert").metadata == {"x": 1}
        assert g.get("alice").metadata == {"team": "a"}
        assert g.remove("alice") == 3
        assert [p.name for p in g.people()] == ["robert"]
        with pytest.raises(GalleryError, match="no person named 'alice'"):
            g.remove("alice")
        assert len(g.templates()) == 3


def test_refuses_to_mix_packs_and_keeps_data(tmp_path: Path) -> None:
    rng = np.random.default_rng(2)
    with SqliteGallery(tmp_path / "g.db") as g:
        g.add_templates("alice", list(unit(rng, 2)), pack="p1")
        with pytest.raises(GalleryError, match="refusing to mix"):
            g.add_templates("carol", list(unit(rng, 1)), pack="p2")
        with pytest.raises(GalleryError, match="refusing to mix"):
            g.add_templates("carol", list(unit(rng, 1, d=512)), pack="p1")
        assert [p.name for p in g.people()] == ["alice"]  # carol was not half-created


def test_failed_write_rolls_back(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    with SqliteGallery(tmp_path / "g.db") as g:
        g.add_templates("alice", list(unit(rng, 1)), pack="p1")
        bad = list(unit(rng, 2)) + [np.full(128, np.nan, np.float32)]
        with pytest.raises(GalleryError):
            g.add_templates("dave", bad, pack="p1")
        assert [p.name for p in g.people()] == ["alice"]
        assert len(g.templates()) == 1


def test_not_a_gallery_and_missing(tmp_path: Path) -> None:
    junk = tmp_path / "junk.db"
    junk.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(GalleryError, match="not a faceprint gallery"):
        SqliteGallery(junk)
    assert junk.read_bytes() == b"this is not sqlite" * 100
    with pytest.raises(GalleryError, match="no such gallery"):
        SqliteGallery(tmp_path / "missing.db", create=False)


def test_empty_gallery_search_is_an_error(tmp_path: Path) -> None:
    with SqliteGallery(tmp_path / "g.db") as g, pytest.raises(GalleryError, match="empty"):
        g.search(np.ones((1, 128), np.float32))


def test_search_matches_bruteforce_and_sees_other_writers(tmp_path: Path) -> None:
    rng = np.random.default_rng(4)
    path = tmp_path / "g.db"
    emb = unit(rng, 60)
    with SqliteGallery(path) as g:
        for i in range(20):
            g.add_templates(f"p{i:02d}", list(emb[3 * i : 3 * i + 3]), pack="p1")
        probes = emb[[0, 10, 59]] + 0.05 * unit(rng, 3)
        got = g.search(probes, k=3)
        full = probes @ emb.T
        for row, cands in zip(full, got, strict=True):
            per_person = row.reshape(20, 3).max(axis=1)
            want = np.argsort(-per_person)[:3]
            assert [c.name for c in cands] == [f"p{i:02d}" for i in want]
            assert np.allclose([c.score for c in cands], per_person[want], atol=1e-5)
        # another connection (another process) adds a person: the index notices
        with SqliteGallery(path) as other:
            other.add_templates("newcomer", [probes[0]], pack="p1")
        assert g.search(probes[:1], k=1)[0][0].name == "newcomer"


def test_exact_index_single_person_and_dim_check() -> None:
    emb = np.eye(4, dtype=np.float32)
    idx = ExactIndex(emb, np.array([7, 7, 7, 7]))
    hits = idx.search(emb[2], k=5)
    assert len(hits[0]) == 1 and hits[0][0].person == 7 and hits[0][0].score == pytest.approx(1)
    with pytest.raises(ValueError, match="dimensions"):
        idx.search(np.ones((1, 3), np.float32))


def test_rows_are_unit_norm_float32(tmp_path: Path) -> None:
    with SqliteGallery(tmp_path / "g.db") as g:
        g.add_templates("a", [np.arange(1, 129, dtype=np.float32)], pack="p1")
    con = sqlite3.connect(tmp_path / "g.db")
    blob = con.execute("SELECT embedding FROM templates").fetchone()[0]
    vec = np.frombuffer(blob, "<f4")
    assert vec.shape == (128,) and np.linalg.norm(vec) == pytest.approx(1, abs=1e-6)
