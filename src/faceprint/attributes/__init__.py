"""Optional per-face attributes, computed only when asked for: expression and liveness.

Nothing is loaded until :func:`annotate` (or the functions it calls) is first used.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from faceprint.attributes.expression import LABELS, Expression, expression, expressions
from faceprint.errors import FaceprintError
from faceprint.types import Face, Image

ATTRIBUTES = ("expression", "liveness")


def annotate(
    image: Image,
    faces: list[Face],
    which: Sequence[str] = ATTRIBUTES,
    *,
    model_dir: str | Path | None = None,
) -> list[Face]:
    """Fill ``face.attributes[name]`` (a JSON-ready dict) for each attribute named in ``which``."""
    unknown = [w for w in which if w not in ATTRIBUTES]
    if unknown:
        raise FaceprintError(
            f"unknown attribute {unknown[0]!r}; choose from {', '.join(ATTRIBUTES)}"
        )
    if "expression" in which:
        for face, found in zip(faces, expressions(image, faces, model_dir=model_dir), strict=True):
            face.attributes["expression"] = found.to_dict()
    if "liveness" in which:
        from faceprint import liveness

        liveness.annotate(image, faces, model_dir=model_dir)
    return faces


__all__ = ["ATTRIBUTES", "LABELS", "Expression", "annotate", "expression", "expressions"]
