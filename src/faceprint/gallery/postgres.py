"""The PostgreSQL gallery: collections of people and templates in one database.

``PostgresDatabase`` owns the connection pool, the schema migrations (a version table)
and the collections; ``PostgresGallery`` is one collection and satisfies ``GalleryStore``
like the embedded ``SqliteGallery``.

Search: when the server has the pgvector extension, templates also go into a
``vector`` column with an HNSW cosine index and the database searches; otherwise each
process keeps an exact in-memory index per collection, rebuilt when the collection's
``generation`` counter (bumped in every write transaction) has changed, so several
worker processes stay in sync.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np
import psycopg
from psycopg_pool import ConnectionPool

from faceprint.errors import GalleryError
from faceprint.gallery.crypto import META_KEY, TemplateCodec, aad, choose_codec
from faceprint.gallery.sqlite import (
    Candidate,
    Person,
    Template,
    check_name,
    check_templates,
)
from faceprint.gallery.store import NotFoundError
from faceprint.match.search import F32, ExactIndex
from faceprint.models.packs import DEFAULT_PACK

#: Schema migrations, applied in order; the version table records how far a database got.
MIGRATIONS: list[str] = [
    """
    CREATE TABLE collections (
        id         SERIAL PRIMARY KEY,
        name       TEXT NOT NULL UNIQUE,
        generation BIGINT NOT NULL DEFAULT 0,
        created    DOUBLE PRECISION NOT NULL
    );
    CREATE TABLE settings (
        collection_id INTEGER NOT NULL REFERENCES collections(id) ON DELETE CASCADE,
        key           TEXT NOT NULL,
        value         TEXT NOT NULL,
        PRIMARY KEY (collection_id, key)
    );
    CREATE TABLE people (
        id            BIGSERIAL PRIMARY KEY,
        collection_id INTEGER NOT NULL REFERENCES collections(id) ON DELETE CASCADE,
        name          TEXT NOT NULL,
        metadata      JSONB NOT NULL DEFAULT '{}',
        created       DOUBLE PRECISION NOT NULL,
        UNIQUE (collection_id, name)
    );
    CREATE TABLE templates (
        id            BIGSERIAL PRIMARY KEY,
        collection_id INTEGER NOT NULL REFERENCES collections(id) ON DELETE CASCADE,
        person_id     BIGINT NOT NULL REFERENCES people(id) ON DELETE CASCADE,
        embedding     BYTEA NOT NULL,
        dim           INTEGER NOT NULL,
        pack          TEXT NOT NULL,
        image_sha256  TEXT,
        quality       REAL,
        created       DOUBLE PRECISION NOT NULL
    );
    CREATE INDEX templates_person ON templates(person_id);
    CREATE INDEX templates_collection ON templates(collection_id);
    """,
    """
    CREATE TABLE api_keys (
        id          SERIAL PRIMARY KEY,
        name        TEXT NOT NULL,
        token_hash  BYTEA NOT NULL UNIQUE,
        prefix      TEXT NOT NULL,
        roles       TEXT[] NOT NULL,
        collections TEXT[] NOT NULL,
        rate        DOUBLE PRECISION NOT NULL,
        burst       INTEGER NOT NULL,
        daily_quota INTEGER NOT NULL,
        created     TIMESTAMPTZ NOT NULL DEFAULT now(),
        revoked     TIMESTAMPTZ
    );
    CREATE TABLE key_usage (
        key_id  INTEGER NOT NULL REFERENCES api_keys(id) ON DELETE CASCADE,
        day     DATE NOT NULL,
        queries INTEGER NOT NULL,
        PRIMARY KEY (key_id, day)
    );
    CREATE TABLE audit (
        id          BIGSERIAL PRIMARY KEY,
        at          TIMESTAMPTZ NOT NULL DEFAULT now(),
        key_id      INTEGER,
        method      TEXT NOT NULL,
        endpoint    TEXT NOT NULL,
        collection  TEXT,
        result_size INTEGER,
        status      INTEGER NOT NULL,
        ms          REAL NOT NULL
    );
    CREATE INDEX audit_key_at ON audit(key_id, at);
    """,
    """
    CREATE TABLE db_meta (
        key   TEXT PRIMARY KEY,
        value TEXT NOT NULL
    );
    """,
]

#: Applied when the server offers pgvector (idempotent; run at every start).
_VECTOR_SCHEMA = f"""
CREATE EXTENSION IF NOT EXISTS vector;
ALTER TABLE templates ADD COLUMN IF NOT EXISTS vec vector({DEFAULT_PACK.dim});
CREATE INDEX IF NOT EXISTS templates_vec_hnsw ON templates USING hnsw (vec vector_cosine_ops);
"""

_LOCK_ID = 0x66616365  # pg_advisory_xact_lock key serialising migrations ("face")


@dataclass(frozen=True)
class Collection:
    name: str
    people: int
    templates: int
    created: float


def _vec_literal(vec: F32) -> str:
    return "[" + ",".join(f"{float(v):.7g}" for v in vec) + "]"


class PostgresDatabase:
    """A connection pool to one PostgreSQL database holding faceprint collections."""

    def __init__(self, url: str, *, max_connections: int = 8, vector: bool | None = None) -> None:
        self.url = url
        try:
            self.pool = ConnectionPool(
                url,
                min_size=1,
                max_size=max_connections,
                kwargs={"autocommit": True},
                open=True,
                timeout=30,
            )
            self.pool.wait(timeout=10)
        except Exception as exc:  # psycopg_pool raises PoolTimeout; connection errors vary
            raise GalleryError(f"cannot connect to PostgreSQL at {_safe(url)}: {exc}") from exc
        try:
            self.schema_version = self._migrate()
            self.codec = self._open_codec()
        except BaseException:
            self.pool.close()
            raise
        # Encrypted templates never go into a clear pgvector column: search stays in-process.
        use_vector = vector is not False and not self.codec.encrypted
        self.vector = self._setup_vector() if use_vector else False
        self._indexes: dict[int, tuple[int, ExactIndex, list[str]]] = {}
        self._index_lock = threading.Lock()

    # -- plumbing -------------------------------------------------------------------------
    @contextmanager
    def transaction(self) -> Iterator[psycopg.Connection[Any]]:
        """One transaction: all of it is stored, or none of it."""
        with self.pool.connection() as conn, conn.transaction():
            yield conn

    def _migrate(self) -> int:
        with self.transaction() as conn:
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (_LOCK_ID,))
            conn.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
            row = conn.execute("SELECT version FROM schema_version").fetchone()
            version = int(row[0]) if row else 0
            if row is None:
                conn.execute("INSERT INTO schema_version(version) VALUES (0)")
            if version > len(MIGRATIONS):
                raise GalleryError(
                    f"database schema {version} is newer than this faceprint "
                    f"({len(MIGRATIONS)}); upgrade faceprint"
                )
            for sql in MIGRATIONS[version:]:
                conn.execute(sql)
            conn.execute("UPDATE schema_version SET version = %s", (len(MIGRATIONS),))
        return len(MIGRATIONS)

    def _open_codec(self) -> TemplateCodec:
        """Templates at rest: AES-GCM when FACEPRINT_TEMPLATE_KEY is set (gallery/crypto.py)."""
        with self.transaction() as conn:
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (_LOCK_ID,))
            row = conn.execute("SELECT value FROM db_meta WHERE key = %s", (META_KEY,)).fetchone()
            has = conn.execute("SELECT 1 FROM templates LIMIT 1").fetchone() is not None
            codec, record = choose_codec(
                None if row is None else str(row[0]), has, f"PostgreSQL {_safe(self.url)}"
            )
            if record is not None:
                conn.execute("INSERT INTO db_meta(key, value) VALUES (%s, %s)", (META_KEY, record))
        return codec

    def _setup_vector(self) -> bool:
        with self.pool.connection() as conn:
            row = conn.execute(
                "SELECT 1 FROM pg_available_extensions WHERE name = 'vector'"
            ).fetchone()
        if row is None:
            return False
        try:
            with self.transaction() as conn:
                conn.execute("SELECT pg_advisory_xact_lock(%s)", (_LOCK_ID,))
                conn.execute(_VECTOR_SCHEMA)
                rows = conn.execute(
                    "SELECT id, embedding FROM templates WHERE vec IS NULL AND dim = %s",
                    (DEFAULT_PACK.dim,),
                ).fetchall()
                for tid, blob in rows:
                    vec = np.frombuffer(blob, dtype="<f4")
                    conn.execute(
                        "UPDATE templates SET vec = %s::vector WHERE id = %s",
                        (_vec_literal(vec), tid),
                    )
        except psycopg.Error:
            return False  # e.g. no privilege to create the extension: exact search instead
        return True

    def close(self) -> None:
        self.pool.close()

    # -- collections ----------------------------------------------------------------------
    def create_collection(self, name: str) -> None:
        name = _check_collection(name)
        with self.transaction() as conn:
            try:
                conn.execute(
                    "INSERT INTO collections(name, created) VALUES (%s, %s)", (name, time.time())
                )
            except psycopg.errors.UniqueViolation as exc:
                raise GalleryError(f"collection {name!r} already exists") from exc

    def delete_collection(self, name: str) -> None:
        with self.transaction() as conn:
            cur = conn.execute("DELETE FROM collections WHERE name = %s", (name,))
            if cur.rowcount == 0:
                raise NotFoundError(f"no collection named {name!r}")

    def collections(self) -> list[Collection]:
        with self.pool.connection() as conn:
            rows = conn.execute(
                "SELECT c.name, "
                "(SELECT COUNT(*) FROM people p WHERE p.collection_id = c.id), "
                "(SELECT COUNT(*) FROM templates t WHERE t.collection_id = c.id), c.created "
                "FROM collections c ORDER BY c.name"
            ).fetchall()
        return [Collection(r[0], int(r[1]), int(r[2]), float(r[3])) for r in rows]

    def collection(self, name: str) -> PostgresGallery:
        """The store of one collection (NotFoundError if it does not exist)."""
        with self.pool.connection() as conn:
            row = conn.execute("SELECT id FROM collections WHERE name = %s", (name,)).fetchone()
        if row is None:
            raise NotFoundError(f"no collection named {name!r}")
        return PostgresGallery(self, int(row[0]), name)

    # -- in-process exact index, shared by the collection objects of this process ---------
    def exact_index(self, collection_id: int) -> tuple[ExactIndex, list[str]]:
        with self.pool.connection() as conn:
            row = conn.execute(
                "SELECT generation FROM collections WHERE id = %s", (collection_id,)
            ).fetchone()
            if row is None:
                raise NotFoundError("the collection was deleted")
            gen = int(row[0])
            with self._index_lock:
                cached = self._indexes.get(collection_id)
                if cached is not None and cached[0] == gen:
                    return cached[1], cached[2]
            # Read templates and the generation in one snapshot.
            with conn.transaction():
                conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
                gen_row = conn.execute(
                    "SELECT generation FROM collections WHERE id = %s", (collection_id,)
                ).fetchone()
                rows = conn.execute(
                    "SELECT t.person_id, t.embedding, t.dim, p.name, t.pack FROM templates t "
                    "JOIN people p ON p.id = t.person_id WHERE t.collection_id = %s "
                    "ORDER BY t.id",
                    (collection_id,),
                ).fetchall()
        gen = int(gen_row[0]) if gen_row else gen
        if rows:
            dim = int(rows[0][2])
            blobs = [self.codec.decode(bytes(r[1]), aad(int(r[0]), str(r[4]))) for r in rows]
            emb = np.frombuffer(b"".join(blobs), dtype="<f4").reshape(len(rows), dim)
        else:
            emb = np.zeros((0, 1), np.float32)
        pids = [int(r[0]) for r in rows]
        names_by_pid = {int(r[0]): str(r[3]) for r in rows}
        uniq = sorted(set(pids))
        remap = {p: i for i, p in enumerate(uniq)}
        index = ExactIndex(emb.astype(np.float32), np.array([remap[p] for p in pids], np.int64))
        names = [names_by_pid[p] for p in uniq]
        with self._index_lock:
            self._indexes[collection_id] = (gen, index, names)
        return index, names


class PostgresGallery:
    """One collection of a ``PostgresDatabase``: people, templates, settings and search."""

    def __init__(self, db: PostgresDatabase, collection_id: int, name: str) -> None:
        self.db = db
        self.collection_id = collection_id
        self.name = name

    @contextmanager
    def _write(self) -> Iterator[psycopg.Connection[Any]]:
        """A transaction that locks the collection row and bumps its generation."""
        with self.db.transaction() as conn:
            row = conn.execute(
                "UPDATE collections SET generation = generation + 1 WHERE id = %s RETURNING id",
                (self.collection_id,),
            ).fetchone()
            if row is None:
                raise NotFoundError(f"no collection named {self.name!r}")
            yield conn

    def close(self) -> None:
        """Nothing to do: the database's pool outlives its collections."""

    # -- settings -------------------------------------------------------------------------
    def setting(self, key: str) -> str | None:
        with self.db.pool.connection() as conn:
            row = conn.execute(
                "SELECT value FROM settings WHERE collection_id = %s AND key = %s",
                (self.collection_id, key),
            ).fetchone()
        return None if row is None else str(row[0])

    def set_setting(self, key: str, value: str | None) -> None:
        with self._write() as conn:
            if value is None:
                conn.execute(
                    "DELETE FROM settings WHERE collection_id = %s AND key = %s",
                    (self.collection_id, key),
                )
            else:
                conn.execute(
                    "INSERT INTO settings(collection_id, key, value) VALUES (%s, %s, %s) "
                    "ON CONFLICT (collection_id, key) DO UPDATE SET value = excluded.value",
                    (self.collection_id, key, value),
                )

    @property
    def pack(self) -> str | None:
        with self.db.pool.connection() as conn:
            row = conn.execute(
                "SELECT pack FROM templates WHERE collection_id = %s LIMIT 1",
                (self.collection_id,),
            ).fetchone()
        return None if row is None else str(row[0])

    # -- people ---------------------------------------------------------------------------
    def add_person(self, name: str, metadata: dict[str, Any] | None = None) -> None:
        name = check_name(name)
        with self._write() as conn:
            try:
                conn.execute(
                    "INSERT INTO people(collection_id, name, metadata, created) "
                    "VALUES (%s, %s, %s, %s)",
                    (self.collection_id, name, json.dumps(metadata or {}), time.time()),
                )
            except psycopg.errors.UniqueViolation as exc:
                raise GalleryError(f"person {name!r} already exists") from exc

    def _people(self, where: str, args: tuple[Any, ...]) -> list[Person]:
        with self.db.pool.connection() as conn:
            rows = conn.execute(
                "SELECT p.name, COUNT(t.id), p.metadata, p.created FROM people p "
                "LEFT JOIN templates t ON t.person_id = p.id "
                f"WHERE p.collection_id = %s {where} GROUP BY p.id ORDER BY p.name",
                (self.collection_id, *args),
            ).fetchall()
        return [Person(r[0], int(r[1]), dict(r[2]), float(r[3])) for r in rows]

    def get(self, name: str) -> Person:
        found = self._people("AND p.name = %s", (name,))
        if not found:
            raise NotFoundError(f"no person named {name!r} in collection {self.name!r}")
        return found[0]

    def people(self) -> list[Person]:
        return self._people("", ())

    def __len__(self) -> int:
        with self.db.pool.connection() as conn:
            row = conn.execute(
                "SELECT COUNT(*) FROM people WHERE collection_id = %s", (self.collection_id,)
            ).fetchone()
        return int(row[0]) if row else 0

    def remove(self, name: str) -> int:
        """Forget a person and every template of theirs; returns how many templates went."""
        with self._write() as conn:
            row = conn.execute(
                "SELECT id FROM people WHERE collection_id = %s AND name = %s",
                (self.collection_id, name),
            ).fetchone()
            if row is None:
                raise NotFoundError(f"no person named {name!r} in collection {self.name!r}")
            cur = conn.execute("DELETE FROM templates WHERE person_id = %s", (row[0],))
            conn.execute("DELETE FROM people WHERE id = %s", (row[0],))
            return cur.rowcount

    # -- templates ------------------------------------------------------------------------
    def add_templates(
        self,
        name: str,
        embeddings: Sequence[F32],
        *,
        pack: str,
        image_sha256: Sequence[str | None] | None = None,
        quality: Sequence[float | None] | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> list[int]:
        """Store templates for a person (created if new), all in one transaction."""
        name = check_name(name)
        checked = check_templates(embeddings, image_sha256, quality)
        vecs = [vec for vec, _, _ in checked]
        hashes = [digest for _, digest, _ in checked]
        quals = [q for _, _, q in checked]
        now = time.time()
        with self._write() as conn:
            existing = conn.execute(
                "SELECT pack, dim FROM templates WHERE collection_id = %s LIMIT 1",
                (self.collection_id,),
            ).fetchone()
            if existing is not None and (existing[0] != pack or existing[1] != len(vecs[0])):
                raise GalleryError(
                    f"collection {self.name!r} holds templates of model pack {existing[0]!r}; "
                    f"refusing to mix in templates of {pack!r}"
                )
            row = conn.execute(
                "INSERT INTO people(collection_id, name, metadata, created) "
                "VALUES (%s, %s, %s, %s) ON CONFLICT (collection_id, name) DO NOTHING "
                "RETURNING id",
                (self.collection_id, name, json.dumps(metadata or {}), now),
            ).fetchone()
            if row is None:
                row = conn.execute(
                    "SELECT id FROM people WHERE collection_id = %s AND name = %s",
                    (self.collection_id, name),
                ).fetchone()
                assert row is not None
                if metadata is not None:
                    conn.execute(
                        "UPDATE people SET metadata = %s WHERE id = %s",
                        (json.dumps(metadata), row[0]),
                    )
            pid = int(row[0])
            ids: list[int] = []
            for vec, digest, q in zip(vecs, hashes, quals, strict=True):
                sql = (
                    "INSERT INTO templates(collection_id, person_id, embedding, dim, pack, "
                    "image_sha256, quality, created"
                )
                args: list[Any] = [
                    self.collection_id,
                    pid,
                    self.db.codec.encode(vec.astype("<f4").tobytes(), aad(pid, pack)),
                    len(vec),
                    pack,
                    digest, q, now,
                ]  # fmt: skip
                if self.db.vector and len(vec) == DEFAULT_PACK.dim:
                    sql += ", vec) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s::vector)"
                    args.append(_vec_literal(vec))
                else:
                    sql += ") VALUES (%s, %s, %s, %s, %s, %s, %s, %s)"
                out = conn.execute(sql + " RETURNING id", args).fetchone()
                assert out is not None
                ids.append(int(out[0]))
        return ids

    def templates(self, name: str | None = None) -> list[Template]:
        sql = (
            "SELECT t.id, p.name, t.embedding, t.pack, t.image_sha256, t.quality, t.created, "
            "t.person_id FROM templates t JOIN people p ON p.id = t.person_id "
            "WHERE t.collection_id = %s"
        )
        args: tuple[Any, ...] = (self.collection_id,)
        if name is not None:
            self.get(name)
            sql += " AND p.name = %s"
            args = (self.collection_id, name)
        with self.db.pool.connection() as conn:
            rows = conn.execute(sql + " ORDER BY t.id", args).fetchall()
        return [
            Template(
                int(r[0]),
                r[1],
                np.frombuffer(
                    self.db.codec.decode(bytes(r[2]), aad(int(r[7]), r[3])), "<f4"
                ).copy(),
                r[3],
                r[4],
                r[5],
                r[6],
            )
            for r in rows
        ]

    def remove_template(self, template_id: int) -> None:
        with self._write() as conn:
            cur = conn.execute(
                "DELETE FROM templates WHERE id = %s AND collection_id = %s",
                (template_id, self.collection_id),
            )
            if cur.rowcount == 0:
                raise NotFoundError(f"no template with id {template_id} in {self.name!r}")

    def has_image(self, image_sha256: str) -> bool:
        with self.db.pool.connection() as conn:
            row = conn.execute(
                "SELECT 1 FROM templates WHERE collection_id = %s AND image_sha256 = %s LIMIT 1",
                (self.collection_id, image_sha256),
            ).fetchone()
        return row is not None

    # -- search ---------------------------------------------------------------------------
    def search(self, probes: F32, k: int = 1) -> list[list[Candidate]]:
        """Top-k people per probe by best-template cosine similarity (no threshold)."""
        probes = np.atleast_2d(np.asarray(probes, dtype=np.float32))
        if self.db.vector and probes.shape[1] == DEFAULT_PACK.dim:
            out = [self._search_vector(p, k) for p in probes]
            if any(out):
                return out
        index, names = self.db.exact_index(self.collection_id)
        if len(index) == 0:
            raise GalleryError(f"collection {self.name!r} is empty; enroll someone first")
        hits = index.search(probes, k)
        return [[Candidate(names[h.person], h.score) for h in row] for row in hits]

    def _search_vector(self, probe: F32, k: int) -> list[Candidate]:
        """HNSW search in the database: nearest templates, then best template per person."""
        literal = _vec_literal(probe)
        with self.db.transaction() as conn:
            conn.execute("SET LOCAL hnsw.ef_search = 200")
            rows = conn.execute(
                "SELECT p.name, 1 - (t.vec <=> %s::vector) FROM templates t "
                "JOIN people p ON p.id = t.person_id WHERE t.collection_id = %s "
                "ORDER BY t.vec <=> %s::vector LIMIT %s",
                (literal, self.collection_id, literal, max(10, 10 * k)),
            ).fetchall()
        best: dict[str, float] = {}
        for name, score in rows:
            best.setdefault(str(name), float(score))
        return [Candidate(n, s) for n, s in list(best.items())[:k]]


def _check_collection(name: str) -> str:
    name = name.strip()
    if not name or len(name) > 100 or not all(c.isalnum() or c in "-_." for c in name):
        raise GalleryError(
            f"invalid collection name {name!r}: use letters, digits, '-', '_' or '.' (max 100)"
        )
    return name


def _safe(url: str) -> str:
    """A connection URL without its password, for messages."""
    if "@" in url and "://" in url:
        scheme, rest = url.split("://", 1)
        creds, host = rest.rsplit("@", 1)
        return f"{scheme}://{creds.split(':', 1)[0]}@{host}"
    return url
