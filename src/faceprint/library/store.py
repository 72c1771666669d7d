"""The photo library's storage: files, photos, faces and human decisions of one collection,
over the :class:`~faceprint.gallery.database.Database` / ``Tx`` API (the same SQL on SQLite
and PostgreSQL; tables in :mod:`faceprint.library.schema`).

Face templates are stored with the gallery's codec (:mod:`faceprint.gallery.crypto`): with
``FACEPRINT_TEMPLATE_KEY`` set they are AES-GCM encrypted, bound to the collection, the
face key and the model pack, so a blob copied to another row fails to decrypt.

Writes happen in the collection's write transaction (:meth:`Store.write`), so the gallery's
people and templates can change in the same transaction as the library's rows.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Sequence

import numpy as np

from faceprint.errors import GalleryError, NotFoundError
from faceprint.gallery.database import Tx
from faceprint.gallery.store import Store
from faceprint.library.decisions import Decisions
from faceprint.library.records import FaceTable, Label, PhotoMeta, ensure_schema, face_key, snap
from faceprint.types import Box, Face


class Library:
    """The library rows of one collection (its :class:`Store`)."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.db = store.db
        self.cid = store.collection_id
        self.ready = ensure_schema(store.db)

    @property
    def where(self) -> str:
        return self.store.where

    # -- templates at rest -----------------------------------------------------------------
    def _aad(self, key: str, pack: str) -> bytes:
        return f"library:{self.cid}:{key}:{pack}".encode()

    def encode(self, key: str, embedding: np.ndarray, pack: str) -> bytes:
        raw = np.asarray(embedding, dtype="<f4").tobytes()
        return self.db.codec.encode(raw, self._aad(key, pack))

    def decode(self, key: str, blob: bytes, pack: str, dim: int) -> np.ndarray:
        raw = self.db.codec.decode(bytes(blob), self._aad(key, pack))
        vec = np.frombuffer(raw, dtype="<f4").astype(np.float32) if len(raw) == 4 * dim else None
        if vec is None or not np.all(np.isfinite(vec)):
            raise GalleryError(f"{self.where}: the stored template of face {key} is damaged")
        return vec

    # -- files and photos ------------------------------------------------------------------
    def has_data(self, tx: Tx) -> bool:
        if not self.ready:
            return False
        row = tx.one("SELECT 1 FROM library_photos WHERE collection_id = %s LIMIT 1", (self.cid,))
        return row is not None

    def files(self, tx: Tx) -> dict[str, tuple[int, int, str]]:
        """path -> (size, mtime_ns, sha256) of every file indexed."""
        rows = tx.execute(
            "SELECT path, size, mtime_ns, sha256 FROM library_files WHERE collection_id = %s",
            (self.cid,),
        )
        return {str(r[0]): (int(r[1]), int(r[2]), str(r[3])) for r in rows}

    def has_photo(self, tx: Tx, sha256: str) -> bool:
        row = tx.one(
            "SELECT 1 FROM library_photos WHERE collection_id = %s AND sha256 = %s",
            (self.cid, sha256),
        )
        return row is not None

    def set_file(self, tx: Tx, path: str, size: int, mtime_ns: int, sha256: str) -> None:
        tx.execute(
            "INSERT INTO library_files(collection_id, path, size, mtime_ns, sha256) "
            "VALUES (%s, %s, %s, %s, %s) ON CONFLICT (collection_id, path) DO UPDATE SET "
            "size = excluded.size, mtime_ns = excluded.mtime_ns, sha256 = excluded.sha256",
            (self.cid, path, size, mtime_ns, sha256),
        )

    def remove_files(self, tx: Tx, paths: Iterable[str]) -> None:
        for path in paths:
            tx.execute(
                "DELETE FROM library_files WHERE collection_id = %s AND path = %s",
                (self.cid, path),
            )

    def drop_orphans(self, tx: Tx) -> list[str]:
        """Photos no file shows any more go, with their faces; returns those faces' keys."""
        orphan = (
            "NOT EXISTS (SELECT 1 FROM library_files f WHERE f.collection_id = p.collection_id "
            "AND f.sha256 = p.sha256)"
        )
        gone = tx.execute(
            "SELECT x.face_key FROM library_faces x JOIN library_photos p ON p.id = x.photo_id "
            f"WHERE p.collection_id = %s AND {orphan}",
            (self.cid,),
        )
        tx.execute(
            f"DELETE FROM library_photos AS p WHERE p.collection_id = %s AND {orphan}", (self.cid,)
        )
        return [str(r[0]) for r in gone]

    def add_photo(self, tx: Tx, meta: PhotoMeta, faces: Sequence[Face]) -> list[str | None]:
        """Store a photo's content and its faces (awaiting clustering); returns their keys
        (None for a second detection of one face). A face is given the key of a decision
        made about it before (same photo, box overlap >= SAME_FACE_IOU), so decisions
        survive small changes of the detector."""
        row = tx.one(
            "INSERT INTO library_photos(collection_id, sha256, width, height, taken, mtime, "
            "indexed) VALUES (%s, %s, %s, %s, %s, %s, %s) RETURNING id",
            (self.cid, meta.sha256, meta.width, meta.height, meta.taken, meta.mtime,
             time.time()),
        )  # fmt: skip
        assert row is not None
        photo_id = int(row[0])
        known = self._known_keys(tx, meta.sha256) if faces else []
        keys: list[str | None] = []
        for face in faces:
            assert face.embedding is not None and face.pack is not None
            key = snap(face_key(meta.sha256, face.box), known)
            if key in keys:
                keys.append(None)
                continue
            keys.append(key)
            b = face.box
            marks = json.dumps([[round(float(x), 2), round(float(y), 2)] for x, y in
                                np.asarray(face.landmarks).tolist()])  # fmt: skip
            tx.execute(
                "INSERT INTO library_faces(collection_id, photo_id, face_key, x0, y0, x1, y1, "
                "landmarks, quality, score, embedding, dim, pack, cluster, pending) VALUES "
                "(%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, NULL, 1)",
                (self.cid, photo_id, key, b.left, b.top, b.right, b.bottom, marks,
                 face.quality, float(face.score), self.encode(key, face.embedding, face.pack),
                 len(face.embedding), face.pack),
            )  # fmt: skip
        return keys

    def _known_keys(self, tx: Tx, sha256: str) -> list[str]:
        """Face keys of this photo that decisions or gallery templates refer to."""
        like = sha256 + ":%"
        rows = tx.execute(
            "SELECT face_key FROM library_labels WHERE collection_id = %s AND face_key LIKE %s "
            "UNION SELECT face_key FROM library_rejections WHERE collection_id = %s AND "
            "face_key LIKE %s UNION SELECT d.face_key FROM library_decision_faces d JOIN "
            "library_decisions x ON x.id = d.decision_id WHERE x.collection_id = %s AND "
            "d.face_key LIKE %s",
            (self.cid, like, self.cid, like, self.cid, like),
        )
        return sorted(str(r[0]) for r in rows)

    # -- faces -----------------------------------------------------------------------------
    def faces(self, tx: Tx, *, vectors: bool = False) -> FaceTable:
        cols = "id, face_key, photo_id, cluster, pending, quality"
        if vectors:
            cols += ", embedding, pack, dim"
        rows = tx.execute(
            f"SELECT {cols} FROM library_faces WHERE collection_id = %s ORDER BY id", (self.cid,)
        )
        keys = [str(r[1]) for r in rows]
        table = FaceTable(
            ids=np.array([int(r[0]) for r in rows], dtype=np.int64),
            keys=keys,
            photo=np.array([int(r[2]) for r in rows], dtype=np.int64),
            cluster=np.array([-1 if r[3] is None else int(r[3]) for r in rows], dtype=np.int64),
            pending=np.array([bool(r[4]) for r in rows], dtype=bool),
            quality=np.array([1.0 if r[5] is None else float(r[5]) for r in rows]),
        )
        if vectors:
            dims = {int(r[8]) for r in rows}
            if len(dims) > 1 or len({str(r[7]) for r in rows}) > 1:
                raise GalleryError(f"{self.where}: faces of several model packs are stored")
            vecs = [
                self.decode(k, r[6], str(r[7]), int(r[8])) for k, r in zip(keys, rows, strict=True)
            ]
            table.templates = np.stack(vecs) if vecs else np.zeros((0, 1), np.float32)
        return table

    def face(self, tx: Tx, face_id: int) -> tuple[int, str, int | None, Box]:
        """(id, key, cluster, box) of one face (NotFoundError)."""
        row = tx.one(
            "SELECT id, face_key, cluster, x0, y0, x1, y1 FROM library_faces "
            "WHERE collection_id = %s AND id = %s",
            (self.cid, int(face_id)),
        )
        if row is None:
            raise NotFoundError(f"no face {face_id} in the library of {self.where}")
        return (
            int(row[0]),
            str(row[1]),
            None if row[2] is None else int(row[2]),
            Box(*(float(v) for v in row[3:7])),
        )

    def vector(self, tx: Tx, key: str) -> tuple[np.ndarray, float | None, str] | None:
        """A present face's template, quality and pack, or None."""
        row = tx.one(
            "SELECT embedding, pack, dim, quality FROM library_faces "
            "WHERE collection_id = %s AND face_key = %s",
            (self.cid, key),
        )
        if row is None:
            return None
        vec = self.decode(key, row[0], str(row[1]), int(row[2]))
        return vec, None if row[3] is None else float(row[3]), str(row[1])

    def set_clusters(self, tx: Tx, changes: dict[int, int | None], *, done: bool = True) -> None:
        """Set faces' clusters (None: unassigned); ``done`` clears their pending mark."""
        for face_id, cluster in sorted(changes.items()):
            tx.execute(
                "UPDATE library_faces SET cluster = %s, pending = %s "
                "WHERE collection_id = %s AND id = %s",
                (cluster, 0 if done else 1, self.cid, face_id),
            )

    def next_cluster(self, tx: Tx) -> int:
        row = tx.one("SELECT MAX(cluster) FROM library_faces WHERE collection_id = %s", (self.cid,))
        return 0 if row is None or row[0] is None else int(row[0]) + 1

    # -- decisions -------------------------------------------------------------------------
    def labels(self, tx: Tx) -> dict[str, Label]:
        rows = tx.execute(
            "SELECT face_key, person, hidden, source FROM library_labels WHERE collection_id = %s",
            (self.cid,),
        )
        return {str(r[0]): Label(r[1], bool(r[2]), str(r[3])) for r in rows}

    def set_label(self, tx: Tx, key: str, person: str | None, *, hidden: bool = False,
                  source: str = "user") -> None:  # fmt: skip
        tx.execute(
            "INSERT INTO library_labels(collection_id, face_key, person, hidden, source, "
            "created) VALUES (%s, %s, %s, %s, %s, %s) ON CONFLICT (collection_id, face_key) "
            "DO UPDATE SET person = excluded.person, hidden = excluded.hidden, "
            "source = excluded.source, created = excluded.created",
            (self.cid, key, person, 1 if hidden else 0, source, time.time()),
        )

    def unlabel(self, tx: Tx, key: str) -> None:
        tx.execute(
            "DELETE FROM library_labels WHERE collection_id = %s AND face_key = %s", (self.cid, key)
        )

    def rejections(self, tx: Tx) -> list[tuple[str, str]]:
        rows = tx.execute(
            "SELECT face_key, person FROM library_rejections WHERE collection_id = %s "
            "ORDER BY face_key, person",
            (self.cid,),
        )
        return [(str(r[0]), str(r[1])) for r in rows]

    def reject(self, tx: Tx, key: str, person: str) -> None:
        tx.execute(
            "INSERT INTO library_rejections(collection_id, face_key, person, created) "
            "VALUES (%s, %s, %s, %s) ON CONFLICT DO NOTHING",
            (self.cid, key, person, time.time()),
        )

    def unreject(self, tx: Tx, key: str, person: str) -> None:
        tx.execute(
            "DELETE FROM library_rejections WHERE collection_id = %s AND face_key = %s "
            "AND person = %s",
            (self.cid, key, person),
        )

    def groups(self, tx: Tx) -> dict[int, tuple[str, dict[int, list[str]]]]:
        """decision id -> (kind, side -> face keys) of merges ("together") and splits."""
        rows = tx.execute(
            "SELECT d.id, d.kind, f.side, f.face_key FROM library_decisions d JOIN "
            "library_decision_faces f ON f.decision_id = d.id WHERE d.collection_id = %s "
            "ORDER BY d.id, f.side, f.face_key",
            (self.cid,),
        )
        out: dict[int, tuple[str, dict[int, list[str]]]] = {}
        for did, kind, side, key in rows:
            out.setdefault(int(did), (str(kind), {}))[1].setdefault(int(side), []).append(key)
        return out

    def add_group(self, tx: Tx, kind: str, sides: Sequence[Iterable[str]]) -> None:
        row = tx.one(
            "INSERT INTO library_decisions(collection_id, kind, created) VALUES (%s, %s, %s) "
            "RETURNING id",
            (self.cid, kind, time.time()),
        )
        assert row is not None
        for side, keys in enumerate(sides):
            for key in sorted(set(keys)):
                tx.execute(
                    "INSERT INTO library_decision_faces(decision_id, face_key, side) "
                    "VALUES (%s, %s, %s) ON CONFLICT DO NOTHING",
                    (int(row[0]), key, side),
                )

    def drop_group(self, tx: Tx, decision_id: int) -> None:
        tx.execute(
            "DELETE FROM library_decisions WHERE collection_id = %s AND id = %s",
            (self.cid, decision_id),
        )

    def forget_face(self, tx: Tx, key: str) -> None:
        """Take a face out of every merge and split (a new decision about it replaces them);
        merges of fewer than two faces and splits with an empty side go."""
        tx.execute(
            "DELETE FROM library_decision_faces WHERE face_key = %s AND decision_id IN "
            "(SELECT id FROM library_decisions WHERE collection_id = %s)",
            (key, self.cid),
        )
        tx.execute(
            "DELETE FROM library_decisions WHERE collection_id = %s AND ("
            "(kind = 'together' AND (SELECT COUNT(*) FROM library_decision_faces f "
            "WHERE f.decision_id = library_decisions.id) < 2) OR "
            "(kind = 'apart' AND (SELECT COUNT(DISTINCT side) FROM library_decision_faces f "
            "WHERE f.decision_id = library_decisions.id) < 2))",
            (self.cid,),
        )

    def decisions(self, tx: Tx) -> Decisions:
        """Every human decision, as the clustering takes them."""
        labels = self.labels(tx)
        together: list[list[str]] = []
        apart: list[tuple[list[str], list[str]]] = []
        for kind, sides in self.groups(tx).values():
            if kind == "together":
                together.append(sorted(k for keys in sides.values() for k in keys))
            elif len(sides) == 2:
                apart.append((sides.get(0, []), sides.get(1, [])))
        return Decisions(
            named={k: lb.person for k, lb in labels.items() if lb.person and not lb.hidden},
            not_named=self.rejections(tx),
            hidden=[k for k, lb in labels.items() if lb.hidden],
            together=together,
            apart=apart,
        )

    def rename(self, tx: Tx, old: str, new: str) -> None:
        """Every label and rejection of person ``old`` now says ``new``."""
        tx.execute(
            "UPDATE library_labels SET person = %s WHERE collection_id = %s AND person = %s",
            (new, self.cid, old),
        )
        rows = tx.execute(
            "SELECT face_key FROM library_rejections WHERE collection_id = %s AND person = %s",
            (self.cid, old),
        )
        for (key,) in rows:
            self.unreject(tx, str(key), old)
            self.reject(tx, str(key), new)
