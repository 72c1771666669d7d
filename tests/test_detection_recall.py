"""The offline default detector (MMOD, fast mode) finds LFW's named person.

../shared/lfw-dev holds 1,548 LFW photos (150 x 150 in the copy measured), a face in every
one, the named person centred. A photo counts as found when a detected box contains the
image centre; the target is at least 99.5 % (measured: 1,547 of 1,548;
``bench/detection_recall.py`` also measures the other detectors). Runs every photo, in
batches: 80 s of CPU time (3 min wall on the shared, loaded 2-core machine).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from faceprint.detect import mmod

LFW = Path(__file__).resolve().parents[2] / "shared" / "lfw-dev"


def test_offline_default_finds_the_centred_face() -> None:
    paths = sorted(LFW.glob("*/*.jpg"))
    if not paths:
        pytest.skip(f"{LFW} is not present")
    found = 0
    missed: list[str] = []
    for start in range(0, len(paths), 64):
        chunk = paths[start : start + 64]
        images = []
        for path in chunk:
            with Image.open(path) as im:
                images.append(np.asarray(im.convert("RGB")))
        for path, image, dets in zip(chunk, images, mmod.detect_many(images), strict=True):
            cy, cx = image.shape[0] / 2, image.shape[1] / 2
            boxes = [d.box for d in dets]
            if any(b.left <= cx <= b.right and b.top <= cy <= b.bottom for b in boxes):
                found += 1
            else:
                missed.append(path.name)
    share = found / len(paths)
    assert share >= 0.995, f"centred face found in {found}/{len(paths)}; missed {missed}"
