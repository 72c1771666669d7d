"""PostgreSQL gallery against a real server: CRUD, transactions, collections, sync, pgvector."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import psycopg
import pytest

from faceprint.errors import GalleryError
from faceprint.gallery.postgres import MIGRATIONS, PostgresDatabase
from faceprint.gallery.sqlite import SqliteGallery
from faceprint.gallery.store import GalleryStore, NotFoundError
from faceprint.match.search import ExactIndex
from tests.pgtools import temp_database


def unit(rng: np.random.Generator, n: int, d: int = 128) -> np.ndarray:
    v = rng.standard_normal((n, d)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


@pytest.fixture(scope="module")
def url() -> Iterator[str]:
    with temp_database() as u:
        yield u


@pytest.fixture()
def db(url: str) -> Iterator[PostgresDatabase]:
    d = PostgresDatabase(url, max_connections=4)
    yield d
    for c in d.collections():
        d.delete_collection(c.name)
    d.close()


def test_both_backends_satisfy_the_store_protocol(db: PostgresDatabase, tmp_path: Path) -> None:
    db.create_collection("proto")
    stores: list[GalleryStore] = [db.collection("proto"), SqliteGallery(tmp_path / "g.db")]
    for store in stores:
        assert isinstance(store, GalleryStore)
        store.close()


def test_migrations_recorded_and_idempotent(url: str, db: PostgresDatabase) -> None:
    again = PostgresDatabase(url, max_connections=1)
    assert again.schema_version == len(MIGRATIONS) == db.schema_version
    with psycopg.connect(url) as conn:
        row = conn.execute("SELECT version FROM schema_version").fetchone()
        assert row is not None and row[0] == len(MIGRATIONS)
        conn.execute("UPDATE schema_version SET version = 99")
    with pytest.raises(GalleryError, match="newer than this faceprint"):
        PostgresDatabase(url, max_connections=1)
    with psycopg.connect(url) as conn:
        conn.execute("UPDATE schema_version SET version = %s", (len(MIGRATIONS),))
    again.close()


def test_crud_collections_and_isolation(db: PostgresDatabase) -> None:
    rng = np.random.default_rng(1)
    db.create_collection("a")
    db.create_collection("b")
    with pytest.raises(GalleryError, match="already exists"):
        db.create_collection("a")
    with pytest.raises(GalleryError, match="invalid collection name"):
        db.create_collection("no spaces/slashes")
    a, b = db.collection("a"), db.collection("b")
    a.add_templates("alice", list(unit(rng, 2)), pack="p1", metadata={"team": "x"})
    a.add_templates("alice", list(unit(rng, 1)), pack="p1")
    b.add_templates("alice", list(unit(rng, 1)), pack="p1")
    assert [(p.name, p.templates) for p in a.people()] == [("alice", 3)]
    assert a.get("alice").metadata == {"team": "x"}
    assert [p.templates for p in b.people()] == [1]
    tid = a.templates("alice")[0].id
    with pytest.raises(NotFoundError):
        b.remove_template(tid)  # a template of another collection is not there
    a.remove_template(tid)
    assert a.remove("alice") == 2
    with pytest.raises(NotFoundError, match="no person named 'alice'"):
        a.get("alice")
    assert len(b) == 1
    db.delete_collection("b")
    with pytest.raises(NotFoundError):
        db.collection("b")
    with psycopg.connect(db.url) as conn:  # cascade removed b's people and templates
        row = conn.execute("SELECT COUNT(*) FROM templates").fetchone()
        assert row is not None and row[0] == 0


def test_failed_writes_store_nothing(db: PostgresDatabase) -> None:
    rng = np.random.default_rng(2)
    db.create_collection("c")
    c = db.collection("c")
    c.add_templates("alice", list(unit(rng, 1)), pack="p1")
    bad = list(unit(rng, 2)) + [np.full(128, np.nan, np.float32)]
    with pytest.raises(GalleryError, match="not finite"):
        c.add_templates("dave", bad, pack="p1")
    with pytest.raises(GalleryError, match="refusing to mix"):
        c.add_templates("carol", list(unit(rng, 1)), pack="p2")
    with pytest.raises(GalleryError, match="refusing to mix"):
        c.add_templates("carol", list(unit(rng, 1, d=64)), pack="p1")
    assert [p.name for p in c.people()] == ["alice"]
    assert len(c.templates()) == 1


def test_search_matches_exact_index_and_syncs_across_processes(
    url: str, db: PostgresDatabase
) -> None:
    rng = np.random.default_rng(3)
    db.create_collection("s")
    writer = db.collection("s")
    embs = unit(rng, 30)
    for i in range(10):
        writer.add_templates(f"p{i}", list(embs[3 * i : 3 * i + 3]), pack="p1")
    other = PostgresDatabase(url, max_connections=2, vector=False)  # a second "worker"
    reader = other.collection("s")
    probes = unit(rng, 5)
    ref = ExactIndex(embs, np.repeat(np.arange(10), 3)).search(probes, 3)
    got = reader.search(probes, k=3)
    assert [[c.name for c in row] for row in got] == [[f"p{h.person}" for h in r] for r in ref]
    assert got[0][0].score == pytest.approx(ref[0][0].score, abs=1e-5)
    # A write by the first worker is seen by the second at its next search.
    writer.add_templates("new", [probes[0]], pack="p1")
    assert reader.search(probes[:1], k=1)[0][0].name == "new"
    writer.remove("new")
    assert reader.search(probes[:1], k=1)[0][0].name != "new"
    other.close()


def test_pgvector_hnsw_agrees_with_exact_search() -> None:
    """The pgvector path, on a PostgreSQL that has the extension (PyPI ``pgserver``)."""
    try:
        import pgserver  # type: ignore[import-not-found]
    except ImportError:
        if os.environ.get("CI"):
            pytest.fail("pgserver (bundled PostgreSQL + pgvector) is not installed")
        pytest.skip("pgserver is not installed")
    rng = np.random.default_rng(4)
    with tempfile.TemporaryDirectory() as tmp:
        server = pgserver.get_server(tmp, cleanup_mode="stop")
        try:
            db = PostgresDatabase(server.get_uri(), max_connections=2)
            assert db.vector, "pgserver offers pgvector, so the HNSW path must be on"
            db.create_collection("v")
            store = db.collection("v")
            embs = unit(rng, 200)
            for i in range(50):
                store.add_templates(f"p{i}", list(embs[4 * i : 4 * i + 4]), pack="p1")
            probes = embs[::13] + 0.05 * unit(rng, len(embs[::13]))
            ref = ExactIndex(embs, np.repeat(np.arange(50), 4)).search(probes, 3)
            got = store.search(probes, k=3)
            assert [[c.name for c in row] for row in got] == [
                [f"p{h.person}" for h in r] for r in ref
            ]
            with psycopg.connect(server.get_uri()) as conn:
                row = conn.execute(
                    "SELECT indexdef FROM pg_indexes WHERE indexname = 'templates_vec_hnsw'"
                ).fetchone()
            assert row is not None and "hnsw" in row[0] and "vector_cosine_ops" in row[0]
            db.close()
        finally:
            server.cleanup()


def test_templates_encrypted_at_rest(monkeypatch: pytest.MonkeyPatch) -> None:
    """With FACEPRINT_TEMPLATE_KEY, the BYTEA column holds AES-GCM blobs and no clear
    vector column is written; search still works; a wrong or missing key is refused."""
    rng = np.random.default_rng(7)
    key = os.urandom(32).hex()
    monkeypatch.setenv("FACEPRINT_TEMPLATE_KEY", key)
    with temp_database() as u:
        db = PostgresDatabase(u, max_connections=2)
        assert db.codec.encrypted and not db.vector
        db.create_collection("secret")
        store = db.collection("secret")
        emb = unit(rng, 4)
        store.add_templates("alice", list(emb[:2]), pack="p1")
        store.add_templates("bob", list(emb[2:]), pack="p1")
        assert store.search(emb[3:4], k=1)[0][0].name == "bob"
        assert np.allclose(store.templates("alice")[0].embedding, emb[0], atol=1e-6)
        db.close()
        with psycopg.connect(u) as conn:
            blobs = [bytes(r[0]) for r in conn.execute("SELECT embedding FROM templates")]
        clear = [e.astype("<f4").tobytes() for e in emb]
        assert all(b.startswith(b"FPT1") for b in blobs)
        assert not any(c in b or b in c for b in blobs for c in clear)
        monkeypatch.setenv("FACEPRINT_TEMPLATE_KEY", os.urandom(32).hex())
        with pytest.raises(GalleryError, match="not the key"):
            PostgresDatabase(u, max_connections=1)
        monkeypatch.delenv("FACEPRINT_TEMPLATE_KEY")
        with pytest.raises(GalleryError, match="templates are encrypted"):
            PostgresDatabase(u, max_connections=1)
