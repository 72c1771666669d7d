"""1:1 verification, and the choice of threshold every decision uses."""

from __future__ import annotations

from dataclasses import dataclass

from faceprint.errors import FaceprintError
from faceprint.match.search import cosine
from faceprint.models.packs import Pack, pack
from faceprint.models.thresholds import Threshold, explicit
from faceprint.types import Face


@dataclass(frozen=True)
class Verification:
    """Whether two faces are the same person: the cosine ``similarity`` and the threshold
    that decided, with the false-match rate it stands for."""

    same: bool
    similarity: float
    threshold: Threshold

    def to_dict(self) -> dict[str, object]:
        return {
            "same": self.same,
            "similarity": round(self.similarity, 4),
            **self.threshold.to_dict(),
        }


def resolve_threshold(
    threshold: float | None, fmr: float | None, of: Pack | None = None
) -> Threshold:
    """The threshold to use: an explicit similarity, else the pack's for a target FMR
    (default: the pack's default FMR), by the one threshold rule."""
    if threshold is not None:
        return explicit(threshold)
    return (of or pack(None)).threshold(fmr)


def compare(
    a: Face, b: Face, *, threshold: float | None = None, fmr: float | None = None
) -> Verification:
    """Compare two embedded faces of the same model pack."""
    if a.embedding is None or b.embedding is None:
        raise FaceprintError("both faces must be embedded before they can be compared")
    if a.pack != b.pack:
        raise FaceprintError(f"cannot compare templates of packs {a.pack!r} and {b.pack!r}")
    thr = resolve_threshold(threshold, fmr, pack(a.pack))
    similarity = cosine(a.embedding, b.embedding)
    return Verification(similarity >= thr.similarity, similarity, thr)
