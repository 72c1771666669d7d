"""Face detection: boxes from a detector, then dlib's 5 landmarks for alignment.

Two detectors: ``mmod`` (dlib's CNN, CC0, installed with the package, works offline)
and ``yunet`` (OpenCV zoo, MIT; faster, better on small faces; a pinned download or a
file the user names). Either way the landmarks used for alignment come from dlib's
5-point shape predictor, so templates are comparable whichever detector found the face.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from faceprint.errors import FaceprintError
from faceprint.types import Box, Face, Image

DETECTORS = ("mmod", "yunet")
#: Chosen by measurement; see README "Which detector".
DEFAULT_DETECTOR = "mmod"


def default_detector() -> str:
    name = os.environ.get("FACEPRINT_DETECTOR", DEFAULT_DETECTOR)
    if name not in DETECTORS:
        raise FaceprintError(f"unknown detector {name!r}; choose one of {', '.join(DETECTORS)}")
    return name


def detect(
    image: Image, *, detector: str | None = None, model_dir: str | Path | None = None
) -> list[Face]:
    """Find every face in an RGB image: box, detector score and 5 alignment landmarks.

    Faces are returned largest first.
    """
    from faceprint.align.shape_predictor import ShapePredictor

    name = detector or default_detector()
    if name == "mmod":
        from faceprint.detect import mmod

        faces = mmod.detect(image, model_dir=model_dir)
        boxes = [f.box for f in faces]
    elif name == "yunet":
        from faceprint.detect import yunet

        faces = yunet.detect(image, model_dir=model_dir)
        boxes = [yunet.to_dlib_box(f) for f in faces]
    else:
        raise FaceprintError(f"unknown detector {name!r}; choose one of {', '.join(DETECTORS)}")
    if faces:
        predictor = ShapePredictor.load(model_dir)
        shapes = predictor.predict_many(image, [b.as_list() for b in boxes])
        for face, shape in zip(faces, shapes, strict=True):
            face.landmarks = np.asarray(shape, dtype=np.float32).reshape(5, 2)
    faces.sort(key=lambda f: f.box.width * f.box.height, reverse=True)
    return faces


def largest(faces: list[Face]) -> Face | None:
    return max(faces, key=lambda f: f.box.width * f.box.height) if faces else None


__all__ = ["DETECTORS", "DEFAULT_DETECTOR", "Box", "detect", "largest", "default_detector"]
