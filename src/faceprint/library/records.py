"""The photo library's records and keys: what its store takes and gives back."""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from faceprint.gallery.database import Database
from faceprint.library.schema import LIBRARY
from faceprint.types import Box

#: What a face key looks like: ``<sha256 of the photo>:<left>,<top>,<right>,<bottom>``.
KEY = re.compile(r"[0-9a-f]{64}:-?\d+,-?\d+,-?\d+,-?\d+")
#: Faces whose boxes overlap this much are the same face when a photo is indexed again.
SAME_FACE_IOU = 0.9
_PG_LOCK = 0x66616365  # the lock PostgresDatabase serialises its migrations with


def ensure_schema(db: Database) -> bool:
    """Create or upgrade the library tables if needed; False when they do not exist and the
    database is read-only (so there is no library data)."""
    want = len(LIBRARY[db.kind])
    have = db.schema_version("library")
    if have >= want:
        return True
    if db.read_only:
        return have > 0
    with db.transaction() as tx:
        if db.kind == "postgresql":  # several workers may start at once
            tx.execute("SELECT pg_advisory_xact_lock(%s)", (_PG_LOCK,))
        db.migrate(tx, "library", LIBRARY)
    return True


def face_key(sha256: str, box: Box) -> str:
    """The stable key of a face: the photo's content hash and its box rounded to pixels."""
    return f"{sha256}:" + ",".join(str(round(v)) for v in box.as_list())


def key_box(key: str) -> Box:
    left, top, right, bottom = (float(v) for v in key.split(":", 1)[1].split(","))
    return Box(left, top, right, bottom)


@dataclass(frozen=True)
class PhotoMeta:
    """What indexing learnt about a photo's content: its displayed (upright, full-size)
    width and height, EXIF capture time and file modification time (epoch seconds)."""

    sha256: str
    width: int
    height: int
    taken: float | None
    mtime: float


@dataclass
class FaceTable:
    """Faces of the collection as arrays, in face id order (``cluster`` -1: none)."""

    ids: np.ndarray
    keys: list[str]
    photo: np.ndarray
    cluster: np.ndarray
    pending: np.ndarray
    quality: np.ndarray
    templates: np.ndarray | None = None

    def index(self) -> dict[int, int]:
        return {int(f): i for i, f in enumerate(self.ids.tolist())}


@dataclass(frozen=True)
class Label:
    person: str | None
    hidden: bool
    source: str


def snap(key: str, known: list[str]) -> str:
    """``key``, or the known key of the same photo whose box it overlaps the most."""
    if not known or key in known:
        return key
    box = key_box(key)
    best, iou = key, SAME_FACE_IOU
    for other in known:
        if KEY.fullmatch(other):
            o = key_box(other).iou(box)
            if o >= iou:
                best, iou = other, o
    return best
