"""Presentation-attack detection: is a face a live person or a photo/screen of one?

Nothing is loaded until :func:`liveness` is first called.
"""

from __future__ import annotations

from pathlib import Path

from faceprint.errors import FaceprintError, SpoofError
from faceprint.liveness.minifasnet import DEFAULT_THRESHOLD, LivenessResult, liveness
from faceprint.types import Face, Image


def annotate(image: Image, faces: list[Face], *, model_dir: str | Path | None = None) -> None:
    """Set ``face.attributes["liveness"]`` on every face (a dict: live, score, threshold)."""
    for face in faces:
        face.attributes["liveness"] = liveness(image, face, model_dir=model_dir).to_dict()


def ensure_live(
    face: Face, label: str, image: Image | None = None, *, model_dir: str | Path | None = None
) -> None:
    """Raise SpoofError unless the face is judged live (from its attribute, else the image)."""
    found = face.attributes.get("liveness")
    if found is None:
        if image is None:
            raise FaceprintError(
                f"{label}: cannot check liveness of a Face without its image; "
                f"run faceprint.liveness.annotate on it first"
            )
        found = liveness(image, face, model_dir=model_dir).to_dict()
        face.attributes["liveness"] = found
    if not found["live"]:
        raise SpoofError(
            f"{label}: the face looks like a photo or screen, not a live person "
            f"(liveness {found['score']:.2f} < {found['threshold']:.2f}); refused"
        )


__all__ = ["DEFAULT_THRESHOLD", "LivenessResult", "annotate", "ensure_live", "liveness"]
