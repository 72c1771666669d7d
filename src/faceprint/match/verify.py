"""1:1 verification and the open-set decision rule for 1:N identification."""

from __future__ import annotations

from dataclasses import dataclass

from faceprint.errors import FaceprintError
from faceprint.match.search import cosine
from faceprint.models.packs import DEFAULT_PACK, Pack
from faceprint.types import Face


@dataclass(frozen=True)
class Verification:
    """Whether two faces are the same person, with the score and the rule used."""

    same: bool
    score: float
    threshold: float
    fmr: float | None  # the target false-match rate the threshold stands for, if calibrated

    def to_dict(self) -> dict[str, object]:
        return {
            "same": self.same,
            "score": round(self.score, 4),
            "threshold": round(self.threshold, 4),
            "target_fmr": self.fmr,
        }


def resolve_threshold(
    threshold: float | None, fmr: float | None, pack: Pack = DEFAULT_PACK
) -> tuple[float, float | None]:
    """The cosine threshold to use: an explicit one, else the pack's for a target FMR."""
    if threshold is not None:
        if not -1.0 <= threshold <= 1.0:
            raise FaceprintError(f"threshold {threshold} is not a cosine similarity in [-1, 1]")
        return threshold, None
    if fmr is not None and not 0 < fmr < 1:
        raise FaceprintError(f"target false-match rate {fmr} must be between 0 and 1")
    target = pack.default_fmr if fmr is None else fmr
    return pack.threshold(target), target


def compare(
    a: Face, b: Face, *, threshold: float | None = None, fmr: float | None = None
) -> Verification:
    """Compare two embedded faces of the same model pack."""
    if a.embedding is None or b.embedding is None:
        raise FaceprintError("both faces must be embedded before they can be compared")
    if a.pack != b.pack:
        raise FaceprintError(f"cannot compare templates of packs {a.pack!r} and {b.pack!r}")
    thr, target = resolve_threshold(threshold, fmr)
    score = cosine(a.embedding, b.embedding)
    return Verification(score >= thr, score, thr, target)
