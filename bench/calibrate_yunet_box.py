"""Fit the map from a YuNet detection to dlib's MMOD box (faceprint.detect.yunet.to_dlib_box).

dlib's 5-point shape predictor was trained on MMOD boxes (roughly square, eyebrows to lower
lip); YuNet boxes are taller (forehead to chin). For every fixture image we take the YuNet face
that overlaps dlib's first face most and fit, by linear least squares, each of the MMOD box's
centre x, centre y and side as a linear function of YuNet's geometry, in a translation- and
scale-equivariant form (e = eye centre, m = mouth centre, c = YuNet box centre, w/h = its size,
D = |m - e|, E = eye distance):

    cx   = ex + kx1 * (mx - ex) + kx2 * (cx_yunet - ex)
    cy   = ey + ky1 * (my - ey) + ky2 * (cy_yunet - ey)
    side = s1 * D + s2 * E + s3 * w + s4 * h

Usage: python bench/calibrate_yunet_box.py [--faces DIR] [--fixture JSON] [--model-dir DIR]
Prints the coefficients of several variants, their in-sample and leave-one-out IoU vs dlib.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

import cv2
import numpy as np
import numpy.typing as npt

from faceprint.detect import yunet
from faceprint.types import Box, Detection

Arr = npt.NDArray[np.float64]
Rows = list[tuple[str, Detection, Box]]

# (name, centre-x features, centre-y features, side features) -- indices into _features()
VARIANTS: dict[str, tuple[list[str], list[str], list[str]]] = {
    "box only": (["bcx"], ["bcy"], ["w", "h"]),
    "landmarks only": (["mx"], ["my"], ["D", "E"]),
    "box + landmarks": (["mx", "bcx"], ["my", "bcy"], ["D", "E", "w", "h"]),
}


def _features(
    face: Detection,
) -> tuple[float, float, dict[str, float], dict[str, float], dict[str, float]]:
    assert face.keypoints is not None, "a YuNet detection has its 5 keypoints"
    lm = face.keypoints.astype(np.float64)
    eye = (lm[0] + lm[1]) / 2
    mouth = (lm[3] + lm[4]) / 2
    b = face.box
    bc = np.array([(b.left + b.right) / 2, (b.top + b.bottom) / 2])
    fx = {"mx": mouth[0] - eye[0], "bcx": bc[0] - eye[0]}
    fy = {"my": mouth[1] - eye[1], "bcy": bc[1] - eye[1]}
    fs = {
        "D": float(np.linalg.norm(mouth - eye)),
        "E": float(np.linalg.norm(lm[1] - lm[0])),
        "w": b.width,
        "h": b.height,
    }
    return float(eye[0]), float(eye[1]), fx, fy, fs


def collect(faces_dir: Path, fixture: Path) -> Rows:
    images = json.loads(fixture.read_text())["images"]
    rows: Rows = []
    for name in sorted(images):
        bgr = cv2.imread(str(faces_dir / name))
        if bgr is None:
            continue
        ref = Box(*(float(v) for v in images[name]["faces"][0]["box_ltrb"]))
        found = yunet.detect(np.ascontiguousarray(bgr[:, :, ::-1]))
        if not found:
            print(f"{name}: no YuNet face")
            continue
        best = max(found, key=lambda f: f.box.iou(ref))
        rows.append((name, best, ref))
    return rows


def design(rows: Rows, variant: str) -> tuple[Arr, Arr, Arr, Arr, Arr, Arr]:
    kx, ky, ks = VARIANTS[variant]
    ax, ay, as_, tx, ty, ts = [], [], [], [], [], []
    for _, face, ref in rows:
        ex, ey, fx, fy, fs = _features(face)
        ax.append([fx[k] for k in kx])
        ay.append([fy[k] for k in ky])
        as_.append([fs[k] for k in ks])
        tx.append((ref.left + ref.right) / 2 - ex)
        ty.append((ref.top + ref.bottom) / 2 - ey)
        ts.append(((ref.right - ref.left) + (ref.bottom - ref.top)) / 2)
    return tuple(np.asarray(v, dtype=np.float64) for v in (ax, ay, as_, tx, ty, ts))  # type: ignore[return-value]


def fit(a: tuple[Arr, Arr, Arr, Arr, Arr, Arr]) -> tuple[Arr, Arr, Arr]:
    ax, ay, as_, tx, ty, ts = a
    cx = np.asarray(np.linalg.lstsq(ax, tx, rcond=None)[0], dtype=np.float64)
    cy = np.asarray(np.linalg.lstsq(ay, ty, rcond=None)[0], dtype=np.float64)
    cs = np.asarray(np.linalg.lstsq(as_, ts, rcond=None)[0], dtype=np.float64)
    return cx, cy, cs


def ious(
    rows: Rows,
    a: tuple[Arr, Arr, Arr, Arr, Arr, Arr],
    coef: tuple[Arr, Arr, Arr],
) -> Arr:
    ax, ay, as_, _, _, _ = a
    out = []
    for i, (_, face, ref) in enumerate(rows):
        ex, ey, _, _, _ = _features(face)
        cx = ex + ax[i] @ coef[0]
        cy = ey + ay[i] @ coef[1]
        side = as_[i] @ coef[2]
        out.append(Box(cx - side / 2, cy - side / 2, cx + side / 2, cy + side / 2).iou(ref))
    return np.asarray(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--faces", type=Path, default=Path("/work/shared/faces"))
    parser.add_argument(
        "--fixture", type=Path, default=Path("/work/shared/fixtures/dlib_reference.json")
    )
    parser.add_argument("--model-dir", default=None)
    args = parser.parse_args()
    if args.model_dir:
        os.environ["FACEPRINT_MODEL_DIR"] = args.model_dir
    rows = collect(args.faces, args.fixture)
    raw = np.array([face.box.iou(ref) for _, face, ref in rows])
    print(
        f"{len(rows)} images; raw YuNet box vs dlib IoU: mean {raw.mean():.3f} min {raw.min():.3f}"
    )
    for variant in VARIANTS:
        a = design(rows, variant)
        coef = fit(a)
        ins = ious(rows, a, coef)
        loo = []
        for i in range(len(rows)):
            mask = np.arange(len(rows)) != i
            sub = tuple(v[mask] for v in a)
            c = fit(sub)
            loo.append(ious(rows[i : i + 1], tuple(v[i : i + 1] for v in a), c)[0])  # type: ignore[arg-type]
        loo_a = np.asarray(loo)
        print(f"\n[{variant}]")
        for label, names, cf in zip(("cx", "cy", "side"), VARIANTS[variant], coef, strict=True):
            print(
                f"  {label:5s} " + ", ".join(f"{n}={v:.6f}" for n, v in zip(names, cf, strict=True))
            )
        print(
            f"  IoU in-sample mean {ins.mean():.3f} min {ins.min():.3f} "
            f"(worst {rows[int(ins.argmin())][0]}); leave-one-out mean {loo_a.mean():.3f} "
            f"min {loo_a.min():.3f}"
        )
    # check the constants shipped in yunet.py
    shipped = np.array([yunet.to_dlib_box(face).iou(ref) for _, face, ref in rows])
    print(
        f"\nshipped to_dlib_box: IoU mean {shipped.mean():.3f} min {shipped.min():.3f} "
        f"p5 {np.percentile(shipped, 5):.3f}"
    )


if __name__ == "__main__":
    main()
