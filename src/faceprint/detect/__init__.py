"""Face detection: boxes from a detector, then dlib's 5 landmarks for alignment.

Two detectors: ``mmod`` (dlib's CNN, CC0, installed with the package, works offline)
and ``yunet`` (OpenCV zoo, MIT; faster, better on small faces; a pinned download or a
file the user names). Either way the landmarks used for alignment come from dlib's
5-point shape predictor, so templates are comparable whichever detector found the face.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import numpy as np

from faceprint.errors import FaceprintError, ModelError
from faceprint.types import Box, Detection, Face, Image

DETECTORS = ("mmod", "yunet")
#: Chosen by measurement (README, "Which detector"): YuNet when its model file can be had,
#: otherwise dlib's MMOD, which ships with the package and always works offline.
DEFAULT_DETECTOR = "yunet"
FALLBACK_DETECTOR = "mmod"

_resolved: dict[str, str] = {}


def default_detector(model_dir: str | Path | None = None) -> str:
    """The detector to use when none is named: $FACEPRINT_DETECTOR, else YuNet if its
    model file is available (user directory, cache, or pinned download), else MMOD."""
    name = os.environ.get("FACEPRINT_DETECTOR")
    if name:
        if name not in DETECTORS:
            raise FaceprintError(
                f"unknown detector {name!r} in FACEPRINT_DETECTOR; choose {' or '.join(DETECTORS)}"
            )
        return name
    env = os.environ
    key = f"{model_dir}|{env.get('FACEPRINT_MODEL_DIR')}|{env.get('FACEPRINT_CACHE_DIR')}"
    if key not in _resolved:
        from faceprint.detect import yunet

        try:
            yunet.model_path(model_dir)
            _resolved[key] = DEFAULT_DETECTOR
        except ModelError as exc:
            from faceprint.models.packs import YUNET

            missing = "not found" in str(exc)
            reason = "not found here or at its download location" if missing else str(exc)
            print(
                f"faceprint: note: YuNet model {YUNET.name} {reason} (put it in --model-dir "
                f"to use it); using the {FALLBACK_DETECTOR} detector: same templates, slower",
                file=sys.stderr,
            )
            _resolved[key] = FALLBACK_DETECTOR
    return _resolved[key]


def detect(
    image: Image, *, detector: str | None = None, model_dir: str | Path | None = None
) -> list[Face]:
    """Find every face in an RGB image: box, detector score and 5 alignment landmarks.

    Faces are returned largest first.
    """
    from faceprint.align.shape_predictor import ShapePredictor

    name = detector or default_detector(model_dir)
    if name == "mmod":
        from faceprint.detect import mmod

        found: list[Any] = list(mmod.detect(image, model_dir=model_dir))
        boxes = [f.box for f in found]
    elif name == "yunet":
        from faceprint.detect import yunet

        found = list(yunet.detect(image, model_dir=model_dir))
        boxes = [yunet.to_dlib_box(f) for f in found]
    else:
        raise FaceprintError(f"unknown detector {name!r}; choose one of {', '.join(DETECTORS)}")
    faces = [_face(d, name) for d in found]
    if faces:
        predictor = ShapePredictor.load(model_dir)
        shapes = predictor.predict_many(image, [b.as_list() for b in boxes])
        for face, shape in zip(faces, shapes, strict=True):
            face.landmarks = np.asarray(shape, dtype=np.float32).reshape(5, 2)
    faces.sort(key=lambda f: f.box.width * f.box.height, reverse=True)
    return faces


def _face(found: Any, detector: str) -> Face:
    """A Face (landmarks still to place) from a runner's Detection."""
    if isinstance(found, Detection):
        return Face(box=found.box, score=found.score, landmarks=np.zeros((0, 2), np.float32),
                    detector=detector)  # fmt: skip
    face: Face = found
    face.detector = detector
    return face


def largest(faces: list[Face]) -> Face | None:
    return max(faces, key=lambda f: f.box.width * f.box.height) if faces else None


__all__ = ["DETECTORS", "DEFAULT_DETECTOR", "Box", "detect", "largest", "default_detector"]
