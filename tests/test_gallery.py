"""The gallery file (SQLite engine): what is only about files. The store's behaviour is in
tests/test_store.py, run on both engines."""

from __future__ import annotations

import hashlib
import os
import sqlite3
import stat
from pathlib import Path

import numpy as np
import pytest

from faceprint.errors import GalleryError
from faceprint.gallery.sqlite import APPLICATION_ID, SqliteDatabase
from faceprint.gallery.store import NewTemplate
from faceprint.match.search import ExactIndex


def unit(rng: np.random.Generator, n: int, d: int = 128) -> np.ndarray:
    v = rng.standard_normal((n, d)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def make(path: Path, people: int = 3) -> None:
    rng = np.random.default_rng(0)
    with SqliteDatabase(path, create=True) as db:
        store = db.collection("default", create=True)
        for i in range(people):
            store.add_templates(f"p{i}", [NewTemplate(v) for v in unit(rng, 2)], pack="p1")


def test_new_gallery_is_private_and_marked(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "g.db"
    make(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    with sqlite3.connect(path) as con:
        assert con.execute("PRAGMA application_id").fetchone()[0] == APPLICATION_ID
        assert con.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_foreign_empty_and_missing_files_are_refused_untouched(tmp_path: Path) -> None:
    junk = tmp_path / "junk.db"
    junk.write_bytes(b"this is not sqlite" * 100)
    foreign = tmp_path / "invoices.db"
    with sqlite3.connect(foreign) as con:
        con.execute("CREATE TABLE invoice (id INTEGER PRIMARY KEY, total REAL)")
        con.execute("INSERT INTO invoice(total) VALUES (12.5)")
    con.close()
    empty = tmp_path / "empty.db"
    empty.write_bytes(b"")
    for path, why in ((junk, "not a SQLite file"), (foreign, "another program"), (empty, "empty")):
        before = digest(path), sorted(p.name for p in tmp_path.iterdir())
        for create, read_only in ((False, True), (False, False), (True, False)):
            with pytest.raises(GalleryError, match=why):
                SqliteDatabase(path, create=create, read_only=read_only)
        assert (digest(path), sorted(p.name for p in tmp_path.iterdir())) == before
    with pytest.raises(GalleryError, match="no such gallery"):
        SqliteDatabase(tmp_path / "missing.db")
    assert not (tmp_path / "missing.db").exists()
    with pytest.raises(GalleryError, match="directory"):
        SqliteDatabase(tmp_path, create=True)


def test_read_only_open_changes_nothing_and_works_on_a_read_only_file(tmp_path: Path) -> None:
    path = tmp_path / "g.db"
    make(path)
    before = digest(path)
    path.chmod(0o444)
    db = SqliteDatabase(path, read_only=True)
    store = db.collection("default")
    assert [p.name for p in store.people()] == ["p0", "p1", "p2"]
    assert store.search(store.templates()[0].embedding, k=1)[0][0].name == "p0"
    with pytest.raises(GalleryError, match="read-only"):
        store.add_person("x")
    db.close()
    assert digest(path) == before


def test_faceprint_01_gallery_is_read_in_memory_and_upgraded_on_write(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    rng = np.random.default_rng(1)
    emb = unit(rng, 3)
    con = sqlite3.connect(path)
    con.executescript(
        """
        CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
        CREATE TABLE people (id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE,
            metadata TEXT NOT NULL DEFAULT '{}', created REAL NOT NULL);
        CREATE TABLE templates (id INTEGER PRIMARY KEY, person_id INTEGER NOT NULL
            REFERENCES people(id) ON DELETE CASCADE, embedding BLOB NOT NULL,
            dim INTEGER NOT NULL, pack TEXT NOT NULL, image_sha256 TEXT, quality REAL,
            created REAL NOT NULL);
        INSERT INTO meta VALUES ('schema', '1'), ('generation', '4'),
            ('setting.threshold', '0.91');
        INSERT INTO people VALUES (7, 'alice', '{"team": "a"}', 1.0), (9, 'bob', '{}', 2.0);
        """
    )
    for i, (pid, vec) in enumerate(zip((7, 7, 9), emb, strict=True)):
        con.execute(
            "INSERT INTO templates VALUES (?, ?, ?, 128, 'p1', ?, 0.8, 3.0)",
            (i + 1, pid, vec.astype("<f4").tobytes(), f"h{i}"),
        )
    con.commit()
    con.close()
    before = digest(path)
    with SqliteDatabase(path, read_only=True) as db:
        store = db.collection("default")
        assert [(p.name, p.templates) for p in store.people()] == [("alice", 2), ("bob", 1)]
        assert store.setting("threshold") == "0.91"
    assert digest(path) == before
    with SqliteDatabase(path) as db:
        store = db.collection("default")
        assert store.get("alice").metadata == {"team": "a"}
        assert store.search(emb[2], k=1)[0][0].name == "bob"
        assert store.has_image("h1")
    with sqlite3.connect(path) as con:
        tables = {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    assert "meta" not in tables and "faceprint_schema" in tables


def test_damaged_schema_version_and_pages_are_gallery_errors(tmp_path: Path) -> None:
    path = tmp_path / "g.db"
    make(path)
    with sqlite3.connect(path) as con:
        con.execute("UPDATE faceprint_schema SET version = 'x'")
    con.close()
    with pytest.raises(GalleryError, match="damaged"):
        SqliteDatabase(path, read_only=True)
    with pytest.raises(GalleryError, match="damaged"):
        SqliteDatabase(path)
    other = tmp_path / "h.db"
    make(other, people=30)
    data = bytearray(other.read_bytes())
    for page in range(2, len(data) // 4096):
        data[page * 4096 : page * 4096 + 200] = os.urandom(200)
    other.write_bytes(bytes(data))
    for wal in tmp_path.glob("h.db-*"):
        wal.unlink()
    with pytest.raises(GalleryError):
        db = SqliteDatabase(other, read_only=True)
        store = db.collection("default")
        store.people()
        store.search(np.ones((1, 128), np.float32) / np.sqrt(128))


def test_erasure_leaves_no_template_bytes_in_the_file(tmp_path: Path) -> None:
    path = tmp_path / "g.db"
    rng = np.random.default_rng(2)
    secret = unit(rng, 1)[0]
    with SqliteDatabase(path, create=True) as db:
        store = db.collection("default", create=True)
        store.add_templates("keep", [NewTemplate(v) for v in unit(rng, 2)], pack="p1")
        store.add_templates("erase-me", [NewTemplate(secret, "photo-hash")], pack="p1")
        store.remove("erase-me")
    blob = path.read_bytes() + b"".join(p.read_bytes() for p in tmp_path.glob("g.db-*"))
    assert secret.astype("<f4").tobytes() not in blob
    assert b"erase-me" not in blob and b"photo-hash" not in blob


def test_exact_index_single_person_and_dim_check() -> None:
    emb = np.eye(4, dtype=np.float32)
    idx = ExactIndex(emb, np.array([7, 7, 7, 7]))
    hits = idx.search(emb[2], k=5)
    # the person score: mean of the best template (1) and the mean template (1/2)
    assert len(hits[0]) == 1 and hits[0][0].person == 7 and hits[0][0].score == pytest.approx(0.75)
    with pytest.raises(ValueError, match="dimensions"):
        idx.search(np.ones((1, 3), np.float32))
