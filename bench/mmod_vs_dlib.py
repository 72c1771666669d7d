"""Compare faceprint's MMOD detector with dlib's own output on every fixture photo.

    python bench/mmod_vs_dlib.py [--max-side N ...] [--only img1.jpg ...]

Prints, per photo: size, faces found / expected, IoU and confidence difference of each matched
face, seconds; then a summary (IoU min/mean, confidence difference max/mean, seconds per
megapixel) for full resolution and for each ``--max-side`` given.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from faceprint.detect import mmod

SHARED = Path(__file__).resolve().parents[2] / "shared"


def iou_inclusive(a: list[float], b: list[float]) -> float:
    iw = min(a[2], b[2]) - max(a[0], b[0]) + 1
    ih = min(a[3], b[3]) - max(a[1], b[1]) + 1
    if iw <= 0 or ih <= 0:
        return 0.0
    inter = iw * ih
    area_a = (a[2] - a[0] + 1) * (a[3] - a[1] + 1)
    area_b = (b[2] - b[0] + 1) * (b[3] - b[1] + 1)
    return float(inter / (area_a + area_b - inter))


def run(names: list[str], ref: dict[str, Any], max_side: int | None) -> None:
    ious: list[float] = []
    dconfs: list[float] = []
    count_errors = 0
    times: list[tuple[float, float]] = []
    print(f"\n== max_side={max_side}")
    mmod.detect(np.zeros((64, 64, 3), np.uint8))  # load / convert the model outside the timing
    for name in names:
        with Image.open(SHARED / "faces" / name) as im:
            image = np.asarray(im.convert("RGB"))
        t0 = time.perf_counter()
        faces = mmod.detect(image, max_side=max_side)
        dt = time.perf_counter() - t0
        mp = image.shape[0] * image.shape[1] / 1e6
        times.append((mp, dt))
        want = ref[name]["faces"]
        left = list(range(len(faces)))
        parts = []
        for r in want:
            if not left:
                parts.append("MISSING")
                ious.append(0.0)
                continue
            best = max(left, key=lambda i: iou_inclusive(faces[i].box.as_list(), r["box_ltrb"]))
            left.remove(best)
            iou = iou_inclusive(faces[best].box.as_list(), r["box_ltrb"])
            dc = abs(faces[best].score - r["mmod_confidence"])
            ious.append(iou)
            dconfs.append(dc)
            parts.append(f"iou {iou:.3f} dconf {dc:.4f}")
        if len(faces) != len(want):
            count_errors += 1
        h, w = image.shape[:2]
        print(
            f"{name:24s} {w:5d}x{h:<5d} {len(faces)}/{len(want)} faces  "
            f"{'; '.join(parts)}  {dt:6.2f}s"
        )
    total_mp = sum(t[0] for t in times)
    total_s = sum(t[1] for t in times)
    print(
        f"-- {len(names)} photos, count mismatches {count_errors}; IoU min {min(ious):.4f} "
        f"mean {np.mean(ious):.4f}; |dconf| max {max(dconfs):.2e} mean {np.mean(dconfs):.2e}; "
        f"{total_s:.1f}s total, {total_s / total_mp:.2f} s/megapixel"
    )


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--max-side", type=int, action="append", default=[])
    ap.add_argument("--only", nargs="*", default=None)
    ap.add_argument("--skip-full", action="store_true", help="do not run at full resolution")
    args = ap.parse_args(argv)
    ref: dict[str, Any] = json.loads((SHARED / "fixtures" / "dlib_reference.json").read_text())[
        "images"
    ]
    names = args.only or sorted(ref, key=lambda n: ref[n]["size_hw"][0] * ref[n]["size_hw"][1])
    settings: list[int | None] = [] if args.skip_full else [None]
    settings += args.max_side
    for max_side in settings:
        run(names, ref, max_side)
    return 0


if __name__ == "__main__":
    sys.exit(main())
