"""What a library shows: its people and clusters with their faces, and the photos of a
person (newest first). Read-only; shared by the CLI and the HTTP routes."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from faceprint.errors import NotFoundError
from faceprint.gallery.database import Tx
from faceprint.library.store import Library


@dataclass(frozen=True)
class FaceInfo:
    id: int
    photo: str
    box: tuple[float, float, float, float]
    quality: float | None
    photo_id: int

    def to_dict(self) -> dict[str, Any]:
        return {"face_id": self.id, "photo": self.photo, "box": [round(v, 1) for v in self.box]}


@dataclass
class Group:
    """A person (``name``) or an unnamed cluster (``name`` None); ``id`` is its cluster id."""

    id: int
    name: str | None
    faces: list[FaceInfo] = field(default_factory=list)

    @property
    def representative(self) -> FaceInfo:
        """The face to show for the group: the best quality one."""
        return max(self.faces, key=lambda f: (f.quality or 0.0, -f.id))

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "name": self.name, "faces": [f.to_dict() for f in self.faces]}


@dataclass
class Listing:
    people: list[Group]
    unassigned: list[FaceInfo]

    def to_dict(self) -> dict[str, Any]:
        return {
            "people": [g.to_dict() for g in self.people],
            "unassigned": [f.to_dict() for f in self.unassigned],
        }

    def group(self, cluster: int) -> Group:
        for g in self.people:
            if g.id == cluster:
                return g
        raise NotFoundError(f"no cluster or person with id {cluster}")


def _paths(lib: Library, tx: Tx) -> dict[int, str]:
    """photo id -> the first path (sorted) of a file showing it."""
    rows = tx.execute(
        "SELECT p.id, MIN(f.path) FROM library_photos p JOIN library_files f ON "
        "f.collection_id = p.collection_id AND f.sha256 = p.sha256 WHERE p.collection_id = %s "
        "GROUP BY p.id",
        (lib.cid,),
    )
    return {int(r[0]): str(r[1]) for r in rows}


def listing(lib: Library, tx: Tx) -> Listing:
    """Named people (by name), then unnamed clusters (largest first), then the faces in no
    cluster; hidden faces are left out."""
    if not lib.has_data(tx):
        return Listing([], [])
    paths = _paths(lib, tx)
    labels = lib.labels(tx)
    rows = tx.execute(
        "SELECT id, face_key, cluster, x0, y0, x1, y1, quality, photo_id FROM library_faces "
        "WHERE collection_id = %s ORDER BY id",
        (lib.cid,),
    )
    groups: dict[int, Group] = {}
    unassigned: list[FaceInfo] = []
    for fid, key, cluster, x0, y0, x1, y1, quality, photo_id in rows:
        label = labels.get(str(key))
        if label is not None and label.hidden:
            continue
        info = FaceInfo(int(fid), paths.get(int(photo_id), ""),
                        (float(x0), float(y0), float(x1), float(y1)),
                        None if quality is None else float(quality), int(photo_id))  # fmt: skip
        if cluster is None:
            unassigned.append(info)
            continue
        g = groups.setdefault(int(cluster), Group(int(cluster), None))
        g.faces.append(info)
        if label is not None and label.person:
            g.name = label.person
    named = sorted(
        (g for g in groups.values() if g.name), key=lambda g: (str(g.name).casefold(), g.id)
    )
    unnamed = sorted(
        (g for g in groups.values() if not g.name), key=lambda g: (-len(g.faces), g.id)
    )
    return Listing(named + unnamed, unassigned)


def _when(taken: float | None, mtime: float) -> tuple[float, str, str]:
    t, source = (taken, "exif") if taken is not None else (mtime, "mtime")
    return t, datetime.fromtimestamp(t).isoformat(timespec="seconds"), source


def photos_of(
    lib: Library, tx: Tx, person: str, together: str | None = None
) -> list[dict[str, Any]]:
    """Photos showing ``person`` (and ``together``, when given), newest first by EXIF
    capture time, else the file's modification time."""
    found = listing(lib, tx)
    wanted = [person] if together is None else [person, together]
    groups = []
    for name in wanted:
        g = next((g for g in found.people if g.name == name), None)
        if g is None:
            raise NotFoundError(f"no person named {name!r} in the library of {lib.where}")
        groups.append(g)
    by_photo: dict[int, list[int]] = {}
    for g in groups:
        for f in g.faces:
            by_photo.setdefault(f.photo_id, []).append(f.id)
    keep = [p for p in by_photo if all(any(f.photo_id == p for f in g.faces) for g in groups)]
    if not keep:
        return []
    times = {
        int(r[0]): (None if r[1] is None else float(r[1]), float(r[2]))
        for r in tx.execute(
            "SELECT id, taken, mtime FROM library_photos WHERE collection_id = %s", (lib.cid,)
        )
    }
    paths = _paths(lib, tx)
    out = []
    for p in keep:
        t, iso, source = _when(*times[p])
        path = paths.get(p, "")
        item = {"photo": path, "time": iso, "time_source": source, "faces": sorted(by_photo[p])}
        out.append((-t, path, item))
    return [item for *_, item in sorted(out, key=lambda x: (x[0], x[1]))]
