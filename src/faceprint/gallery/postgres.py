"""The PostgreSQL engine: collections of people and templates in one database, for the
service and several worker processes.

Search is the same as on SQLite (exact, or FAISS above a size; an index per worker, rebuilt
when a collection's generation changed). With the pgvector extension and
``FACEPRINT_INDEX=pgvector``, templates also go into a ``vector`` column with an HNSW
cosine index and the database searches (never for encrypted templates).
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import numpy as np
import psycopg
from psycopg_pool import ConnectionPool

from faceprint.errors import GalleryError
from faceprint.gallery import schema
from faceprint.gallery.database import BaseTx, Conflict, Database, Tx

if TYPE_CHECKING:
    from faceprint.gallery.store import Candidate, Store

_LOCK_ID = 0x66616365  # pg_advisory_xact_lock key serialising migrations ("face")
#: Dimension of the pgvector column (the default pack's templates).
VECTOR_DIM = 128

_VECTOR_SCHEMA = f"""
CREATE EXTENSION IF NOT EXISTS vector;
ALTER TABLE templates ADD COLUMN IF NOT EXISTS vec vector({VECTOR_DIM});
CREATE INDEX IF NOT EXISTS templates_vec_hnsw ON templates USING hnsw (vec vector_cosine_ops)
"""


class _Tx(BaseTx):
    def __init__(self, conn: psycopg.Connection[Any], where: str) -> None:
        super().__init__(where)
        self.conn = conn

    def _run(self, sql: str, args: Sequence[Any]) -> tuple[list[tuple[Any, ...]], int]:
        try:
            cur = self.conn.execute(sql, tuple(args) if args else None)
            rows = cur.fetchall() if cur.description is not None else []
        except psycopg.errors.UniqueViolation as exc:
            raise Conflict(f"{self.where}: already exists ({exc.diag.message_primary})") from None
        except (psycopg.errors.DataError, psycopg.errors.IntegrityError) as exc:
            raise GalleryError(f"{self.where}: refused ({exc.diag.message_primary})") from None
        except psycopg.OperationalError as exc:
            raise GalleryError(f"{self.where}: database unavailable ({exc})") from None
        except psycopg.Error as exc:
            raise GalleryError(f"{self.where}: refused ({exc})") from None
        return [tuple(r) for r in rows], cur.rowcount


class PostgresDatabase(Database):
    """A connection pool to one PostgreSQL database holding faceprint collections.

    ``components`` are extra (name, migrations) pairs applied at start, e.g. the service's
    own tables.
    """

    kind = "postgresql"

    def __init__(
        self,
        url: str,
        *,
        max_connections: int = 8,
        vector: bool | None = None,
        components: Sequence[tuple[str, dict[str, list[str]]]] = (),
        connect_timeout: float = 10.0,
    ) -> None:
        super().__init__()
        self.url = url
        self.where = f"PostgreSQL {safe_url(url)}"
        try:  # one direct attempt first: its error says why (a pool only times out)
            psycopg.connect(url, connect_timeout=int(connect_timeout)).close()
        except (psycopg.Error, ValueError) as exc:
            raise GalleryError(f"cannot connect to {self.where}: {_reason(exc)}") from None
        try:
            self.pool = ConnectionPool(
                url, min_size=1, max_size=max_connections, kwargs={"autocommit": True},
                open=True, timeout=30,
            )  # fmt: skip
            self.pool.wait(timeout=connect_timeout)
        except Exception as exc:  # psycopg_pool raises PoolTimeout; connection errors vary
            raise GalleryError(f"cannot connect to {self.where}: {_reason(exc)}") from None
        try:
            with self.transaction() as tx:
                tx.execute("SELECT pg_advisory_xact_lock(%s)", (_LOCK_ID,))
                self.script(tx, schema.SCHEMA_TABLE)
                self._adopt_old_layout(tx)
                self.migrate(tx, "gallery", schema.GALLERY)
                for name, migrations in components:
                    self.migrate(tx, name, migrations)
                self.codec = self.open_codec(tx)
            wanted = (
                vector if vector is not None else os.environ.get("FACEPRINT_INDEX") == "pgvector"
            )
            self.vector = bool(wanted) and not self.codec.encrypted and self._setup_vector()
        except BaseException:
            self.pool.close()
            raise

    def _adopt_old_layout(self, tx: Tx) -> None:
        """A database of faceprint 0.1 (``schema_version`` 1-3) already has these tables:
        record them so the migrations only adjust what changed."""
        old = tx.one("SELECT to_regclass('schema_version') IS NOT NULL")
        if old and old[0] and tx.one("SELECT 1 FROM faceprint_schema") is None:
            tx.execute("CREATE TABLE IF NOT EXISTS db_meta (key TEXT PRIMARY KEY, value TEXT)")
            tx.execute("DROP TABLE schema_version")

    def _setup_vector(self) -> bool:
        with self.reading() as tx:
            row = tx.one("SELECT 1 FROM pg_available_extensions WHERE name = 'vector'")
        if row is None:
            return False
        try:
            with self.transaction() as tx:
                tx.execute("SELECT pg_advisory_xact_lock(%s)", (_LOCK_ID,))
                self.script(tx, _VECTOR_SCHEMA)
                rows = tx.execute(
                    "SELECT id, embedding FROM templates WHERE vec IS NULL AND dim = %s",
                    (VECTOR_DIM,),
                )
                for tid, blob in rows:
                    self.on_template_added(tx, int(tid), np.frombuffer(bytes(blob), "<f4"))
        except GalleryError:
            return False  # e.g. no privilege to create the extension: in-process search
        return True

    # -- Database --------------------------------------------------------------------------
    @contextmanager
    def transaction(self) -> Iterator[Tx]:
        try:
            with self.pool.connection() as conn, conn.transaction():
                yield _Tx(conn, self.where)
        except psycopg.OperationalError as exc:
            raise GalleryError(f"{self.where}: database unavailable ({_reason(exc)})") from None

    @contextmanager
    def reading(self) -> Iterator[Tx]:
        try:
            with self.pool.connection() as conn, conn.transaction():
                conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")
                yield _Tx(conn, self.where)
        except psycopg.OperationalError as exc:
            raise GalleryError(f"{self.where}: database unavailable ({_reason(exc)})") from None

    def script(self, tx: Tx, sql: str) -> None:
        tx.execute(sql)  # no parameters: PostgreSQL runs several statements in one call

    def after_erase(self) -> None:
        """VACUUM so erased rows do not linger as dead tuples (best effort)."""
        try:
            with self.pool.connection() as conn:
                conn.execute("VACUUM templates, people")
        except psycopg.Error:
            pass  # erasure itself is committed; VACUUM needs table ownership

    def close(self) -> None:
        self.pool.close()

    # -- pgvector --------------------------------------------------------------------------
    def on_template_added(self, tx: Tx, template_id: int, embedding: Any) -> None:
        if getattr(self, "vector", False) and len(embedding) == VECTOR_DIM:
            tx.execute(
                "UPDATE templates SET vec = %s::vector WHERE id = %s",
                (_vec_literal(embedding), template_id),
            )

    def vector_search(self) -> Any:
        return _search_vector if self.vector else None


def _search_vector(store: Store, probes: Any, k: int) -> list[list[Candidate]] | None:
    """HNSW search in the database, filtered to the collection, best template per person."""
    from faceprint.gallery.store import Candidate

    if probes.shape[1] != VECTOR_DIM:
        return None
    out: list[list[Candidate]] = []
    for probe in probes:
        literal = _vec_literal(probe)
        with store.db.transaction() as tx:
            tx.execute("SET LOCAL hnsw.ef_search = 200")
            rows = tx.execute(
                "SELECT p.name, 1 - (t.vec <=> %s::vector) FROM templates t "
                "JOIN people p ON p.id = t.person_id WHERE t.collection_id = %s "
                "ORDER BY t.vec <=> %s::vector LIMIT %s",
                (literal, store.collection_id, literal, max(10, 10 * k)),
            )
        names = list(dict.fromkeys(str(name) for name, _ in rows))
        if not names:
            return None
        scored = [(n, _person(store, n, probe)) for n in names]  # the one person-score rule
        scored.sort(key=lambda ns: -ns[1])
        out.append([Candidate(n, s) for n, s in scored[:k]])
    return out


def _person(store: Store, name: str, probe: Any) -> float:
    from faceprint.match.search import person_score

    mine = store.templates(name)
    quality = [np.nan if t.quality is None else t.quality for t in mine]
    return person_score(np.stack([t.embedding for t in mine]), probe, quality)


def _vec_literal(vec: Any) -> str:
    return "[" + ",".join(f"{float(v):.7g}" for v in vec) + "]"


def safe_url(url: str) -> str:
    """A connection URL without its password, for messages."""
    return re.sub(r"(://[^:/@]+):[^@/]*@", r"\1@", url)


def _reason(exc: BaseException) -> str:
    """The cause of a connection failure in one line, without the password."""
    text = str(exc).strip().splitlines()
    return safe_url(text[0] if text else type(exc).__name__)
