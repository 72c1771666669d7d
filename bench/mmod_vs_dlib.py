"""Compare faceprint's MMOD detector with dlib's own output on every fixture photo.

    python bench/mmod_vs_dlib.py [--max-side N ...] [--only img1.jpg ...] [--skip-full]
    python bench/mmod_vs_dlib.py --templates [--only ...]

Default: the exact mode (``mmod.detect_exact``) against dlib's boxes and confidences. Prints,
per photo: size, faces found / expected, IoU and confidence difference of each matched face,
seconds; then a summary (IoU min/mean, confidence difference max/mean, seconds per
megapixel) for full resolution and for each ``--max-side`` given.

``--templates``: on every photo of ../shared/faces, the templates of the fast path
(``faceprint.detect.detect(image, detector="mmod")`` then ``faceprint.embed.embed``) against
the exact path (``mmod.detect_exact`` boxes, the same landmark model and embedding) and, on
the fixture photos, against dlib's own descriptor. Faces are paired by box IoU >= 0.3.
Prints the cosines (min, mean) and the faces only one path found.
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

from faceprint.align.shape_predictor import ShapePredictor
from faceprint.detect import detect, mmod
from faceprint.embed import embed
from faceprint.io import load_image
from faceprint.types import Face

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
    mmod.detect_exact(np.zeros((64, 64, 3), np.uint8))  # load the model outside the timing
    for name in names:
        with Image.open(SHARED / "faces" / name) as im:
            image = np.asarray(im.convert("RGB"))
        t0 = time.perf_counter()
        faces = mmod.detect_exact(image, max_side=max_side)
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
            dc = abs(faces[best].raw_score - r["mmod_confidence"])
            ious.append(iou)
            dconfs.append(dc)
            parts.append(f"iou {iou:.3f} dconf {dc:.1e}")
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


def exact_faces(image: np.ndarray) -> list[Face]:
    """The exact path: dlib's boxes, then the same landmarks as faceprint.detect.detect."""
    found = mmod.detect_exact(image)
    if not found:
        return []
    shapes = ShapePredictor.load().predict_many(image, [d.box.as_list() for d in found])
    return [
        Face(box=d.box, score=d.score, landmarks=np.asarray(s, np.float32).reshape(5, 2))
        for d, s in zip(found, shapes, strict=True)
    ]


def templates(names: list[str] | None, ref: dict[str, Any]) -> None:
    paths = sorted((SHARED / "faces").glob("*.jpg"))
    if names:
        paths = [p for p in paths if p.name in names]
    cos_exact: list[float] = []
    cos_dlib: list[float] = []
    only_fast: list[str] = []
    only_exact: list[str] = []
    for path in paths:
        image = load_image(path)
        fast = embed(image, detect(image, detector="mmod"))
        exact = embed(image, exact_faces(image))
        left = list(range(len(fast)))
        for e in exact:
            best = max(left, key=lambda i: iou_inclusive(fast[i].box.as_list(), e.box.as_list()),
                       default=None)  # fmt: skip
            if best is None or iou_inclusive(fast[best].box.as_list(), e.box.as_list()) < 0.3:
                only_exact.append(f"{path.name} {e.box.as_list()}")
                continue
            left.remove(best)
            f = fast[best]
            assert f.embedding is not None and e.embedding is not None
            cos_exact.append(float(f.embedding @ e.embedding))
            for r in ref.get(path.name, {}).get("faces", []):
                if r["box_ltrb"] == e.box.as_list():
                    d = np.asarray(r["descriptor"], np.float64)
                    cos_dlib.append(float(f.embedding @ d / np.linalg.norm(d)))
        only_fast += [f"{path.name} {fast[i].box.as_list()}" for i in left]
    print(f"{len(paths)} photos: {len(cos_exact)} faces found by both paths")
    print(f"fast vs exact template cosine: min {min(cos_exact):.4f} mean {np.mean(cos_exact):.5f}")
    if cos_dlib:
        print(f"fast template vs dlib's descriptor ({len(cos_dlib)} fixture faces): "
              f"min {min(cos_dlib):.4f} mean {np.mean(cos_dlib):.5f}")  # fmt: skip
    print(f"only the fast path: {len(only_fast)} {only_fast}")
    print(f"only the exact path: {len(only_exact)} {only_exact}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--max-side", type=int, action="append", default=[])
    ap.add_argument("--only", nargs="*", default=None)
    ap.add_argument("--skip-full", action="store_true", help="do not run at full resolution")
    ap.add_argument("--templates", action="store_true", help="fast vs exact path templates")
    args = ap.parse_args(argv)
    ref: dict[str, Any] = json.loads((SHARED / "fixtures" / "dlib_reference.json").read_text())[
        "images"
    ]
    if args.templates:
        templates(args.only, ref)
        return 0
    names = args.only or sorted(ref, key=lambda n: ref[n]["size_hw"][0] * ref[n]["size_hw"][1])
    settings: list[int | None] = [] if args.skip_full else [None]
    settings += args.max_side
    for max_side in settings:
        run(names, ref, max_side)
    return 0


if __name__ == "__main__":
    sys.exit(main())
