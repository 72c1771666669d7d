"""The store contract: one collection of people and face templates, on either engine.

:class:`Store` is the one implementation of every gallery rule that touches storage
(names, template checks, model packs never mixed, photos enrolled once, transactions,
erasure, search index upkeep); it runs the same SQL on SQLite and PostgreSQL through a
:class:`~faceprint.gallery.database.Database`. The behaviour suite (tests/test_store.py)
runs against both engines.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Sequence
from contextlib import AbstractContextManager
from typing import Any

import numpy as np

from faceprint.errors import GalleryError, NotFoundError
from faceprint.gallery.crypto import aad
from faceprint.gallery.database import Conflict, Database, Tx
from faceprint.gallery.records import (
    Added,
    Candidate,
    NewTemplate,
    Person,
    Template,
    _json,
    _metadata,
    _stored,
    _text,
    check_name,
    check_templates,
)
from faceprint.match.index import SearchIndex, build_index
from faceprint.match.search import F32


class Store:
    """One collection of a :class:`Database`: people, templates, settings and search."""

    def __init__(self, db: Database, collection_id: int, name: str) -> None:
        self.db = db
        self.collection_id = collection_id
        self.name = name

    @property
    def where(self) -> str:
        return f"{self.db.where} (collection {self.name!r})"

    def close(self) -> None:
        """Close the database (a store opened by :meth:`Gallery.open` owns it)."""
        self.db.close()

    # -- plumbing --------------------------------------------------------------------------
    def write(self) -> AbstractContextManager[Tx]:
        """A transaction that locks this collection and bumps its generation."""
        return self.db.collection_write(self.collection_id, self.where)

    def _writing(self, tx: Tx | None) -> AbstractContextManager[Tx]:
        """A new :meth:`write` transaction, or the caller's own ``tx`` (from :meth:`write`),
        so a component (the photo library) changes people and templates in the same
        transaction as its own rows. With ``tx`` the caller commits, and calls
        ``db.after_erase()`` after a removal."""
        return self.write() if tx is None else contextlib.nullcontext(tx)

    def _person_id(self, tx: Tx, name: str) -> int:
        row = tx.one(
            "SELECT id FROM people WHERE collection_id = %s AND name = %s",
            (self.collection_id, name),
        )
        if row is None:
            raise NotFoundError(f"no person named {name!r} in {self.where}")
        return int(row[0])

    def _vector(self, blob: bytes, person_id: int, pack: str, dim: int) -> F32:
        raw = self.db.codec.decode(bytes(blob), aad(person_id, pack))
        if len(raw) != 4 * dim:
            raise GalleryError(f"{self.where}: a stored template is damaged ({len(raw)} bytes)")
        vec: F32 = np.frombuffer(raw, dtype="<f4").astype(np.float32)
        if not np.all(np.isfinite(vec)):
            raise GalleryError(f"{self.where}: a stored template is damaged (not finite)")
        return vec

    # -- settings --------------------------------------------------------------------------
    def setting(self, key: str) -> str | None:
        with self.db.reading() as tx:
            row = tx.one(
                "SELECT value FROM settings WHERE collection_id = %s AND key = %s",
                (self.collection_id, key),
            )
        return None if row is None else str(row[0])

    def set_settings(self, values: dict[str, str | None]) -> None:
        """Set (or, with None, delete) several settings in one transaction."""
        with self.write() as tx:
            for key, value in values.items():
                tx.execute(
                    "DELETE FROM settings WHERE collection_id = %s AND key = %s",
                    (self.collection_id, key),
                )
                if value is not None:
                    tx.execute(
                        "INSERT INTO settings(collection_id, key, value) VALUES (%s, %s, %s)",
                        (self.collection_id, key, value),
                    )

    @property
    def pack(self) -> str | None:
        """The model pack of every template here (None while there are none)."""
        with self.db.reading() as tx:
            row = tx.one(
                "SELECT pack FROM templates WHERE collection_id = %s LIMIT 1",
                (self.collection_id,),
            )
        return None if row is None else str(row[0])

    # -- people ----------------------------------------------------------------------------
    def add_person(self, name: str, metadata: dict[str, Any] | None = None) -> None:
        name = check_name(name)
        with self.write() as tx:
            try:
                tx.execute(
                    "INSERT INTO people(collection_id, name, metadata, created) "
                    "VALUES (%s, %s, %s, %s)",
                    (self.collection_id, name, _json(metadata), time.time()),
                )
            except Conflict:
                raise Conflict(f"person {name!r} already exists in {self.where}") from None

    def update_person(
        self,
        name: str,
        *,
        new_name: str | None = None,
        metadata: dict[str, Any] | None = None,
        tx: Tx | None = None,
    ) -> None:
        """Rename a person (NotFoundError, or Conflict if the new name is taken) and/or
        replace their metadata."""
        with self._writing(tx) as tx:
            pid = self._person_id(tx, name)
            if new_name is not None:
                try:
                    tx.execute(
                        "UPDATE people SET name = %s WHERE id = %s", (check_name(new_name), pid)
                    )
                except Conflict:
                    raise Conflict(f"person {new_name!r} already exists in {self.where}") from None
            if metadata is not None:
                tx.execute("UPDATE people SET metadata = %s WHERE id = %s", (_json(metadata), pid))

    def _people(self, tx: Tx, where: str, args: tuple[Any, ...]) -> list[Person]:
        rows = tx.execute(
            "SELECT p.name, COUNT(t.id), p.metadata, p.created FROM people p "
            "LEFT JOIN templates t ON t.person_id = p.id "
            f"WHERE p.collection_id = %s {where} GROUP BY p.id, p.name, p.metadata, p.created "
            "ORDER BY p.name",
            (self.collection_id, *args),
        )
        with _stored(self.where):
            return [Person(_text(r[0]), int(r[1]), _metadata(r[2], self.where), float(r[3]))
                    for r in rows]  # fmt: skip

    def get(self, name: str) -> Person:
        with self.db.reading() as tx:
            found = self._people(tx, "AND p.name = %s", (name,))
        if not found:
            raise NotFoundError(f"no person named {name!r} in {self.where}")
        return found[0]

    def people(self) -> list[Person]:
        with self.db.reading() as tx:
            return self._people(tx, "", ())

    def __len__(self) -> int:
        with self.db.reading() as tx:
            row = tx.one(
                "SELECT COUNT(*) FROM people WHERE collection_id = %s", (self.collection_id,)
            )
        return int(row[0]) if row else 0

    def remove(self, name: str, *, tx: Tx | None = None) -> int:
        """Erase a person and every template of theirs; returns how many templates went.
        Freed storage is scrubbed where the engine allows (SQLite: zeroed pages and a
        truncated WAL; PostgreSQL: VACUUM of the tables)."""
        with self._writing(tx) as wtx:
            pid = self._person_id(wtx, name)
            row = wtx.one("SELECT COUNT(*) FROM templates WHERE person_id = %s", (pid,))
            wtx.execute("DELETE FROM templates WHERE person_id = %s", (pid,))
            wtx.execute("DELETE FROM people WHERE id = %s", (pid,))
        if tx is None:
            self.db.after_erase()
        return int(row[0]) if row else 0

    # -- templates -------------------------------------------------------------------------
    def add_templates(
        self,
        name: str,
        templates: Sequence[NewTemplate],
        *,
        pack: str,
        metadata: dict[str, Any] | None = None,
        tx: Tx | None = None,
    ) -> Added:
        """Store templates for a person (created if new), all in one transaction.

        A template whose photo (``image_sha256``) is already in this collection for the
        same person is skipped (reported in ``Added.already``), so a rerun adds nothing;
        the same photo for another person is refused (Conflict). The check and the insert
        are one transaction, so concurrent writers cannot both store it.
        """
        name = check_name(name)
        checked = check_templates(templates)
        now = time.time()
        out = Added()
        with self._writing(tx) as tx:
            existing = tx.one(
                "SELECT pack, dim FROM templates WHERE collection_id = %s LIMIT 1",
                (self.collection_id,),
            )
            dim = len(checked[0].embedding)
            with _stored(self.where):
                mixed = existing is not None and (existing[0] != pack or int(existing[1]) != dim)
            if mixed and existing is not None:
                raise GalleryError(
                    f"{self.where} holds templates of model pack {existing[0]!r}; refusing to "
                    f"mix in templates of {pack!r} (use another gallery, or re-enroll)"
                )
            pid = self._ensure_person(tx, name, metadata, now)
            for t in checked:
                if t.image_sha256 is not None:
                    owner = tx.one(
                        "SELECT p.name FROM templates t JOIN people p ON p.id = t.person_id "
                        "WHERE t.collection_id = %s AND t.image_sha256 = %s LIMIT 1",
                        (self.collection_id, t.image_sha256),
                    )
                    if owner is not None and owner[0] == name:
                        out.already.append(t.image_sha256)
                        continue
                    if owner is not None:
                        raise Conflict(
                            f"this photo is already enrolled as {owner[0]!r} in {self.where}"
                        )
                blob = self.db.codec.encode(t.embedding.astype("<f4").tobytes(), aad(pid, pack))
                row = tx.one(
                    "INSERT INTO templates(collection_id, person_id, embedding, dim, pack, "
                    "image_sha256, quality, created) VALUES (%s, %s, %s, %s, %s, %s, %s, %s) "
                    "RETURNING id",
                    (self.collection_id, pid, blob, dim, pack, t.image_sha256, t.quality, now),
                )
                assert row is not None
                out.ids.append(int(row[0]))
                self.db.on_template_added(tx, int(row[0]), t.embedding)
        return out

    def _ensure_person(self, tx: Tx, name: str, metadata: dict[str, Any] | None, now: float) -> int:
        row = tx.one(
            "SELECT id FROM people WHERE collection_id = %s AND name = %s",
            (self.collection_id, name),
        )
        if row is None:
            row = tx.one(
                "INSERT INTO people(collection_id, name, metadata, created) "
                "VALUES (%s, %s, %s, %s) RETURNING id",
                (self.collection_id, name, _json(metadata), now),
            )
            assert row is not None
        elif metadata is not None:
            tx.execute("UPDATE people SET metadata = %s WHERE id = %s", (_json(metadata), row[0]))
        return int(row[0])

    def templates(self, name: str | None = None) -> list[Template]:
        sql = (
            "SELECT t.id, p.name, t.embedding, t.pack, t.image_sha256, t.quality, t.created, "
            "t.person_id, t.dim FROM templates t JOIN people p ON p.id = t.person_id "
            "WHERE t.collection_id = %s"
        )
        args: tuple[Any, ...] = (self.collection_id,)
        with self.db.reading() as tx:
            if name is not None:
                self._person_id(tx, name)
                sql += " AND p.name = %s"
                args = (self.collection_id, name)
            rows = tx.execute(sql + " ORDER BY t.id", args)
        with _stored(self.where):
            return [
                Template(
                    int(r[0]),
                    str(r[1]),
                    self._vector(r[2], int(r[7]), str(r[3]), int(r[8])),
                    str(r[3]),
                    r[4],
                    None if r[5] is None else float(r[5]),
                    float(r[6]),
                )  # fmt: skip
                for r in rows
            ]

    def remove_template(
        self, template_id: int, *, person: str | None = None, tx: Tx | None = None
    ) -> None:
        """Erase one template (of ``person``, when given); NotFoundError if there is none."""
        with self._writing(tx) as wtx:
            if person is not None:
                pid = self._person_id(wtx, person)
                wtx.execute(
                    "DELETE FROM templates WHERE id = %s AND person_id = %s", (template_id, pid)
                )
            else:
                wtx.execute(
                    "DELETE FROM templates WHERE id = %s AND collection_id = %s",
                    (template_id, self.collection_id),
                )
            if wtx.rowcount == 0:
                raise NotFoundError(f"no template {template_id} in {self.where}")
        if tx is None:
            self.db.after_erase()

    def has_image(self, image_sha256: str) -> bool:
        with self.db.reading() as tx:
            row = tx.one(
                "SELECT 1 FROM templates WHERE collection_id = %s AND image_sha256 = %s LIMIT 1",
                (self.collection_id, image_sha256),
            )
        return row is not None

    # -- search ----------------------------------------------------------------------------
    def _generation(self) -> int:
        with self.db.reading() as tx:
            row = tx.one("SELECT generation FROM collections WHERE id = %s", (self.collection_id,))
        if row is None:
            raise NotFoundError(f"{self.where}: the collection was deleted")
        with _stored(self.where):
            return int(row[0])

    def _build(self, previous: SearchIndex | None, generation: int) -> Any:
        with self.db.reading() as tx:
            rows = tx.execute(
                "SELECT t.id, t.person_id, t.embedding, t.pack, t.dim, t.quality "
                "FROM templates t WHERE t.collection_id = %s ORDER BY t.id",
                (self.collection_id,),
            )
            names = dict(
                tx.execute(
                    "SELECT id, name FROM people WHERE collection_id = %s", (self.collection_id,)
                )
            )
        with _stored(self.where):
            vectors = [self._vector(r[2], int(r[1]), str(r[3]), int(r[4])) for r in rows]
            emb = np.stack(vectors) if rows else np.zeros((0, 1), np.float32)
            pids, ids = [int(r[1]) for r in rows], np.array([int(r[0]) for r in rows], np.int64)
            quality = np.array([np.nan if r[5] is None else float(r[5]) for r in rows], np.float32)
        uniq = sorted(set(pids))
        if any(p not in names for p in uniq):
            raise GalleryError(f"{self.where}: a template belongs to no person (damaged)")
        remap = {p: i for i, p in enumerate(uniq)}
        index = build_index(
            emb,
            np.array([remap[p] for p in pids], dtype=np.int64),
            ids=ids,
            path=self.db.index_path(self.name),
            generation=None if self.db.read_only else generation,  # read-only: never saved
            previous=previous,
            quality=quality,
        )
        return index, [str(names[p]) for p in uniq], uniq

    def search(self, probes: F32, k: int = 1) -> list[list[Candidate]]:
        """Top-k people per probe by best-template cosine similarity (no threshold)."""
        probes = np.atleast_2d(np.asarray(probes, dtype=np.float32))
        if not np.all(np.isfinite(probes)):
            raise GalleryError("a probe template is not finite")
        vector = self.db.vector_search()
        if vector is not None:
            found = vector(self, probes, k)
            if found is not None:
                return found
        generation = self._generation()
        index, names, _ = self.db.cached_index(
            self.collection_id, generation, lambda prev: self._build(prev, generation)
        )
        if len(index) == 0:
            raise GalleryError(f"{self.where} is empty; enroll someone first")
        if probes.shape[1] != index.dim:
            raise GalleryError(
                f"probe templates have {probes.shape[1]} dimensions, {self.where} holds "
                f"{index.dim}-dimensional templates"
            )
        return [
            [Candidate(names[h.person], h.score) for h in row] for row in index.search(probes, k)
        ]


__all__ = [
    "Added", "Candidate", "NewTemplate", "Person", "Store", "Template", "check_name",
    "check_templates",
]  # fmt: skip
