"""faceprint: offline face recognition on ONNX Runtime.

The whole public API::

    load_image(path)                 -> RGB uint8 array
    detect(image)                    -> [Face]  (box, score, 5 landmarks)
    embed(image)                     -> [Face]  (... plus an L2-normalised template)
    verify(a, b)                     -> Verification(same, score, threshold, fmr)
    Gallery(path).enroll(name, *photos) / .identify(photo) / .remove(name) / .list()
"""

from __future__ import annotations

from pathlib import Path

# The pipeline stages are imported before the functions below are defined: importing a
# sub-package binds its name on this package, and the public functions must win.
import faceprint.detect  # noqa: F401
import faceprint.embed  # noqa: F401
from faceprint.detect import detect as _detect
from faceprint.detect import largest
from faceprint.embed import embed_faces
from faceprint.errors import (
    FaceprintError,
    GalleryError,
    ImageError,
    ModelError,
    NoFaceError,
    SpoofError,
)
from faceprint.gallery import Gallery, Identification
from faceprint.io import load_image
from faceprint.match.verify import Verification, compare
from faceprint.types import Box, Face, Image

__version__ = "0.1.0"

ImageLike = str | Path | Image


def _image(source: ImageLike) -> Image:
    return source if not isinstance(source, str | Path) else load_image(source)


def detect(
    image: ImageLike, *, detector: str | None = None, model_dir: str | Path | None = None
) -> list[Face]:
    """Every face in an image (path or RGB array), largest first."""
    return _detect(_image(image), detector=detector, model_dir=model_dir)


def embed(
    image: ImageLike, *, detector: str | None = None, model_dir: str | Path | None = None
) -> list[Face]:
    """Every face in an image with its template (``Face.embedding``), largest first."""
    img = _image(image)
    return embed_faces(
        img, _detect(img, detector=detector, model_dir=model_dir), model_dir=model_dir
    )


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
    """Are the (largest) faces of two images the same person?

    With ``require_live`` a face judged a photo/screen raises SpoofError.
    """
    faces = []
    for side in (a, b):
        label = str(side) if isinstance(side, str | Path) else "image"
        img: Image | None = None
        if isinstance(side, Face):
            found: Face | None = side
        else:
            img = _image(side)
            found = largest(embed(img, detector=detector, model_dir=model_dir))
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
    "SpoofError",
    "Verification",
    "detect",
    "embed",
    "load_image",
    "verify",
]
