"""Share of LFW photos in which each detector finds the face, on ../shared/lfw-dev.

    python bench/detection_recall.py [--lfw DIR] [--limit N] [--model-dir DIR]
        [--detectors mmod,mmod-exact,yunet,dlib-hog,dlib-cnn] [--cnn-limit N]

lfw-dev holds 1,548 LFW photos, a face in every one, the named person the face nearest the
centre (PROVENANCE.md says 250 x 250 as distributed; the copy measured here is 150 x 150,
MMOD boxes of the centred face 57-82 px). A photo counts as *found* when a detected box
contains the image centre; "any face" counts photos with at least one detection.

* ``mmod``: faceprint's offline default, ``mmod.detect_many`` (fast mode, default
  ``min_face`` and budget);
* ``mmod-exact``: ``mmod.detect_exact`` with no upsampling (dlib's own call as faceprint
  used it before);
* ``yunet``: ``yunet.detect`` at its default threshold (file from ``--model-dir``, default
  ../shared/models/yunet);
* ``dlib-hog``, ``dlib-cnn``: dlib's HOG and CNN detectors with one upsampling, as the
  face_recognition library calls them (only when ``import dlib`` works). dlib's CNN takes
  ~20 s per photo on a CPU without BLAS: it runs on the first ``--cnn-limit`` photos only
  (default 20), and the line says so.

Prints, per detector: found / photos, any face / photos, photos/s, and the photos missed.
"""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image as PILImage

from faceprint.detect import mmod, yunet
from faceprint.types import Box, Image

SHARED = Path(__file__).resolve().parents[2] / "shared"

#: a detector: photos -> per photo, boxes (left, top, right, bottom)
Boxes = list[tuple[float, float, float, float]]
Detector = Callable[[Sequence[Image]], list[Boxes]]


def load_rgb(path: Path) -> Image:
    with PILImage.open(path) as im:
        return np.asarray(im.convert("RGB"))


def centre_found(image: Image, boxes: Boxes) -> bool:
    cy, cx = image.shape[0] / 2, image.shape[1] / 2
    return any(left <= cx <= right and top <= cy <= bottom for left, top, right, bottom in boxes)


def _t(box: Box) -> tuple[float, float, float, float]:
    return (box.left, box.top, box.right, box.bottom)


def detectors(model_dir: str) -> dict[str, Detector]:
    """Every detector that can run here, by name."""
    out: dict[str, Detector] = {
        "mmod": lambda ims: [[_t(d.box) for d in r] for r in mmod.detect_many(ims)],
        "mmod-exact": lambda ims: [[_t(d.box) for d in mmod.detect_exact(im)] for im in ims],
        "yunet": lambda ims: [
            [_t(d.box) for d in yunet.detect(im, model_dir=model_dir)] for im in ims
        ],
    }
    try:
        import dlib
        import face_recognition_models
    except ImportError:
        return out
    models = Path(face_recognition_models.__file__).parent / "models"
    hog = dlib.get_frontal_face_detector()
    cnn = dlib.cnn_face_detection_model_v1(str(models / "mmod_human_face_detector.dat"))

    def rects(found: Sequence[Any]) -> Boxes:
        return [(r.left(), r.top(), r.right(), r.bottom()) for r in found]

    out["dlib-hog"] = lambda ims: [rects(hog(im, 1)) for im in ims]
    out["dlib-cnn"] = lambda ims: [rects([d.rect for d in cnn(im, 1)]) for im in ims]
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--lfw", type=Path, default=SHARED / "lfw-dev")
    ap.add_argument("--limit", type=int, default=None)
    ap.add_argument("--detectors", default="mmod,mmod-exact,yunet,dlib-hog,dlib-cnn")
    ap.add_argument("--cnn-limit", type=int, default=20)
    ap.add_argument("--model-dir", default=os.environ.get("FACEPRINT_MODEL_DIR"))
    args = ap.parse_args()
    model_dir = args.model_dir or str(SHARED / "models" / "yunet")
    paths = sorted(args.lfw.glob("*/*.jpg"))[: args.limit]
    images = [load_rgb(p) for p in paths]
    available = detectors(model_dir)
    print(f"{len(images)} photos of {args.lfw}")
    for name in args.detectors.split(","):
        if name not in available:
            print(f"{name:10s} not available (dlib detectors need `pip install dlib-bin`)")
            continue
        n = min(len(images), args.cnn_limit) if name == "dlib-cnn" else len(images)
        run = available[name]
        run(images[:1])  # warm-up: sessions, conversions
        t0 = time.perf_counter()
        found = run(images[:n])
        dt = time.perf_counter() - t0
        hits = [centre_found(im, b) for im, b in zip(images[:n], found, strict=True)]
        anyf = sum(1 for b in found if b)
        missed = [f"{paths[i].parent.name}/{paths[i].name}" for i, h in enumerate(hits) if not h]
        subset = f" (first {n} photos only)" if n < len(images) else ""
        print(
            f"{name:10s} centre face {sum(hits):4d}/{n} = {100 * sum(hits) / n:6.2f} %   "
            f"any face {anyf:4d}/{n} = {100 * anyf / n:6.2f} %   {n / dt:6.1f} photos/s{subset}"
        )
        if missed:
            shown = ", ".join(missed[:8]) + (" ..." if len(missed) > 8 else "")
            print(f"{'':10s} missed: {shown}")


if __name__ == "__main__":
    main()
