"""Drawing boxes, landmarks and names on a photo."""

from __future__ import annotations

import cv2
import numpy as np

from faceprint.types import Face, Image


def draw_faces(image: Image, faces: list[Face], labels: list[str]) -> Image:
    """A copy of ``image`` with each face's box, landmarks and label drawn."""
    out = np.ascontiguousarray(image.copy())
    scale = max(out.shape[:2]) / 800.0
    thick = max(1, round(2 * scale))
    font = 0.6 * max(scale, 0.6)
    for face, label in zip(faces, labels, strict=True):
        known = not label.startswith("unknown")
        color = (40, 200, 60) if known else (230, 60, 40)
        left, top, right, bottom = (round(v) for v in face.box.as_list())
        cv2.rectangle(out, (left, top), (right, bottom), color, thick)
        for x, y in face.landmarks:
            cv2.circle(out, (round(float(x)), round(float(y))), thick + 1, (255, 220, 0), -1)
        (tw, th), base = cv2.getTextSize(label, cv2.FONT_HERSHEY_SIMPLEX, font, thick)
        y0 = max(top, th + base + 4)
        left = max(0, min(left, out.shape[1] - tw - 6))  # keep the label inside the photo
        cv2.rectangle(out, (left, y0 - th - base - 4), (left + tw + 6, y0), color, -1)
        cv2.putText(
            out,
            label,
            (left + 3, y0 - base - 2),
            cv2.FONT_HERSHEY_SIMPLEX,
            font,
            (255, 255, 255),
            thick,
            cv2.LINE_AA,
        )
    return out
