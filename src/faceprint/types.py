"""The small typed records that flow through the pipeline."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float32]
Image = npt.NDArray[np.uint8]  # H x W x 3, RGB, uint8


@dataclass(frozen=True)
class Box:
    """A face box in pixel coordinates of the original image (left, top, right, bottom)."""

    left: float
    top: float
    right: float
    bottom: float

    @property
    def width(self) -> float:
        return self.right - self.left

    @property
    def height(self) -> float:
        return self.bottom - self.top

    def as_list(self) -> list[float]:
        return [self.left, self.top, self.right, self.bottom]

    def iou(self, other: Box) -> float:
        iw = min(self.right, other.right) - max(self.left, other.left)
        ih = min(self.bottom, other.bottom) - max(self.top, other.top)
        if iw <= 0 or ih <= 0:
            return 0.0
        inter = iw * ih
        union = self.width * self.height + other.width * other.height - inter
        return float(inter / union) if union > 0 else 0.0


@dataclass(frozen=True)
class Detection:
    """What a detector runner returns for one face, before alignment.

    ``box``: in original image pixels, in the detector's own convention;
    ``score``: the detector's confidence as a probability in [0, 1], whatever the detector
    (``raw_score`` keeps the detector's native number, e.g. MMOD's margin);
    ``keypoints``: the detector's own points (YuNet's 5: eye centres, nose, mouth corners),
    or None. A Detection is never aligned or embedded directly: :func:`faceprint.detect.detect`
    turns it into a :class:`Face` with the 5 alignment landmarks.
    """

    box: Box
    score: float
    raw_score: float
    detector: str
    keypoints: FloatArray | None = None


#: Meaning of ``Face.landmarks`` rows (dlib's 5-point convention, whatever the detector):
#: 0 outer and 1 inner corner of the eye on the image's right (the subject's left eye),
#: 2 outer and 3 inner corner of the eye on the image's left, 4 the base of the nose.
LANDMARKS = ("image-right eye outer", "image-right eye inner", "image-left eye outer",
             "image-left eye inner", "nose base")  # fmt: skip


@dataclass
class Face:
    """One face found in an image.

    ``box``: left, top, right, bottom in image pixels (the detector's box);
    ``score``: detector confidence, a probability in [0, 1] for every detector;
    ``landmarks``: (5, 2) float32 alignment points in image pixels, always in the order of
    :data:`LANDMARKS` (dlib's 5-point model places them, whichever detector found the face);
    ``embedding``: L2-normalised float32, or None until the face is embedded;
    ``pack``: the model pack that produced the embedding (templates of different packs
    are never compared); ``detector``: which detector found the face.
    """

    box: Box
    score: float
    landmarks: FloatArray
    embedding: FloatArray | None = None
    pack: str | None = None
    quality: float | None = None
    attributes: dict[str, Any] = field(default_factory=dict)
    detector: str | None = None

    def scale_by(self, factor: float) -> None:
        """Multiply box and landmarks by ``factor`` (to the pixels of a larger decode)."""
        if factor == 1:
            return
        b = self.box
        self.box = Box(b.left * factor, b.top * factor, b.right * factor, b.bottom * factor)
        self.landmarks = (np.asarray(self.landmarks, np.float32) * factor).astype(np.float32)

    def to_dict(self, with_embedding: bool = False) -> dict[str, Any]:
        out: dict[str, Any] = {
            "box": [round(v, 1) for v in self.box.as_list()],
            "score": round(float(self.score), 4),
            "landmarks": [[round(float(x), 1), round(float(y), 1)] for x, y in self.landmarks],
            "pack": self.pack,
        }
        if self.quality is not None:
            out["quality"] = round(float(self.quality), 4)
        if self.attributes:
            out["attributes"] = self.attributes
        if with_embedding and self.embedding is not None:
            out["embedding"] = [float(v) for v in self.embedding]
        return out
