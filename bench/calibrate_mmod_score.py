"""Fit the map from MMOD's margin to a probability (faceprint.detect.mmod_config.SCORE_MAP).

    python bench/calibrate_mmod_score.py [--faces DIR] [--lfw DIR] [--lfw-limit N]
        [--adjust -1.0] [--model-dir DIR]

Labelled detections: MMOD's fast mode (``mmod.detect``) runs with a negative
``adjust_threshold`` (default -1.0), so weak candidates, faces or not, are kept next to the
strong ones. Taking detections strongest first, one is labelled a face when it
overlaps a YuNet detection not yet claimed (IoU >= 0.3, YuNet at score 0.5; YuNet's box is
taller than MMOD's, a match is ~0.6) or, in LFW photos, when it is the first to contain the
image centre (LFW's named person is centred); a second box on a claimed face is not a
face. Photos: ../shared/faces/*.jpg and ../shared/lfw-dev/*/*.jpg.

Why -1.0: MMOD is trained with a margin of 1, so background windows pile up just under -1
(at -1.5, ../shared/faces and lfw-dev gave 77,273 candidates in (-1.5, -1], 0.1 % faces,
against 1,891 above -1, 96 % faces). A two-parameter logistic cannot follow that cliff and the
face range at once (fitted to both, it predicted 0.28 where 0.90 were faces); the fit
covers margins above -1, the range anyone would set ``adjust_threshold`` in.

Fits ``p = 1 / (1 + exp(-(a * margin + b)))`` by maximum likelihood (Newton's method) and
prints the coefficients with the counts behind them, a reliability table (predicted vs
observed share of faces per margin bin) and the probability at margin 0 (MMOD's threshold).
"""

from __future__ import annotations

import argparse
import math
import os
from pathlib import Path

import numpy as np
import numpy.typing as npt

from faceprint.detect import mmod, yunet
from faceprint.io import load_image
from faceprint.types import Box, Detection

SHARED = Path(__file__).resolve().parents[2] / "shared"
F64 = npt.NDArray[np.float64]


def labelled(
    image: np.ndarray, adjust: float, centred: bool, model_dir: str | None
) -> list[tuple[float, bool]]:
    """(margin, is_face) for every MMOD detection of one photo. Matching is one to one,
    strongest detection first: a second box on a face already claimed is not a face."""
    found = mmod.detect(image, adjust_threshold=adjust)  # highest margin first
    truth = [d.box for d in yunet.detect(image, score_threshold=0.5, model_dir=model_dir)]
    h, w = image.shape[:2]
    subject = centred
    out: list[tuple[float, bool]] = []
    for d in found:
        ious = [_iou(d, t) for t in truth]
        best = int(np.argmax(ious)) if ious else -1
        if best >= 0 and ious[best] >= 0.3:
            truth.pop(best)
            out.append((d.raw_score, True))
        elif subject and _contains(d.box, w / 2, h / 2):
            out.append((d.raw_score, True))  # the centred person YuNet missed
        else:
            out.append((d.raw_score, False))
        if _contains(d.box, w / 2, h / 2):
            subject = False  # the centre is claimed by this detection
    return out


def _contains(box: Box, x: float, y: float) -> bool:
    return box.left <= x <= box.right and box.top <= y <= box.bottom


def _iou(d: Detection, t: Box) -> float:
    # the MMOD box is inclusive (dlib rectangle); make it a pixel-edge box like YuNet's
    b = d.box
    return Box(b.left, b.top, b.right + 1, b.bottom + 1).iou(t)


def fit_logistic(x: F64, y: F64, iters: int = 50) -> tuple[float, float]:
    """Maximum-likelihood (a, b) of ``P(y=1) = sigmoid(a*x + b)`` by Newton's method."""
    theta = np.zeros(2)
    design = np.stack([x, np.ones_like(x)], axis=1)
    for _ in range(iters):
        p = 1 / (1 + np.exp(-(design @ theta)))
        grad = design.T @ (y - p)
        hess = (design * (p * (1 - p))[:, None]).T @ design + 1e-9 * np.eye(2)
        step = np.linalg.solve(hess, grad)
        theta += step
        if np.abs(step).max() < 1e-10:
            break
    return float(theta[0]), float(theta[1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--faces", type=Path, default=SHARED / "faces")
    ap.add_argument("--lfw", type=Path, default=SHARED / "lfw-dev")
    ap.add_argument("--lfw-limit", type=int, default=None)
    ap.add_argument("--adjust", type=float, default=-1.0)
    ap.add_argument("--model-dir", default=os.environ.get("FACEPRINT_MODEL_DIR"))
    args = ap.parse_args()
    model_dir = args.model_dir or str(SHARED / "models" / "yunet")

    rows: list[tuple[float, bool]] = []
    counts: dict[str, tuple[int, int, int]] = {}
    sets = [
        ("faces", sorted(args.faces.glob("*.jpg")), False),
        ("lfw-dev", sorted(args.lfw.glob("*/*.jpg"))[: args.lfw_limit], True),
    ]
    for name, paths, centred in sets:
        got: list[tuple[float, bool]] = []
        for path in paths:
            got += labelled(load_image(path), args.adjust, centred, model_dir)
        faces = sum(1 for _, t in got if t)
        counts[name] = (len(paths), faces, len(got) - faces)
        rows += got
        print(f"{name}: {len(paths)} photos, {faces} face / {len(got) - faces} non-face detections")
    x = np.array([m for m, _ in rows])
    y = np.array([float(t) for _, t in rows])
    a, b = fit_logistic(x, y)
    p = 1 / (1 + np.exp(-(a * x + b)))
    loglik = float(np.sum(y * np.log(p + 1e-12) + (1 - y) * np.log(1 - p + 1e-12)))
    print(f"\nfit on {len(x)} detections ({int(y.sum())} faces), adjust_threshold {args.adjust}:")
    print(f"  a = {a:.4f}, b = {b:.4f}; mean log-likelihood {loglik / len(x):.4f}")
    print(f"  probability at margin 0: {1 / (1 + math.exp(-b)):.3f}; "
          f"p = 0.5 at margin {-b / a:.3f}")  # fmt: skip
    print("\nreliability (margin bin: detections, observed share of faces, mean predicted):")
    edges = [-math.inf, -1.0, -0.75, -0.5, -0.25, 0.0, 0.25, 0.5, 0.75, 1.0, math.inf]
    for lo, hi in zip(edges[:-1], edges[1:], strict=True):
        m = (x > lo) & (x <= hi)
        if m.any():
            print(f"  ({lo:5.2f}, {hi:5.2f}]: {int(m.sum()):5d}  observed {y[m].mean():.3f}  "
                  f"predicted {p[m].mean():.3f}")  # fmt: skip
    print("\nSCORE_MAP for faceprint/detect/mmod_config.py:")
    print(f'    "a": {a:.4f},\n    "b": {b:.4f},')
    for name, (photos, pos, neg) in counts.items():
        print(f'    "{name}": "{photos} photos, {pos} face / {neg} non-face detections",')
    print(f'    "adjust_threshold": {args.adjust},')


if __name__ == "__main__":
    main()
