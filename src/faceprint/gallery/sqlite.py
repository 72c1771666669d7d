"""The embedded gallery: one SQLite file holding people and their face templates.

Every write is one transaction (a crash mid-enrollment loses nothing already stored),
the file is in WAL mode so readers never block a writer, and templates of different
model packs are never mixed in one gallery.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from faceprint.errors import GalleryError
from faceprint.gallery.crypto import aad, open_codec
from faceprint.match.index import SearchIndex, build_index, index_path
from faceprint.match.search import F32

SCHEMA_VERSION = 1

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS people (
    id       INTEGER PRIMARY KEY,
    name     TEXT NOT NULL UNIQUE,
    metadata TEXT NOT NULL DEFAULT '{}',
    created  REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS templates (
    id           INTEGER PRIMARY KEY,
    person_id    INTEGER NOT NULL REFERENCES people(id) ON DELETE CASCADE,
    embedding    BLOB NOT NULL,
    dim          INTEGER NOT NULL,
    pack         TEXT NOT NULL,
    image_sha256 TEXT,
    quality      REAL,
    created      REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS templates_person ON templates(person_id);
CREATE INDEX IF NOT EXISTS templates_image ON templates(image_sha256);
"""


@dataclass(frozen=True)
class Person:
    """A person in the gallery, with how many templates they have."""

    name: str
    templates: int
    metadata: dict[str, Any] = field(default_factory=dict)
    created: float = 0.0


@dataclass(frozen=True)
class Template:
    id: int
    name: str
    embedding: F32
    pack: str
    image_sha256: str | None
    quality: float | None
    created: float


@dataclass(frozen=True)
class Candidate:
    """A gallery person proposed for a probe, with the best template similarity."""

    name: str
    score: float


class SqliteGallery:
    """People and templates in one SQLite file, with an in-memory exact search index.

    The index is rebuilt lazily whenever the file's ``generation`` counter changed,
    so several processes can share one gallery file.
    """

    def __init__(self, path: str | Path, *, create: bool = True) -> None:
        self.path = Path(path)
        if not create and not self.path.exists():
            raise GalleryError(f"{self.path}: no such gallery (enroll someone first)")
        if self.path.is_dir():
            raise GalleryError(f"{self.path}: is a directory, not a gallery file")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.RLock()
        try:
            self._db = sqlite3.connect(
                str(self.path), timeout=30, isolation_level=None, check_same_thread=False
            )
            self._db.execute("PRAGMA foreign_keys = ON")
            self._db.execute("PRAGMA journal_mode = WAL")
            self._db.execute("PRAGMA synchronous = FULL")
            self._db.execute("PRAGMA secure_delete = ON")  # erased rows are zeroed
            with self._write():
                for stmt in _SCHEMA.strip().split(";"):
                    if stmt.strip():
                        self._db.execute(stmt)
                row = self._db.execute("SELECT value FROM meta WHERE key='schema'").fetchone()
                if row is None:
                    self._db.execute(
                        "INSERT INTO meta(key, value) VALUES ('schema', ?), ('generation', '0')",
                        (str(SCHEMA_VERSION),),
                    )
                elif int(row[0]) > SCHEMA_VERSION:
                    raise GalleryError(
                        f"{self.path}: gallery schema {row[0]} is newer than this faceprint "
                        f"({SCHEMA_VERSION}); upgrade faceprint"
                    )
                self._codec = open_codec(self._db, str(self.path))
        except sqlite3.DatabaseError as exc:
            raise GalleryError(f"{self.path}: not a faceprint gallery ({exc})") from exc
        self._index: SearchIndex | None = None
        self._index_names: list[str] = []
        self._index_generation = -1

    # -- plumbing -------------------------------------------------------------------------
    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """One IMMEDIATE transaction: all of it is stored, or none of it."""
        with self._lock:
            try:
                self._db.execute("BEGIN IMMEDIATE")
            except sqlite3.OperationalError as exc:
                raise GalleryError(f"{self.path}: gallery is busy or read-only ({exc})") from exc
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            else:
                self._db.execute(
                    "UPDATE meta SET value = CAST(value AS INTEGER) + 1 WHERE key='generation'"
                )
                self._db.execute("COMMIT")

    def _generation(self) -> int:
        row = self._db.execute("SELECT value FROM meta WHERE key='generation'").fetchone()
        return int(row[0]) if row else 0

    def _vector(self, blob: bytes, person_id: int, pack: str) -> F32:
        return np.frombuffer(self._codec.decode(blob, aad(person_id, pack)), dtype="<f4").copy()

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def __enter__(self) -> SqliteGallery:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- settings -------------------------------------------------------------------------
    def setting(self, key: str) -> str | None:
        row = self._db.execute("SELECT value FROM meta WHERE key=?", ("setting." + key,)).fetchone()
        return None if row is None else str(row[0])

    def set_setting(self, key: str, value: str | None) -> None:
        with self._write() as db:
            if value is None:
                db.execute("DELETE FROM meta WHERE key=?", ("setting." + key,))
            else:
                db.execute(
                    "INSERT INTO meta(key, value) VALUES (?, ?) "
                    "ON CONFLICT(key) DO UPDATE SET value=excluded.value",
                    ("setting." + key, value),
                )

    @property
    def pack(self) -> str | None:
        """The model pack of every template here (None while the gallery is empty)."""
        row = self._db.execute("SELECT pack FROM templates LIMIT 1").fetchone()
        return None if row is None else str(row[0])

    # -- people ---------------------------------------------------------------------------
    def add_person(self, name: str, metadata: dict[str, Any] | None = None) -> None:
        name = check_name(name)
        with self._write() as db:
            try:
                db.execute(
                    "INSERT INTO people(name, metadata, created) VALUES (?, ?, ?)",
                    (name, json.dumps(metadata or {}), time.time()),
                )
            except sqlite3.IntegrityError as exc:
                raise GalleryError(f"person {name!r} already exists") from exc

    def update_person(
        self, name: str, *, new_name: str | None = None, metadata: dict[str, Any] | None = None
    ) -> None:
        with self._write() as db:
            pid = self._person_id(name)
            if new_name is not None:
                try:
                    db.execute("UPDATE people SET name=? WHERE id=?", (check_name(new_name), pid))
                except sqlite3.IntegrityError as exc:
                    raise GalleryError(f"person {new_name!r} already exists") from exc
            if metadata is not None:
                db.execute("UPDATE people SET metadata=? WHERE id=?", (json.dumps(metadata), pid))

    def _person_id(self, name: str) -> int:
        row = self._db.execute("SELECT id FROM people WHERE name=?", (name,)).fetchone()
        if row is None:
            raise GalleryError(f"no person named {name!r} in {self.path}")
        return int(row[0])

    def get(self, name: str) -> Person:
        row = self._db.execute(
            "SELECT p.name, COUNT(t.id), p.metadata, p.created FROM people p "
            "LEFT JOIN templates t ON t.person_id = p.id WHERE p.name=? GROUP BY p.id",
            (name,),
        ).fetchone()
        if row is None:
            raise GalleryError(f"no person named {name!r} in {self.path}")
        return Person(row[0], int(row[1]), json.loads(row[2]), float(row[3]))

    def people(self) -> list[Person]:
        rows = self._db.execute(
            "SELECT p.name, COUNT(t.id), p.metadata, p.created FROM people p "
            "LEFT JOIN templates t ON t.person_id = p.id GROUP BY p.id ORDER BY p.name"
        ).fetchall()
        return [Person(r[0], int(r[1]), json.loads(r[2]), float(r[3])) for r in rows]

    def __len__(self) -> int:
        return int(self._db.execute("SELECT COUNT(*) FROM people").fetchone()[0])

    def remove(self, name: str) -> int:
        """Forget a person and every template of theirs; returns how many templates went."""
        with self._write() as db:
            pid = self._person_id(name)
            row = db.execute("SELECT COUNT(*) FROM templates WHERE person_id=?", (pid,))
            n = int(row.fetchone()[0])
            db.execute("DELETE FROM templates WHERE person_id=?", (pid,))
            db.execute("DELETE FROM people WHERE id=?", (pid,))
        with self._lock:  # leave no copy of the erased rows in the WAL file
            self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        return n

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
        now = time.time()
        rows = [
            (vec.astype("<f4").tobytes(), len(vec), pack, digest, q, now)
            for vec, digest, q in check_templates(embeddings, image_sha256, quality)
        ]
        with self._write() as db:
            existing = db.execute("SELECT pack, dim FROM templates LIMIT 1").fetchone()
            if existing is not None and (existing[0] != pack or existing[1] != rows[0][1]):
                raise GalleryError(
                    f"{self.path} holds templates of model pack {existing[0]!r}; refusing to "
                    f"mix in templates of {pack!r} (use another gallery, or re-enroll)"
                )
            row = db.execute("SELECT id FROM people WHERE name=?", (name,)).fetchone()
            if row is None:
                cur = db.execute(
                    "INSERT INTO people(name, metadata, created) VALUES (?, ?, ?)",
                    (name, json.dumps(metadata or {}), now),
                )
                pid = int(cur.lastrowid or 0)
            else:
                pid = int(row[0])
                if metadata is not None:
                    db.execute(
                        "UPDATE people SET metadata=? WHERE id=?", (json.dumps(metadata), pid)
                    )
            ids = []
            for blob, dim, pk, digest, q, created in rows:
                cur = db.execute(
                    "INSERT INTO templates(person_id, embedding, dim, pack, image_sha256, "
                    "quality, created) VALUES (?, ?, ?, ?, ?, ?, ?)",
                    (pid, self._codec.encode(blob, aad(pid, pk)), dim, pk, digest, q, created),
                )
                ids.append(int(cur.lastrowid or 0))
        return ids

    def templates(self, name: str | None = None) -> list[Template]:
        sql = (
            "SELECT t.id, p.name, t.embedding, t.pack, t.image_sha256, t.quality, t.created, "
            "t.person_id "
            "FROM templates t JOIN people p ON p.id = t.person_id"
        )
        args: tuple[Any, ...] = ()
        if name is not None:
            self._person_id(name)
            sql += " WHERE p.name=?"
            args = (name,)
        rows = self._db.execute(sql + " ORDER BY t.id", args).fetchall()
        return [
            Template(r[0], r[1], self._vector(r[2], r[7], r[3]), r[3], r[4], r[5], r[6])
            for r in rows
        ]

    def remove_template(self, template_id: int) -> None:
        with self._write() as db:
            cur = db.execute("DELETE FROM templates WHERE id=?", (template_id,))
            if cur.rowcount == 0:
                raise GalleryError(f"no template with id {template_id}")

    def has_image(self, image_sha256: str) -> bool:
        row = self._db.execute(
            "SELECT 1 FROM templates WHERE image_sha256=? LIMIT 1", (image_sha256,)
        ).fetchone()
        return row is not None

    # -- search ---------------------------------------------------------------------------
    def _current_index(self) -> tuple[SearchIndex, list[str]]:
        with self._lock:
            gen = self._generation()
            if self._index is None or gen != self._index_generation:
                rows = self._db.execute(
                    "SELECT t.person_id, t.embedding, t.dim, t.id FROM templates t ORDER BY t.id"
                ).fetchall()
                names = dict(self._db.execute("SELECT id, name FROM people").fetchall())
                if rows:
                    dim = int(rows[0][2])
                    pack = self.pack or ""
                    blobs = [self._codec.decode(r[1], aad(r[0], pack)) for r in rows]
                    emb = np.frombuffer(b"".join(blobs), dtype="<f4")
                    emb = emb.reshape(len(rows), dim)
                    pids = np.array([r[0] for r in rows], dtype=np.int64)
                else:
                    emb = np.zeros((0, 1), np.float32)
                    pids = np.zeros(0, np.int64)
                uniq = sorted(set(pids.tolist()))
                remap = {p: i for i, p in enumerate(uniq)}
                people = np.array([remap[p] for p in pids.tolist()], dtype=np.int64)
                self._index = build_index(
                    emb.astype(np.float32),
                    people,
                    ids=np.array([r[3] for r in rows], dtype=np.int64),
                    path=index_path(self.path),
                    generation=gen,
                    previous=self._index,
                )
                self._index_names = [str(names[p]) for p in uniq]
                self._index_generation = gen
            return self._index, self._index_names

    def search(self, probes: F32, k: int = 1) -> list[list[Candidate]]:
        """Top-k people per probe by best-template cosine similarity (no threshold)."""
        index, names = self._current_index()
        if len(index) == 0:
            raise GalleryError(f"{self.path}: the gallery is empty; enroll someone first")
        hits = index.search(probes, k)
        return [[Candidate(names[h.person], h.score) for h in row] for row in hits]


def check_templates(
    embeddings: Sequence[F32],
    image_sha256: Sequence[str | None] | None,
    quality: Sequence[float | None] | None,
) -> list[tuple[F32, str | None, float | None]]:
    """Validate templates for storage: finite, non-zero, L2-normalised float32, each with
    its image hash and quality (or None). Every backend stores exactly these."""
    if not embeddings:
        raise GalleryError("nothing to enroll: no face templates given")
    hashes = list(image_sha256) if image_sha256 is not None else [None] * len(embeddings)
    quals = list(quality) if quality is not None else [None] * len(embeddings)
    if len(hashes) != len(embeddings) or len(quals) != len(embeddings):
        raise GalleryError("one image hash and one quality per template, or none")
    out = []
    for emb, digest, q in zip(embeddings, hashes, quals, strict=True):
        vec = np.asarray(emb, dtype=np.float32).reshape(-1)
        norm = float(np.linalg.norm(vec))
        if not np.all(np.isfinite(vec)) or norm == 0.0:
            raise GalleryError("refusing a template that is zero or not finite")
        out.append(((vec / norm).astype(np.float32), digest, q))
    return out


def check_name(name: str) -> str:
    name = name.strip()
    if not name or len(name) > 200 or any(ord(c) < 32 for c in name):
        raise GalleryError(f"invalid person name {name!r}")
    return name
