"""Face detection: boxes from a detector, then dlib's 5 landmarks for alignment.

Two detectors: ``mmod`` (dlib's CNN, CC0, installed with the package, works offline)
and ``yunet`` (OpenCV zoo, MIT; faster, better on small faces; a pinned download or a
file the user names). Either way the landmarks used for alignment come from dlib's
5-point shape predictor, so templates are comparable whichever detector found the face.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from faceprint.detect.subject import ranked, subject
from faceprint.errors import FaceprintError
from faceprint.log import note
from faceprint.types import Box, Detection, Face, Image

DETECTORS = ("mmod", "yunet")
#: Chosen by measurement (README, "Which detector"): YuNet when its model file can be had,
#: otherwise dlib's MMOD, which ships with the package and always works offline.
DEFAULT_DETECTOR = "yunet"
FALLBACK_DETECTOR = "mmod"

_resolved: dict[str, str] = {}


def default_detector(model_dir: str | Path | None = None) -> str:
    """The detector to use when none is named: $FACEPRINT_DETECTOR, else YuNet if its
    model file is available (user directory, cache, or pinned download), else MMOD.

    Only a YuNet file that is nowhere to be had falls back to MMOD (with a note); a file
    that is there but wrong or damaged raises its ModelError: it is never silently replaced.
    """
    name = os.environ.get("FACEPRINT_DETECTOR")
    if name:
        if name not in DETECTORS:
            raise FaceprintError(
                f"unknown detector {name!r} in FACEPRINT_DETECTOR; choose {' or '.join(DETECTORS)}"
            )
        return name
    env = os.environ
    where = ("FACEPRINT_MODEL_DIR", "FACEPRINT_CACHE_DIR", "FACEPRINT_OFFLINE")
    key = "|".join([str(model_dir), *(env.get(v, "") for v in where)])
    if key not in _resolved:
        from faceprint.detect import yunet
        from faceprint.models.packs import YUNET
        from faceprint.models.store import ModelNotFoundError

        try:
            yunet.model_path(model_dir)  # a wrong or damaged file raises: not caught here
            _resolved[key] = DEFAULT_DETECTOR
        except ModelNotFoundError:
            note(
                f"YuNet model {YUNET.name} not found here or at its download "
                f"location (put it in --model-dir to use it); using the {FALLBACK_DETECTOR} "
                f"detector: same templates, slower"
            )
            _resolved[key] = FALLBACK_DETECTOR
    return _resolved[key]


def detect(
    image: Image, *, detector: str | None = None, model_dir: str | Path | None = None
) -> list[Face]:
    """Find every face in an RGB image: box, detector probability and the 5 alignment
    landmarks (:data:`faceprint.types.LANDMARKS`), whichever detector is used.

    Faces come in order of prominence, the subject face first (:mod:`.subject`).
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
    return [face for _, face in ranked(faces, image.shape)]


def _face(found: Any, detector: str) -> Face:
    """A Face (landmarks still to place) from a runner's Detection."""
    if isinstance(found, Detection):
        return Face(box=found.box, score=found.score, landmarks=np.zeros((0, 2), np.float32),
                    detector=detector)  # fmt: skip
    face: Face = found
    face.detector = detector
    return face


__all__ = ["DETECTORS", "DEFAULT_DETECTOR", "Box", "default_detector", "detect", "subject"]
