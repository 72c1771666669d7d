"""PostgreSQL engine specifics against a real server: migrations, the 0.1 layout, pgvector,
connection errors. The store's behaviour is in tests/test_store.py, run on both engines."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator

import numpy as np
import psycopg
import pytest

from faceprint.errors import GalleryError
from faceprint.gallery.postgres import PostgresDatabase
from faceprint.gallery.schema import GALLERY
from faceprint.gallery.store import NewTemplate
from faceprint.match.search import ExactIndex
from tests.pgtools import temp_database


def unit(rng: np.random.Generator, n: int, d: int = 128) -> np.ndarray:
    v = rng.standard_normal((n, d)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def new(vectors: np.ndarray) -> list[NewTemplate]:
    return [NewTemplate(v) for v in vectors]


@pytest.fixture(scope="module")
def url() -> Iterator[str]:
    with temp_database() as u:
        yield u


def test_migrations_recorded_and_a_newer_schema_refused(url: str) -> None:
    db = PostgresDatabase(url, max_connections=1)
    again = PostgresDatabase(url, max_connections=1)
    assert (
        db.schema_version("gallery")
        == len(GALLERY["postgresql"])
        == again.schema_version("gallery")
    )
    again.close()
    db.close()
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("UPDATE faceprint_schema SET version = 99 WHERE component = 'gallery'")
    with pytest.raises(GalleryError, match="newer than this faceprint"):
        PostgresDatabase(url, max_connections=1)
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(
            "UPDATE faceprint_schema SET version = %s WHERE component = 'gallery'",
            (len(GALLERY["postgresql"]),),
        )


def test_a_faceprint_01_database_is_adopted() -> None:
    rng = np.random.default_rng(2)
    with temp_database() as u:
        with psycopg.connect(u, autocommit=True) as conn:
            conn.execute(
                "CREATE TABLE schema_version (version INTEGER NOT NULL);"
                "INSERT INTO schema_version VALUES (3);"
                "CREATE TABLE collections (id SERIAL PRIMARY KEY, name TEXT NOT NULL UNIQUE, "
                "generation BIGINT NOT NULL DEFAULT 0, created DOUBLE PRECISION NOT NULL);"
                "CREATE TABLE people (id BIGSERIAL PRIMARY KEY, collection_id INTEGER NOT NULL "
                "REFERENCES collections(id) ON DELETE CASCADE, name TEXT NOT NULL, metadata "
                "JSONB NOT NULL DEFAULT '{}', created DOUBLE PRECISION NOT NULL, "
                "UNIQUE (collection_id, name));"
                "INSERT INTO collections(name, created) VALUES ('team', 1);"
                "INSERT INTO people(collection_id, name, metadata, created) "
                "VALUES (1, 'alice', '{\"a\": 1}', 1)"
            )
        db = PostgresDatabase(u, max_connections=2)
        store = db.collection("team")
        assert store.get("alice").metadata == {"a": 1}
        store.add_templates("alice", new(unit(rng, 1)), pack="p1")
        assert store.get("alice").templates == 1
        db.close()


def test_a_bad_url_or_a_server_that_is_down_says_why() -> None:
    with pytest.raises(GalleryError, match="cannot connect") as info:
        PostgresDatabase("postgresql://user:s3cret@127.0.0.1:1/none", connect_timeout=2)
    assert "s3cret" not in str(info.value) and "refused" in str(info.value).lower()
    with pytest.raises(GalleryError, match="cannot connect"):
        PostgresDatabase("postgresql://%zz", connect_timeout=2)


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
            db = PostgresDatabase(server.get_uri(), max_connections=2, vector=True)
            assert db.vector, "pgserver offers pgvector, so the HNSW path must be on"
            db.create_collection("v")
            store = db.collection("v")
            embs = unit(rng, 200)
            for i in range(50):
                store.add_templates(f"p{i}", new(embs[4 * i : 4 * i + 4]), pack="p1")
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
