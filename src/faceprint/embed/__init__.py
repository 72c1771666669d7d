"""Face templates: align each face to dlib's 150x150 chip and run the ResNet in batches."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np

from faceprint.models.packs import DEFAULT_PACK
from faceprint.types import Face, Image

#: Faces per ONNX call when embedding across many images.
BATCH = 32


def embed_faces(
    image: Image, faces: Sequence[Face], *, model_dir: str | Path | None = None
) -> list[Face]:
    """Fill ``embedding`` (L2-normalised float32) and ``pack`` of faces found in ``image``."""
    return embed_many([(image, list(faces))], model_dir=model_dir)[0]


def embed_many(
    items: Iterable[tuple[Image, list[Face]]], *, model_dir: str | Path | None = None
) -> list[list[Face]]:
    """Embed the faces of several images, several faces per ONNX call."""
    from faceprint.align.chip import extract_chips
    from faceprint.embed.dlib_resnet import embed_chips

    pack = DEFAULT_PACK
    out: list[list[Face]] = []
    pending_chips: list[np.ndarray] = []
    pending_faces: list[Face] = []

    def flush() -> None:
        if not pending_faces:
            return
        vecs = embed_chips(np.concatenate(pending_chips), model_dir=model_dir)
        vecs = vecs / np.linalg.norm(vecs, axis=1, keepdims=True)
        for face, vec in zip(pending_faces, vecs, strict=True):
            face.embedding = vec.astype(np.float32)
            face.pack = pack.id
        pending_chips.clear()
        pending_faces.clear()

    for image, faces in items:
        out.append(faces)
        if not faces:
            continue
        chips = extract_chips(
            image, [f.landmarks for f in faces], size=pack.chip_size, padding=pack.chip_padding
        )
        pending_chips.append(chips)
        pending_faces.extend(faces)
        if len(pending_faces) >= BATCH:
            flush()
    flush()
    return out
