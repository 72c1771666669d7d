"""Writing the library's named faces to XMP sidecars (``faceprint xmp write``,
``faceprint index --write-xmp``), as MWG face regions that digiKam, Lightroom, darktable
and exiftool read.

Only faces a human named (or that XMP named before) are written: clustering's guesses are
not. A sidecar's other content is kept (:func:`faceprint.library.xmp.write_sidecar`), and so
are face regions of other tools that overlap none of the faces faceprint found (it could not
match them, so it does not drop them); a region over a face faceprint knows is replaced by
what faceprint knows now (renamed, or gone when the face is no longer named).

Originals are never written: embedding the regions would change the photo's bytes, hence
its content hash, which is what every face key and decision is anchored to.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from faceprint.library.store import Library
from faceprint.library.xmp import Region, XmpError, read_sidecar, sidecar_paths, write_sidecar
from faceprint.types import Box

#: An existing region over one of faceprint's faces (this IoU or more) is replaced.
OVERLAP = 0.3


@dataclass
class Written:
    files: list[Path] = field(default_factory=list)
    failures: list[tuple[str, str]] = field(default_factory=list)


def write_sidecars(lib: Library) -> Written:
    """Write (or update) the sidecar of every photo file with a named face, and of every
    photo file whose sidecar has face regions (see the module docstring)."""
    out = Written()
    if not lib.ready:
        return out
    with lib.db.reading() as tx:
        labels = lib.labels(tx)
        photos = {
            int(r[0]): (str(r[1]), int(r[2]), int(r[3]))
            for r in tx.execute(
                "SELECT id, sha256, width, height FROM library_photos WHERE collection_id = %s",
                (lib.cid,),
            )
        }
        faces: dict[int, list[tuple[str, Box]]] = {}
        for pid, key, x0, y0, x1, y1 in tx.execute(
            "SELECT photo_id, face_key, x0, y0, x1, y1 FROM library_faces "
            "WHERE collection_id = %s ORDER BY id",
            (lib.cid,),
        ):
            faces.setdefault(int(pid), []).append((str(key), Box(x0, y0, x1, y1)))
        files: dict[str, list[str]] = {}
        for path, sha in tx.execute(
            "SELECT path, sha256 FROM library_files WHERE collection_id = %s ORDER BY path",
            (lib.cid,),
        ):
            files.setdefault(str(sha), []).append(str(path))
    for pid, (sha, width, height) in sorted(photos.items()):
        found = faces.get(pid, [])
        ours = []
        for key, box in found:
            label = labels.get(key)
            if label is not None and label.person and not label.hidden:
                ours.append(Region.from_box(box, width, height, label.person))
        for path in files.get(sha, []):
            if not ours and not any(p.is_file() for p in sidecar_paths(path)):
                continue
            try:
                _write(path, ours, [b for _, b in found], width, height, out)
            except (XmpError, OSError) as exc:
                out.failures.append((path, str(exc)))
    return out


def _write(path: str, ours: Sequence[Region], boxes: Sequence[Box], width: int, height: int,
           out: Written) -> None:  # fmt: skip
    kept = [
        r for r in read_sidecar(path)
        if r.source == "mwg"
        and not any(r.box(width, height).iou(b) >= OVERLAP for b in boxes)
    ]  # fmt: skip
    if not ours and len(kept) == len([r for r in read_sidecar(path) if r.source == "mwg"]):
        return  # nothing of faceprint's to change
    out.files.append(write_sidecar(path, [*ours, *kept], width, height))
