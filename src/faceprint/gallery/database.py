"""What the SQLite and PostgreSQL databases share: transactions with one SQL dialect,
component migrations, collections, the template codec and the per-process search indexes.

Every SQL statement faceprint runs is written once, with ``%s`` placeholders, and runs on
both engines (SQLite 3.35+ has ``RETURNING`` and ``ON CONFLICT``); only the DDL of each
component's migrations differs per engine. A driver's "already exists" error becomes
:class:`Conflict`, so callers never see a driver exception.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from faceprint.errors import GalleryError, NotFoundError
from faceprint.gallery.crypto import TemplateCodec, choose_codec
from faceprint.match.index import SearchIndex

if TYPE_CHECKING:
    from faceprint.gallery.store import Store

#: The collection a gallery file's commands use when none is named.
DEFAULT_COLLECTION = "default"


class Conflict(GalleryError):
    """A write that breaks a uniqueness rule (the name, or the photo, is taken)."""


class Tx(Protocol):
    """One transaction (or read snapshot) on either engine."""

    def execute(self, sql: str, args: Sequence[Any] = ()) -> list[tuple[Any, ...]]: ...

    def one(self, sql: str, args: Sequence[Any] = ()) -> tuple[Any, ...] | None: ...

    @property
    def rowcount(self) -> int: ...


class BaseTx:
    """What both engines' transactions share: ``one`` and ``rowcount`` over ``_run``."""

    def __init__(self, where: str) -> None:
        self.where = where
        self._rowcount = 0

    def _run(self, sql: str, args: Sequence[Any]) -> tuple[list[tuple[Any, ...]], int]:
        raise NotImplementedError

    def execute(self, sql: str, args: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        rows, self._rowcount = self._run(sql, args)
        return rows

    def one(self, sql: str, args: Sequence[Any] = ()) -> tuple[Any, ...] | None:
        rows = self.execute(sql, args)
        return rows[0] if rows else None

    @property
    def rowcount(self) -> int:
        return self._rowcount


#: A component's migrations per engine: a list of SQL scripts, applied in order.
Migrations = dict[str, list[str]]


@dataclass(frozen=True)
class Collection:
    name: str
    people: int
    templates: int
    created: float


class Database:
    """Base of :class:`SqliteDatabase` and :class:`PostgresDatabase`."""

    kind: str  # "sqlite" or "postgresql"
    where: str  # for messages
    read_only: bool = False
    codec: TemplateCodec

    def __init__(self) -> None:
        self._indexes: dict[int, tuple[int, SearchIndex, list[str], list[int]]] = {}
        self._index_lock = threading.Lock()

    # -- engine specifics ------------------------------------------------------------------
    def transaction(self) -> AbstractContextManager[Tx]:
        """A write transaction: all of it is stored, or none of it."""
        raise NotImplementedError

    def reading(self) -> AbstractContextManager[Tx]:
        """A consistent read snapshot (never writes)."""
        raise NotImplementedError

    def script(self, tx: Tx, sql: str) -> None:
        """Run a DDL script of several statements inside ``tx``."""
        raise NotImplementedError

    def index_path(self, collection: str) -> Any:
        """Where a collection's approximate index is kept (None: memory only)."""
        return None

    def close(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> Database:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def vector_search(self) -> Any:
        """The engine's own nearest-neighbour search (pgvector), or None."""
        return None

    def on_template_added(self, tx: Tx, template_id: int, embedding: Any) -> None:
        """Engine hook after a template row is inserted (pgvector's column)."""

    # -- migrations and codec --------------------------------------------------------------
    def migrate(self, tx: Tx, component: str, migrations: Migrations) -> int:
        """Bring ``component``'s tables to its latest version inside ``tx``."""
        steps = migrations[self.kind]
        row = tx.one("SELECT version FROM faceprint_schema WHERE component = %s", (component,))
        version = _version(row, self.where)
        if version > len(steps):
            raise GalleryError(
                f"{self.where}: its {component} schema ({version}) is newer than this "
                f"faceprint's ({len(steps)}); upgrade faceprint"
            )
        for sql in steps[version:]:
            self.script(tx, sql)
        if row is None:
            tx.execute(
                "INSERT INTO faceprint_schema(component, version) VALUES (%s, %s)",
                (component, len(steps)),
            )
        elif version != len(steps):
            tx.execute(
                "UPDATE faceprint_schema SET version = %s WHERE component = %s",
                (len(steps), component),
            )
        return len(steps)

    def schema_version(self, component: str) -> int:
        with self.reading() as tx:
            row = tx.one("SELECT version FROM faceprint_schema WHERE component = %s", (component,))
        return _version(row, self.where)

    def open_codec(self, tx: Tx) -> TemplateCodec:
        """The template codec (gallery/crypto.py); records the key check on first use."""
        row = tx.one("SELECT value FROM db_meta WHERE key = 'template_key_check'")
        has = tx.one("SELECT 1 FROM templates LIMIT 1") is not None
        codec, record = choose_codec(None if row is None else str(row[0]), has, self.where)
        if record is not None:
            if self.read_only:
                raise GalleryError(f"{self.where}: read-only; cannot start encrypting templates")
            tx.execute(
                "INSERT INTO db_meta(key, value) VALUES ('template_key_check', %s)", (record,)
            )
        return codec

    # -- collections -----------------------------------------------------------------------
    def create_collection(self, name: str) -> None:
        name = check_collection(name)
        with self.transaction() as tx:
            try:
                tx.execute(
                    "INSERT INTO collections(name, generation, created) VALUES (%s, 0, %s)",
                    (name, time.time()),
                )
            except Conflict:
                raise Conflict(f"collection {name!r} already exists") from None

    def delete_collection(self, name: str) -> None:
        with self.transaction() as tx:
            row = tx.one("SELECT id FROM collections WHERE name = %s", (name,))
            if row is None:
                raise NotFoundError(f"no collection named {name!r}")
            for table in ("templates", "people", "settings"):
                tx.execute(f"DELETE FROM {table} WHERE collection_id = %s", (row[0],))
            tx.execute("DELETE FROM collections WHERE id = %s", (row[0],))
        self.after_erase()

    def collections(self) -> list[Collection]:
        with self.reading() as tx:
            rows = tx.execute(
                "SELECT c.name, "
                "(SELECT COUNT(*) FROM people p WHERE p.collection_id = c.id), "
                "(SELECT COUNT(*) FROM templates t WHERE t.collection_id = c.id), c.created "
                "FROM collections c ORDER BY c.name"
            )
        return [Collection(r[0], int(r[1]), int(r[2]), float(r[3])) for r in rows]

    def collection(self, name: str, *, create: bool = False) -> Store:
        """The store of one collection (NotFoundError if it does not exist and not
        ``create``)."""
        from faceprint.gallery.store import Store

        name = check_collection(name)  # a name no collection can have is refused, not looked up
        with self.reading() as tx:
            row = tx.one("SELECT id FROM collections WHERE name = %s", (name,))
        if row is None and create:
            with contextlib.suppress(Conflict):  # created meanwhile by another process
                self.create_collection(name)
            with self.reading() as tx:
                row = tx.one("SELECT id FROM collections WHERE name = %s", (name,))
        if row is None:
            raise NotFoundError(f"{self.where}: no collection named {name!r}")
        return Store(self, int(row[0]), name)

    @contextlib.contextmanager
    def collection_write(self, collection_id: int, where: str) -> Iterator[Tx]:
        """A write transaction that locks a collection and bumps its generation (so every
        process's search index of it is rebuilt)."""
        if self.read_only:
            raise GalleryError(f"{self.where}: opened read-only; nothing can be changed")
        with self.transaction() as tx:
            row = tx.one(
                "UPDATE collections SET generation = generation + 1 WHERE id = %s RETURNING id",
                (collection_id,),
            )
            if row is None:
                raise NotFoundError(f"{where}: the collection was deleted")
            yield tx

    def after_erase(self) -> None:
        """Leave no copy of erased rows behind where the engine allows it."""

    # -- search indexes, one per collection per process ------------------------------------
    def cached_index(
        self,
        collection_id: int,
        generation: int,
        build: Callable[[SearchIndex | None], tuple[SearchIndex, list[str], list[int]]],
    ) -> tuple[SearchIndex, list[str], list[int]]:
        """The collection's index at ``generation``, built (from the previous one) if stale."""
        with self._index_lock:
            cached = self._indexes.get(collection_id)
            if cached is not None and cached[0] == generation:
                return cached[1], cached[2], cached[3]
            index, names, person_ids = build(cached[1] if cached else None)
            self._indexes[collection_id] = (generation, index, names, person_ids)
            return index, names, person_ids


def check_collection(name: str) -> str:
    if not isinstance(name, str):
        raise GalleryError("a collection name must be text")
    name = name.strip()
    if not name or len(name) > 100 or not all(c.isalnum() or c in "-_." for c in name):
        raise GalleryError(
            f"invalid collection name {name!r}: use letters, digits, '-', '_' or '.' (max 100)"
        )
    return name


def _version(row: tuple[Any, ...] | None, where: str) -> int:
    if row is None:
        return 0
    try:
        return int(row[0])
    except (TypeError, ValueError):
        raise GalleryError(f"{where}: damaged (schema version {row[0]!r})") from None
