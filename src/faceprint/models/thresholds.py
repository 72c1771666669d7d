"""The one threshold rule: from a target false-match rate to a cosine similarity.

A pack carries thresholds measured at some FMRs (with the impostor and genuine counts
behind each). Asking for one of those FMRs gives its threshold; asking for an FMR between
two calibrated points interpolates log-linearly (linear in similarity against log10 FMR)
and says so; asking for an FMR outside the calibrated range is refused, since no
measurement supports it. An explicit similarity threshold is used as it is.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from faceprint.errors import FaceprintError

#: Relative tolerance for "this FMR is a calibrated point" (1e-3 vs 0.001000001).
_SAME = 1e-6


@dataclass(frozen=True)
class Calibrated:
    """A threshold measured on labelled pairs: ``similarity`` gave FMR ``fmr`` on
    ``impostors`` impostor pairs; ``fnmr`` is the false non-match rate there on
    ``genuine`` genuine pairs."""

    fmr: float
    similarity: float
    impostors: int
    genuine: int
    fnmr: float


@dataclass(frozen=True)
class Threshold:
    """The threshold a decision used, and what it stands for.

    ``fmr`` is the false-match rate it was calibrated for (None when the similarity was
    given directly); ``how`` is "calibrated", "interpolated" or "explicit".
    """

    similarity: float
    fmr: float | None
    how: str

    def to_dict(self) -> dict[str, object]:
        return {"threshold": round(self.similarity, 4), "fmr": self.fmr, "threshold_rule": self.how}


def for_fmr(points: Sequence[Calibrated], fmr: float) -> Threshold:
    """The threshold for a target FMR from calibrated points (see the module docstring)."""
    if not (isinstance(fmr, float | int) and math.isfinite(fmr) and 0 < fmr < 1):
        raise FaceprintError(f"target false-match rate {fmr} must be a number between 0 and 1")
    if not points:
        raise FaceprintError("this model pack has no calibrated thresholds")
    pts = sorted(points, key=lambda p: p.fmr)
    for p in pts:
        if abs(p.fmr - fmr) <= _SAME * p.fmr:
            return Threshold(p.similarity, p.fmr, "calibrated")
    lo, hi = pts[0], pts[-1]
    if fmr < lo.fmr or fmr > hi.fmr:
        raise FaceprintError(
            f"false-match rate {fmr:g} is outside what this pack was calibrated for "
            f"({lo.fmr:g} to {hi.fmr:g}); choose an FMR in that range, calibrate your own "
            f"(faceprint calibrate), or give --threshold"
        )
    for a, b in zip(pts, pts[1:], strict=False):
        if a.fmr < fmr < b.fmr:
            t = (math.log10(fmr) - math.log10(a.fmr)) / (math.log10(b.fmr) - math.log10(a.fmr))
            return Threshold(a.similarity + t * (b.similarity - a.similarity), fmr, "interpolated")
    raise AssertionError("unreachable: fmr is inside the calibrated range")


def explicit(similarity: float) -> Threshold:
    """A similarity threshold given directly (checked to be a cosine)."""
    if not (math.isfinite(similarity) and -1.0 <= similarity <= 1.0):
        raise FaceprintError(f"threshold {similarity} is not a cosine similarity in [-1, 1]")
    return Threshold(float(similarity), None, "explicit")
