"""Face templates: align each face to its pack's chip, embed every view of the chip in
batches, and average the views into one L2-normalised template.

A pack's ``views`` (rotation, scale, shift, mirror; see :data:`faceprint.models.packs.View`)
are part of its identity: the same face always gives the same template for a pack, and
templates of packs made differently are never mixed.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path

import cv2
import numpy as np
import numpy.typing as npt

from faceprint.errors import FaceprintError
from faceprint.models.packs import Pack, View
from faceprint.models.packs import pack as pack_of
from faceprint.types import Face, Image

#: Faces per ONNX call when embedding across many images (each counts its views).
BATCH = 32


def view_chips(chips: npt.NDArray[np.uint8], views: Sequence[View]) -> npt.NDArray[np.uint8]:
    """Every view of every chip: ``(N * V, S, S, 3)``, chip-major (chip 0's views first)."""
    n, size = len(chips), chips.shape[1]
    out = np.empty((n, len(views), size, size, 3), dtype=np.uint8)
    centre = ((size - 1) / 2, (size - 1) / 2)
    for v, (angle, scale, dx, dy, mirror) in enumerate(views):
        m = cv2.getRotationMatrix2D(centre, angle, scale)
        m[:, 2] += (dx * size, dy * size)
        identity = angle == 0 and scale == 1 and dx == 0 and dy == 0
        for i in range(n):
            chip = chips[i] if identity else cv2.warpAffine(
                chips[i], m, (size, size), flags=cv2.INTER_LINEAR,
                borderMode=cv2.BORDER_REFLECT,
            )  # fmt: skip
            out[i, v] = chip[:, ::-1] if mirror else chip
    return out.reshape(n * len(views), size, size, 3)


def _check_face(face: Face) -> None:
    marks = np.asarray(face.landmarks)
    if marks.shape != (5, 2) or not np.all(np.isfinite(marks)):
        raise FaceprintError(
            "a face needs its 5 alignment landmarks before it can be embedded "
            "(use faceprint.detect.detect, which places them, not a detector runner)"
        )


def embed(
    image: Image,
    faces: Sequence[Face],
    *,
    pack: Pack | None = None,
    model_dir: str | Path | None = None,
) -> list[Face]:
    """Fill ``embedding`` and ``pack`` of faces found in ``image`` (default pack)."""
    return embed_many([(image, list(faces))], pack=pack, model_dir=model_dir)[0]


def embed_many(
    items: Iterable[tuple[Image, list[Face]]],
    *,
    pack: Pack | None = None,
    model_dir: str | Path | None = None,
) -> list[list[Face]]:
    """Embed the faces of several images, several faces per ONNX call."""
    from faceprint.align.chip import extract_chips
    from faceprint.embed.dlib_resnet import embed_chips

    use = pack or pack_of(None)
    n_views = len(use.views)
    out: list[list[Face]] = []
    pending_chips: list[np.ndarray] = []
    pending_faces: list[Face] = []

    def flush() -> None:
        if not pending_faces:
            return
        raw = embed_chips(view_chips(np.concatenate(pending_chips), use.views), model_dir=model_dir)
        raw = raw / np.linalg.norm(raw, axis=1, keepdims=True)
        vecs = raw.reshape(len(pending_faces), n_views, -1).sum(axis=1)
        vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
        for face, vec in zip(pending_faces, vecs, strict=True):
            face.embedding = vec.astype(np.float32)
            face.pack = use.id
        pending_chips.clear()
        pending_faces.clear()

    for image, faces in items:
        out.append(faces)
        if not faces:
            continue
        for face in faces:
            _check_face(face)
        chips = extract_chips(
            image, [f.landmarks for f in faces], size=use.chip_size, padding=use.chip_padding
        )
        pending_chips.append(chips)
        pending_faces.extend(faces)
        if len(pending_faces) * n_views >= BATCH:
            flush()
    flush()
    return out
