"""Facial expression with mini-Xception trained on FER2013 (oarriaga/face_classification, MIT).

The Keras ``.hdf5`` is converted to ONNX once (:mod:`faceprint.models.keras_h5`) and cached.
Input: 64x64 grayscale, ``(x / 255 - 0.5) * 2``. The face is cut as dlib's aligned chip with
padding 0.4 (eyes level, whole face with some margin): measured on the photos of
../shared/faces it ranks "happy" first on the visibly smiling faces the plain detector box
misses (img16, img20, img21) and keeps it low on neutral ones (README, "Expression").
:class:`ExpressionRunner` is its runner (registry kind ``fer_mini_xception``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from faceprint.models import registry
from faceprint.models.keras_h5 import converted_onnx
from faceprint.models.packs import FER_MINI_XCEPTION
from faceprint.models.runner import FloatArray, OnnxRunner
from faceprint.models.store import ModelFile
from faceprint.types import Face, Image

LABELS = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")
INPUT_SIZE = 64
CHIP_PADDING = 0.4


@dataclass(frozen=True)
class Expression:
    """The most likely expression and the probability of each of the 7 (summing to 1)."""

    label: str
    probabilities: dict[str, float]

    def to_dict(self) -> dict[str, object]:
        return {
            "label": self.label,
            "probabilities": {k: round(v, 4) for k, v in self.probabilities.items()},
        }


def face_tensor(image: Image, faces: Sequence[Face]) -> FloatArray:
    """N x 1 x 64 x 64 network input for the faces (aligned grayscale chips, scaled to -1..1)."""
    from faceprint.align.chip import extract_chips

    chips = extract_chips(
        image, [f.landmarks for f in faces], size=INPUT_SIZE, padding=CHIP_PADDING
    )
    gray = np.stack([cv2.cvtColor(np.ascontiguousarray(c), cv2.COLOR_RGB2GRAY) for c in chips])
    return ((gray.astype(np.float32) / 255.0 - 0.5) * 2.0)[:, None]


class ExpressionRunner(OnnxRunner[tuple[Image, Sequence[Face]]]):
    """(image, faces) -> aligned grayscale chips -> 7 class probabilities per face."""

    @classmethod
    def onnx_file(cls, spec: ModelFile, model_dir: Path | str | None) -> Path:
        return converted_onnx(spec, model_dir)

    def prepare(self, inputs: tuple[Image, Sequence[Face]]) -> FloatArray:
        image, faces = inputs
        return face_tensor(image, faces)


def expressions(
    image: Image, faces: Sequence[Face], *, model_dir: str | Path | None = None
) -> list[Expression]:
    """Classify the expression of each face of an RGB image (one network call for all)."""
    if not faces:
        return []
    runner = registry.load(FER_MINI_XCEPTION, model_dir)
    probs = runner.run(runner.prepare((image, faces)))[0]
    return [
        Expression(LABELS[int(np.argmax(p))], {k: float(v) for k, v in zip(LABELS, p, strict=True)})
        for p in probs
    ]


def expression(image: Image, face: Face, *, model_dir: str | Path | None = None) -> Expression:
    """Classify the expression of one face."""
    return expressions(image, [face], model_dir=model_dir)[0]
