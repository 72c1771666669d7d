"""The subject face: which face a photo is about.

One rule, used wherever a photo stands for one person (verification, enrollment, the
evaluation harness, identification's "main face"):

1. faces cut off by the image border (less than :data:`WHOLE` of the box inside the
   image) are ignored when at least one whole face exists;
2. each remaining face gets a prominence
   ``size * (1 - centre_distance) * sqrt(confidence)``, where ``size`` is the square root of
   its box area relative to the largest candidate, ``centre_distance`` the distance of the
   box centre from the image centre as a fraction of half the image diagonal, and
   ``confidence`` the detector's probability;
3. the subject is the most prominent face. A photo is *ambiguous* when a second face has
   at least :data:`AMBIGUOUS` of the subject's prominence (enrollment refuses such photos,
   so the wrong person is never enrolled).

Measured on ../shared/lfw-dev (bench/subject_rule.py): YuNet finds several faces in 283 of
1,548 photos; "largest" picks a face other than the named (centred) person in 8 of them,
this rule in none.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from faceprint.types import Face

#: Share of a face box that must lie inside the image for the face to count as whole.
WHOLE = 0.85
#: A second face this prominent (relative to the subject) makes a photo ambiguous.
AMBIGUOUS = 0.7


def inside_fraction(face: Face, shape: tuple[int, ...]) -> float:
    """Share of the face's box that lies inside an image of ``shape`` (height, width, ...)."""
    height, width = shape[0], shape[1]
    b = face.box
    iw = max(0.0, min(b.right, width) - max(b.left, 0.0))
    ih = max(0.0, min(b.bottom, height) - max(b.top, 0.0))
    area = max(b.width, 0.0) * max(b.height, 0.0)
    return iw * ih / area if area > 0 else 0.0


def ranked(faces: Sequence[Face], shape: tuple[int, ...]) -> list[tuple[float, Face]]:
    """(prominence, face), most prominent first; cut-off faces last with prominence 0
    when a whole face exists."""
    if not faces:
        return []
    height, width = shape[0], shape[1]
    whole = [f for f in faces if inside_fraction(f, shape) >= WHOLE]
    candidates = whole or list(faces)
    largest = max(math.sqrt(max(f.box.width * f.box.height, 1e-9)) for f in candidates)
    half_diagonal = math.hypot(width, height) / 2
    out: list[tuple[float, Face]] = []
    for f in candidates:
        size = math.sqrt(max(f.box.width * f.box.height, 1e-9)) / largest
        cx, cy = (f.box.left + f.box.right) / 2, (f.box.top + f.box.bottom) / 2
        dist = min(1.0, math.hypot(cx - width / 2, cy - height / 2) / half_diagonal)
        conf = math.sqrt(min(1.0, max(0.0, float(f.score))))
        out.append((size * (1.0 - dist) * conf, f))
    out.sort(key=lambda pf: pf[0], reverse=True)
    rest = [(0.0, f) for f in faces if not any(f is c for c in candidates)]
    return out + rest


def subject(faces: Sequence[Face], shape: tuple[int, ...]) -> Face | None:
    """The face a photo of ``shape`` (``image.shape``) is about, or None without faces."""
    order = ranked(faces, shape)
    return order[0][1] if order else None


def ambiguous(faces: Sequence[Face], shape: tuple[int, ...]) -> bool:
    """Whether a second face is nearly as prominent as the subject."""
    order = ranked(faces, shape)
    return len(order) > 1 and order[1][0] >= AMBIGUOUS * order[0][0]
