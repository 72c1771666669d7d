"""Passive liveness with MiniFASNet (minivision-ai/Silent-Face-Anti-Spoofing, Apache-2.0).

Two small networks each see a different context around the face: MiniFASNetV2 a crop 2.7
times the face box, MiniFASNetV1SE one 4.0 times. The crop follows the original project's
``CropImage``: the box (left, top, width, height as whole pixels, width = right - left + 1)
is scaled about its centre by ``scale``, capped so it fits the image, shifted back inside
the image where it sticks out, then the inclusive pixel range is resized to 80x80 (bilinear).
Input: BGR, raw 0..255 float32, NCHW. Each model gives 3 logits (class 1 = live); the
softmaxes of the two are averaged and ``score`` is the live probability.
:class:`MiniFASNetRunner` is the runner of both (registry kind ``minifasnet``).

The original project fed the image as ``cv2.imread`` returns it, i.e. with its EXIF
orientation applied, and found faces with a RetinaFace detector whose boxes (forehead to
chin) are close to YuNet's; :func:`faceprint.io.load_image` and ``Face.box`` give the same.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import numpy.typing as npt

from faceprint.errors import FaceprintError, ModelError
from faceprint.models import registry
from faceprint.models.packs import MINIFASNET_V1SE, MINIFASNET_V2
from faceprint.models.runner import FloatArray, OnnxRunner
from faceprint.models.store import ModelFile
from faceprint.types import Box, Face, Image

#: The two models, whose probabilities are averaged, and the context each one sees.
MODELS: tuple[ModelFile, ...] = (MINIFASNET_V2, MINIFASNET_V1SE)
CROP_SCALES: dict[str, float] = {MINIFASNET_V2.name: 2.7, MINIFASNET_V1SE.name: 4.0}
INPUT_SIZE = 80
LIVE_CLASS = 1
#: Live when the averaged live probability reaches this (the original takes the argmax).
DEFAULT_THRESHOLD = 0.5


@dataclass(frozen=True)
class LivenessResult:
    """Whether a face looks like a live person rather than a photo or a screen."""

    live: bool
    score: float  # probability of "live", in [0, 1]
    threshold: float

    def to_dict(self) -> dict[str, object]:
        return {"live": self.live, "score": round(self.score, 4), "threshold": self.threshold}


def crop_box(width: int, height: int, box: Box, scale: float) -> tuple[int, int, int, int]:
    """Inclusive pixel range (x0, y0, x1, y1) of the context crop, as CropImage computes it."""
    x, y = int(box.left), int(box.top)
    bw, bh = int(box.right - box.left + 1), int(box.bottom - box.top + 1)
    if bw <= 0 or bh <= 0:
        raise FaceprintError(f"face box {box.as_list()} is empty")
    scale = min((height - 1) / bh, (width - 1) / bw, scale)
    cx, cy = x + bw / 2, y + bh / 2
    x0, x1 = cx - bw * scale / 2, cx + bw * scale / 2
    y0, y1 = cy - bh * scale / 2, cy + bh * scale / 2
    if x0 < 0:
        x1, x0 = x1 - x0, 0
    if y0 < 0:
        y1, y0 = y1 - y0, 0
    if x1 > width - 1:
        x0, x1 = x0 - (x1 - width + 1), width - 1
    if y1 > height - 1:
        y0, y1 = y0 - (y1 - height + 1), height - 1
    return int(x0), int(y0), int(x1), int(y1)


def patch(image: Image, box: Box, scale: float) -> npt.NDArray[np.float32]:
    """The 1 x 3 x 80 x 80 BGR float input for one model."""
    h, w = image.shape[:2]
    x0, y0, x1, y1 = crop_box(w, h, box, scale)
    region = image[max(y0, 0) : y1 + 1, max(x0, 0) : x1 + 1]  # a view: no copy
    if region.size == 0:
        raise FaceprintError(f"face box {box.as_list()} lies outside the {w}x{h} image")
    resized = cv2.resize(region, (INPUT_SIZE, INPUT_SIZE), interpolation=cv2.INTER_LINEAR)
    # RGB -> BGR after resizing (per-channel bilinear, so the order does not matter).
    return np.asarray(resized[:, :, ::-1], dtype=np.float32).transpose(2, 0, 1)[None]


class MiniFASNetRunner(OnnxRunner[tuple[Image, Sequence[Box]]]):
    """(image, face boxes) -> the context crops of one MiniFASNet -> its 3 logits per face."""

    def __init__(self, spec: ModelFile, path: Path) -> None:
        super().__init__(spec, path)
        if spec.name not in CROP_SCALES:
            raise ModelError(f"{spec.name}: no crop scale known for this MiniFASNet model")
        self.scale = CROP_SCALES[spec.name]

    def prepare(self, inputs: tuple[Image, Sequence[Box]]) -> FloatArray:
        """N x 3 x 80 x 80: each face's crop at this model's scale, BGR, raw 0..255."""
        image, boxes = inputs
        crops = [patch(image, box, self.scale) for box in boxes]
        return (
            np.concatenate(crops) if crops else np.zeros((0, 3, INPUT_SIZE, INPUT_SIZE), np.float32)
        )

    def run(self, tensor: FloatArray) -> list[FloatArray]:
        """Logits (N, 3); the published graphs take one crop per call."""
        run_one = super().run
        rows = [run_one(tensor[i : i + 1])[0] for i in range(len(tensor))]
        return [np.concatenate(rows) if rows else np.zeros((0, 3), np.float32)]


def _softmax(logits: npt.NDArray[np.float32]) -> npt.NDArray[np.float64]:
    z = np.exp(logits.astype(np.float64) - logits.max(axis=-1, keepdims=True))
    return np.asarray(z / z.sum(axis=-1, keepdims=True))


def liveness(
    image: Image,
    face: Face,
    *,
    threshold: float = DEFAULT_THRESHOLD,
    model_dir: str | Path | None = None,
) -> LivenessResult:
    """Judge one face of an RGB image live or spoofed (printed photo, replayed screen)."""
    if not 0.0 <= threshold <= 1.0:
        raise FaceprintError(f"liveness threshold {threshold} must be between 0 and 1")
    if image.ndim != 3 or image.shape[2] != 3 or min(image.shape[:2]) < 2:
        raise FaceprintError(f"liveness needs an H x W x 3 RGB image, got shape {image.shape}")
    probs = np.zeros(3)
    for spec in MODELS:
        runner = registry.load(spec, model_dir)
        probs += _softmax(runner.run(runner.prepare((image, [face.box])))[0])[0]
    score = float(probs[LIVE_CLASS] / len(MODELS))
    return LivenessResult(score >= threshold, score, threshold)
