"""faceprint: offline face recognition on ONNX Runtime.

The whole public API::

    load_image(path)                 -> RGB uint8 array
    detect_faces(image)              -> [Face]  (box, score, 5 landmarks), subject first
    embed_faces(image)               -> [Face]  (... plus an L2-normalised template)
    verify(a, b)                     -> Verification(same, similarity, threshold)
    Gallery.open("people.db")        -> .enroll(name, *photos) / .identify(photo) / .people()

Errors are faceprint.errors classes (FaceprintError and subclasses), each with a message
meant for a person.
"""

from __future__ import annotations

from pathlib import Path

from faceprint.errors import (
    FaceprintError,
    GalleryError,
    ImageError,
    ModelError,
    NoFaceError,
    NotFoundError,
    SpoofError,
)
from faceprint.gallery import Gallery, Identification
from faceprint.io import load_image
from faceprint.match.verify import Verification, compare
from faceprint.types import Box, Face, Image

__version__ = "0.2.0"

ImageLike = str | Path | Image


def _image(source: ImageLike) -> Image:
    return source if not isinstance(source, str | Path) else load_image(source)


def detect_faces(
    image: ImageLike, *, detector: str | None = None, model_dir: str | Path | None = None
) -> list[Face]:
    """Every face in an image (path or RGB array), the subject face first
    (:mod:`faceprint.detect.subject`)."""
    from faceprint.detect import detect

    return detect(_image(image), detector=detector, model_dir=model_dir)


def embed_faces(
    image: ImageLike, *, detector: str | None = None, model_dir: str | Path | None = None
) -> list[Face]:
    """Every face in an image with its template (``Face.embedding``), subject first."""
    from faceprint.detect import detect
    from faceprint.embed import embed

    img = _image(image)
    return embed(img, detect(img, detector=detector, model_dir=model_dir), model_dir=model_dir)


def verify(
    a: ImageLike | Face,
    b: ImageLike | Face,
    *,
    threshold: float | None = None,
    fmr: float | None = None,
    detector: str | None = None,
    model_dir: str | Path | None = None,
    require_live: bool = False,
) -> Verification:
    """Are the subject faces of two images the same person?

    With ``require_live`` a face judged a photo/screen raises SpoofError.
    """
    from faceprint.detect import detect
    from faceprint.detect.subject import subject
    from faceprint.embed import embed

    faces = []
    for side in (a, b):
        label = str(side) if isinstance(side, str | Path) else "image"
        img: Image | None = None
        if isinstance(side, Face):
            found: Face | None = side
        else:
            img = _image(side)
            found = subject(detect(img, detector=detector, model_dir=model_dir), img.shape)
            if found is not None:
                embed(img, [found], model_dir=model_dir)
        if found is None:
            raise NoFaceError(f"{label}: no face found")
        if require_live:
            from faceprint.liveness import ensure_live

            ensure_live(found, label, img, model_dir=model_dir)
        faces.append(found)
    return compare(faces[0], faces[1], threshold=threshold, fmr=fmr)


__all__ = [
    "Box",
    "Face",
    "FaceprintError",
    "Gallery",
    "GalleryError",
    "Identification",
    "ImageError",
    "ModelError",
    "NoFaceError",
    "NotFoundError",
    "SpoofError",
    "Verification",
    "detect_faces",
    "embed_faces",
    "load_image",
    "verify",
]
