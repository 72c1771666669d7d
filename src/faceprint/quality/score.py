"""One quality score per detected face, from cheap measurements, with the reasons.

Factors, each mapped to [0, 1] (1 = good):

- size: the inter-ocular distance in pixels (a 150-pixel chip needs ~40 px between the
  eye centres to be sampled without upscaling);
- sharpness: variance of the Laplacian of the aligned grey chip (blur lowers it);
- pose: yaw estimated from how far the nose sits from the eye midpoint (in eye-distance
  units, after undoing roll) and roll from the eye line;
- exposure: mean grey level of the chip and the share of clipped pixels;
- detector: the detector's confidence.

The combined score is the product of the factors (exposure and detector count half, as
square roots): one bad factor is enough to make a face unusable.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import cv2
import numpy as np

from faceprint.align.chip import chip_transform
from faceprint.types import Face, Image

#: Chip used for the sharpness and exposure measurements (dlib's geometry, 150 px).
CHIP = 150
#: Factor exponents in the product.
WEIGHTS = {"size": 1.0, "sharpness": 1.0, "pose": 1.0, "exposure": 0.5, "detector": 0.5}
#: A factor below this value is named in the reasons.
REASON_BELOW = 0.5
_REASONS = {
    "size": "too small",
    "sharpness": "blurred",
    "pose": "turned away",
    "exposure": "badly exposed",
    "detector": "uncertain detection",
}


@dataclass(frozen=True)
class Quality:
    """A face's quality: ``score`` in [0, 1], the measurements and factor scores behind it,
    and the reasons (e.g. ``["too small", "blurred"]``) for every weak factor."""

    score: float
    factors: dict[str, float]
    values: dict[str, float] = field(default_factory=dict)
    reasons: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "score": round(self.score, 4),
            "factors": {k: round(v, 3) for k, v in self.factors.items()},
            "values": {k: round(v, 2) for k, v in self.values.items()},
            "reasons": list(self.reasons),
        }


def _ramp(value: float, bad: float, good: float) -> float:
    """0 at ``bad``, 1 at ``good``, linear in between (either direction)."""
    t = (value - bad) / (good - bad)
    return float(min(1.0, max(0.0, t)))


def _eye_frame(landmarks: np.ndarray) -> tuple[np.ndarray, np.ndarray, float, float, float]:
    """The 5 points and the eye line: (points, eye midpoint, unit x, unit y, eye distance)."""
    pts = np.asarray(landmarks, dtype=np.float64).reshape(5, 2)
    eye_a, eye_b = pts[0:2].mean(axis=0), pts[2:4].mean(axis=0)
    left, right = (eye_a, eye_b) if eye_a[0] <= eye_b[0] else (eye_b, eye_a)
    dx, dy = right - left
    dist = math.hypot(dx, dy)
    return pts, (left + right) / 2, dx / max(dist, 1e-12), dy / max(dist, 1e-12), dist


def pose(landmarks: np.ndarray) -> tuple[float, float]:
    """(yaw, roll) in degrees from dlib's 5 points (rough yaw, fine roll)."""
    pts, mid, ux, uy, dist = _eye_frame(landmarks)
    if dist < 1e-6:
        return 90.0, 0.0
    roll = math.degrees(math.atan2(uy, ux))
    # nose offset from the eye midpoint along the eye line, in eye distances
    offset = float(np.dot(pts[4] - mid, (ux, uy))) / dist
    # a frontal face has offset 0; a face turned ~45 degrees has |offset| ~ 0.5
    yaw = math.degrees(math.asin(min(1.0, abs(offset) / 0.7))) * (1 if offset >= 0 else -1)
    return yaw, roll


#: Depth of the nose base in front of the eye centres, in eye-centre distances (assumed).
NOSE_DEPTH = 0.4
#: Drop of the nose base below the eye line on level faces, in eye-centre distances: the
#: median over the 1,143 faces of ../shared/lfw-dev with |yaw| < 10 degrees (YuNet + dlib
#: landmarks; interquartile range 0.69 to 0.80).
NOSE_DROP = 0.75


def pitch(landmarks: np.ndarray) -> float:
    """Head pitch in degrees (positive: chin up) from dlib's 5 points.

    The nose base's drop below the eye line, in eye-centre distances and corrected for yaw,
    is ``v = h cos(p) - d sin(p)`` for a head pitched up by ``p``, with ``h`` the drop on
    level faces (:data:`NOSE_DROP`) and ``d`` the depth of the nose base in front of the eye
    centres (:data:`NOSE_DEPTH`, an anthropometric guess); solved for ``p``. Rough (a few
    degrees of spread on level faces; head-down beyond ``atan(d/h)`` cannot be told apart).
    """
    pts, mid, ux, uy, dist = _eye_frame(landmarks)
    if dist < 1e-6:
        return 0.0
    # image y grows downwards; (-uy, ux) is "down" in the face's frame after undoing roll
    drop = float(np.dot(pts[4] - mid, (-uy, ux))) / dist
    drop *= math.cos(math.radians(pose(pts)[0]))  # eye distance shrinks with yaw, drop not
    radius = math.hypot(NOSE_DROP, NOSE_DEPTH)
    phase = math.atan2(NOSE_DEPTH, NOSE_DROP)
    return math.degrees(math.acos(max(-1.0, min(1.0, drop / radius))) - phase)


def grey_chip(image: Image, landmarks: np.ndarray, size: int = CHIP) -> np.ndarray:
    """The aligned face chip in grey levels (warpAffine; no pyramid smoothing)."""
    m = chip_transform(landmarks, size=size, padding=0.25)
    chip = cv2.warpAffine(image, m, (size, size), flags=cv2.INTER_LINEAR)
    return cv2.cvtColor(chip, cv2.COLOR_RGB2GRAY)


def assess(image: Image, face: Face) -> Quality:
    """Measure one face of an RGB image. Does not modify ``face`` (see ``fill``)."""
    pts = np.asarray(face.landmarks, dtype=np.float64).reshape(5, 2)
    eyes = math.dist(pts[0:2].mean(axis=0), pts[2:4].mean(axis=0))
    yaw, roll = pose(pts)
    grey = grey_chip(image, pts)
    # the central part of the chip: the face, not the background around it
    inner = grey[CHIP // 6 : CHIP - CHIP // 10, CHIP // 6 : CHIP - CHIP // 6]
    sharp = float(cv2.Laplacian(inner, cv2.CV_64F).var())
    mean = float(inner.mean())
    clipped = float(((inner <= 5) | (inner >= 250)).mean())
    values = {
        "eye_distance": eyes,
        "laplacian_var": sharp,
        "yaw": yaw,
        "roll": roll,
        "brightness": mean,
        "clipped": clipped,
        "detector_score": float(face.score),
    }
    exposure = min(_ramp(mean, 25, 70), _ramp(mean, 235, 190), _ramp(clipped, 0.4, 0.1))
    factors = {
        "size": _ramp(eyes, 8, 36),
        "sharpness": _ramp(math.log10(max(sharp, 1e-3)), math.log10(15), math.log10(120)),
        "pose": min(_ramp(abs(yaw), 60, 25), _ramp(abs(roll), 50, 25)),
        "exposure": exposure,
        "detector": _ramp(float(face.score), 0.3, 0.8),
    }
    score = math.prod(v ** WEIGHTS[k] for k, v in factors.items())
    reasons = [_REASONS[k] for k, v in factors.items() if v < REASON_BELOW]
    return Quality(score=score, factors=factors, values=values, reasons=reasons)


def fill(image: Image, faces: list[Face]) -> list[Quality]:
    """Assess every face, set ``face.quality`` and ``face.attributes["quality"]``."""
    out = []
    for face in faces:
        q = assess(image, face)
        face.quality = q.score
        face.attributes["quality"] = q.to_dict()
        out.append(q)
    return out
