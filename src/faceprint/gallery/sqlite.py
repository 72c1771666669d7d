"""The embedded engine: a gallery is one SQLite file (WAL mode, application id 'FPRT').

Opening never changes a file that is not a faceprint gallery: the file's header and
application id are checked first, read-only opens use SQLite's read-only mode (a gallery
you may only read can still be searched), and only :class:`SqliteDatabase` opened with
``create=True`` makes a new file (mode 0600). A gallery of faceprint 0.1 (schema 1) is
upgraded in place when opened for writing, and read through an in-memory copy otherwise.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import sqlite3
import stat
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from faceprint.errors import GalleryError
from faceprint.gallery import schema
from faceprint.gallery.database import BaseTx, Conflict, Database, Tx
from faceprint.log import note

#: ``PRAGMA application_id`` of faceprint galleries ("FPRT").
APPLICATION_ID = 0x46505254
_HEADER = b"SQLite format 3\x00"


class _Tx(BaseTx):
    """A transaction on the one connection (the caller holds the lock)."""

    def __init__(self, conn: sqlite3.Connection, where: str) -> None:
        super().__init__(where)
        self.conn = conn

    def _run(self, sql: str, args: Sequence[Any]) -> tuple[list[tuple[Any, ...]], int]:
        try:
            cur = self.conn.execute(sql.replace("%s", "?"), tuple(args))
            rows = cur.fetchall()
        except sqlite3.IntegrityError as exc:
            if "UNIQUE" in str(exc):
                raise Conflict(f"{self.where}: already exists ({exc})") from None
            raise GalleryError(f"{self.where}: refused by the gallery's rules ({exc})") from None
        except sqlite3.OperationalError as exc:
            text = str(exc)
            if "locked" in text or "busy" in text:
                raise GalleryError(f"{self.where}: gallery is busy ({exc}); try again") from None
            if "readonly" in text or "read-only" in text:
                raise GalleryError(f"{self.where}: gallery file is read-only ({exc})") from None
            raise GalleryError(
                f"{self.where}: damaged or not a faceprint gallery ({exc})"
            ) from None
        except sqlite3.DatabaseError as exc:
            raise GalleryError(f"{self.where}: damaged gallery ({exc})") from None
        except OverflowError:
            raise GalleryError(f"{self.where}: a number is out of range") from None
        return [tuple(r) for r in rows], cur.rowcount


def _check_file(path: Path, create: bool) -> bool:
    """Whether the gallery file exists and looks like SQLite; refuses everything else
    (directories, devices, FIFOs, empty or foreign files) without opening it for writing."""
    try:
        st = path.stat()
    except FileNotFoundError:
        if not create:
            raise GalleryError(f"{path}: no such gallery (enroll someone first)") from None
        return False
    except OSError as exc:
        raise GalleryError(f"{path}: cannot use as a gallery ({exc.strerror or exc})") from None
    if stat.S_ISDIR(st.st_mode):
        raise GalleryError(f"{path}: is a directory, not a gallery file")
    if not stat.S_ISREG(st.st_mode):
        raise GalleryError(f"{path}: not a regular file, not a gallery")
    if st.st_size == 0:
        raise GalleryError(
            f"{path}: an empty file, not a faceprint gallery (remove it to create a gallery there)"
        )
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
        try:
            head = os.read(fd, 100)
        finally:
            os.close(fd)
    except OSError as exc:
        raise GalleryError(f"{path}: cannot read the gallery ({exc.strerror or exc})") from None
    if not head.startswith(_HEADER) or len(head) < 72:
        raise GalleryError(f"{path}: not a faceprint gallery (not a SQLite file)")
    app_id = int.from_bytes(head[68:72], "big")
    if app_id not in (0, APPLICATION_ID):
        raise GalleryError(f"{path}: not a faceprint gallery (another program's SQLite file)")
    if st.st_mode & 0o077:
        note(
            f"{path} can be read by other users (mode "
            f"{stat.S_IMODE(st.st_mode):o}); it holds face templates: chmod 600 {path}"
        )
    return True


def _create_file(path: Path) -> None:
    """Make a new, marked gallery file (mode 0600) atomically: it is built under a temporary
    name and linked into place, so no other process ever sees it empty or half made (a
    process that loses the race uses the winner's file)."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.new")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
        conn = sqlite3.connect(tmp)
        try:
            mark = f";\nPRAGMA application_id = {APPLICATION_ID};"
            conn.executescript(schema.SCHEMA_TABLE + mark)
        finally:
            conn.close()
        with contextlib.suppress(FileExistsError):  # another process made it first: use theirs
            os.link(tmp, path)
    except (OSError, sqlite3.Error) as exc:
        why = exc.strerror if isinstance(exc, OSError) and exc.strerror else exc
        raise GalleryError(f"{path}: cannot create the gallery ({why})") from None
    finally:
        with contextlib.suppress(OSError):
            tmp.unlink()


def _kind(conn: sqlite3.Connection, path: Path) -> str:
    """'new', 'current' (has faceprint_schema), 'v1' (faceprint 0.1) — or refuse."""
    try:
        names = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        app_id = int(conn.execute("PRAGMA application_id").fetchone()[0])
        if "faceprint_schema" in names and app_id == APPLICATION_ID:
            return "current"
        if "meta" in names and "templates" in names and "people" in names:
            row = conn.execute("SELECT value FROM meta WHERE key='schema'").fetchone()
            if row is not None and str(row[0]) == "1":
                return "v1"
        if not names and app_id == 0:
            return "new"
    except sqlite3.DatabaseError as exc:
        raise GalleryError(f"{path}: damaged or not a faceprint gallery ({exc})") from None
    raise GalleryError(f"{path}: not a faceprint gallery (a SQLite file of another program)")


class SqliteDatabase(Database):
    """A gallery file. ``create``: make it if missing; ``read_only``: never write."""

    kind = "sqlite"

    def __init__(
        self,
        path: str | Path,
        *,
        create: bool = False,
        read_only: bool = False,
        components: Sequence[tuple[str, dict[str, list[str]]]] = (),
    ) -> None:
        super().__init__()
        self.path = Path(path)
        self.where = str(self.path)
        self.read_only = read_only
        self._lock = threading.RLock()
        if not _check_file(self.path, create and not read_only):
            _create_file(self.path)
            _check_file(self.path, False)
        self._conn = self._connect(read_only)
        try:
            kind = _kind(self._conn, self.path)
            if kind == "new":
                raise GalleryError(f"{self.path}: not a faceprint gallery (an empty SQLite file)")
            if read_only and (kind == "v1" or self._outdated()):
                # read an old gallery through an upgraded copy in memory: the file stays as is
                self._conn = self._memory_copy(self._conn)
            if not read_only:  # readers never block the writer (a no-op when already WAL)
                _Tx(self._conn, self.where).execute("PRAGMA journal_mode = WAL")
            with self.transaction(setup=True) as tx:
                if kind == "v1":
                    self.script(tx, schema.SQLITE_FROM_V1)
                    self.script(tx, schema.SCHEMA_TABLE)
                    tx.execute(f"PRAGMA application_id = {APPLICATION_ID}")
                if not read_only or self._conn_is_memory:
                    self.migrate(tx, "gallery", schema.GALLERY)
                    for name, migrations in components:
                        self.migrate(tx, name, migrations)
                self.codec = self.open_codec(tx)
        except BaseException:
            self._conn.close()
            raise

    def _connect(self, read_only: bool) -> sqlite3.Connection:
        uri = self.path.resolve().as_uri()
        try:
            if read_only:
                try:
                    conn = sqlite3.connect(f"{uri}?mode=ro", uri=True, **_OPTIONS)
                    conn.execute("SELECT COUNT(*) FROM sqlite_master").fetchone()
                except sqlite3.OperationalError:
                    # a WAL gallery in a folder we cannot write: nothing else can write it
                    conn = sqlite3.connect(f"{uri}?immutable=1", uri=True, **_OPTIONS)
            else:
                conn = sqlite3.connect(str(self.path), **_OPTIONS)
                conn.execute("PRAGMA secure_delete = ON")  # erased rows are zeroed
                conn.execute("PRAGMA synchronous = FULL")
            conn.execute("PRAGMA foreign_keys = ON")
        except sqlite3.DatabaseError as exc:
            raise GalleryError(f"{self.path}: cannot open the gallery ({exc})") from None
        return conn

    _conn_is_memory = False

    def _outdated(self) -> bool:
        """Whether a current-format gallery's schema differs from this faceprint's (older:
        read through an upgraded copy; newer: refused by ``migrate``, as for writers)."""
        try:
            row = self._conn.execute(
                "SELECT version FROM faceprint_schema WHERE component = 'gallery'"
            ).fetchone()
        except sqlite3.DatabaseError as exc:
            raise GalleryError(f"{self.path}: damaged gallery ({exc})") from None
        try:
            version = int(row[0]) if row else 0
        except (TypeError, ValueError):
            raise GalleryError(
                f"{self.path}: damaged gallery (schema version {row[0]!r})"
            ) from None
        return version != len(schema.GALLERY["sqlite"])

    def _memory_copy(self, conn: sqlite3.Connection) -> sqlite3.Connection:
        memory = sqlite3.connect(":memory:", **_OPTIONS)
        try:
            conn.backup(memory)
        except sqlite3.DatabaseError as exc:
            raise GalleryError(f"{self.path}: damaged gallery ({exc})") from None
        finally:
            conn.close()
        memory.execute("PRAGMA foreign_keys = ON")
        self._conn_is_memory = True
        return memory

    # -- Database --------------------------------------------------------------------------
    @contextmanager
    def transaction(self, setup: bool = False) -> Iterator[Tx]:
        with self._lock:
            if self.read_only and not setup:
                raise GalleryError(f"{self.where}: opened read-only; nothing can be changed")
            tx = _Tx(self._conn, self.where)
            tx.execute("BEGIN" if self.read_only else "BEGIN IMMEDIATE")
            try:
                yield tx
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            tx.execute("COMMIT")

    @contextmanager
    def reading(self) -> Iterator[Tx]:
        with self._lock:
            tx = _Tx(self._conn, self.where)
            tx.execute("BEGIN")
            try:
                yield tx
            finally:
                self._conn.execute("ROLLBACK")

    def script(self, tx: Tx, sql: str) -> None:
        for statement in sql.split(";"):
            if statement.strip():
                tx.execute(statement)

    def index_path(self, collection: str) -> Path:
        suffix = ".faiss" if collection == "default" else f".{collection}.faiss"
        return self.path.with_name(self.path.name + suffix)

    def after_erase(self) -> None:
        with self._lock:
            try:
                self._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            except sqlite3.DatabaseError as exc:
                raise GalleryError(f"{self.where}: could not scrub the WAL ({exc})") from None

    def close(self) -> None:
        with self._lock:
            self._conn.close()


_OPTIONS: dict[str, Any] = {"timeout": 30, "isolation_level": None, "check_same_thread": False}
