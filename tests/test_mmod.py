"""dlib's MMOD CNN face detector on ONNX Runtime: the exact mode against what dlib itself
returned, and the fast mode (faceprint's offline default) against its own rules.

The reference boxes and confidences were produced by dlib 20.0.1's
``cnn_face_detection_model_v1(img, 0)`` on the same photos (fixture ``dlib_reference.json``).
The exact mode costs ~1 s per 2 MP on two cores, so this file checks a representative subset
-- the largest photos, the two-face photo img59 and a spread of sizes; set
``FACEPRINT_MMOD_FULL=1`` to check every photo (``bench/mmod_vs_dlib.py`` prints the full
comparison with timings).
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
from PIL import Image

from faceprint.detect import mmod
from faceprint.errors import FaceprintError, ImageError
from faceprint.types import Detection
from faceprint.types import Image as Image8

SHARED = Path(__file__).resolve().parents[2] / "shared"
FIXTURE = SHARED / "fixtures" / "dlib_reference.json"
FACES = SHARED / "faces"

#: largest first, then img59 (two faces, one cut by the left edge) and a spread of sizes
SUBSET = [
    "img40.jpg",
    "img49.jpg",
    "img59.jpg",
    "img1.jpg",
    "img10.jpg",
    "img11.jpg",
    "img12.jpg",
    "img14.jpg",
    "img16.jpg",
    "img21.jpg",
    "img25.jpg",
    "img27.jpg",
    "img29.jpg",
    "img43.jpg",
    "img44.jpg",
    "img46.jpg",
    "img5.jpg",
    "img50.jpg",
    "img62.jpg",
]

#: README: boxes identical to dlib's, confidence within 4e-5 (max over the 61 photos: 3.96e-5)
CONF_TOL = 4e-5


def _reference() -> dict[str, Any]:
    if not FIXTURE.is_file():
        pytest.skip(f"fixture {FIXTURE} not present")
    data: dict[str, Any] = json.loads(FIXTURE.read_text())
    return data["images"]


def _names() -> list[str]:
    if os.environ.get("FACEPRINT_MMOD_FULL", "") in ("1", "true", "yes"):
        return sorted(_reference())
    return SUBSET


def load_rgb(name: str) -> Image8:
    with Image.open(FACES / name) as im:
        return np.asarray(im.convert("RGB"))


def iou_inclusive(a: list[float], b: list[float]) -> float:
    """IoU of two dlib rectangles (integer corners, right/bottom inclusive)."""
    iw = min(a[2], b[2]) - max(a[0], b[0]) + 1
    ih = min(a[3], b[3]) - max(a[1], b[1]) + 1
    if iw <= 0 or ih <= 0:
        return 0.0
    inter = iw * ih
    area_a = (a[2] - a[0] + 1) * (a[3] - a[1] + 1)
    area_b = (b[2] - b[0] + 1) * (b[3] - b[1] + 1)
    return float(inter / (area_a + area_b - inter))


def match(found: list[Detection], ref: list[dict[str, Any]]) -> list[tuple[float, float]]:
    """Greedy best-IoU pairing; returns (iou, |margin difference|) per reference face."""
    left = list(range(len(found)))
    out: list[tuple[float, float]] = []
    for r in ref:
        best = max(left, key=lambda i: iou_inclusive(found[i].box.as_list(), r["box_ltrb"]))
        left.remove(best)
        iou = iou_inclusive(found[best].box.as_list(), r["box_ltrb"])
        out.append((iou, abs(found[best].raw_score - r["mmod_confidence"])))
    return out


def check_records(found: list[Detection]) -> None:
    for d in found:
        assert isinstance(d, Detection) and d.detector == "mmod" and d.keypoints is None
        assert 0.0 <= d.score <= 1.0 and d.score == mmod.probability(d.raw_score)
        assert all(float(v).is_integer() for v in d.box.as_list())
    assert [d.raw_score for d in found] == sorted((d.raw_score for d in found), reverse=True)


# --------------------------------------------------------------------------------------------
# exact mode: dlib, number for number

_stats: list[tuple[str, float, float]] = []


@pytest.mark.parametrize("name", _names())
def test_exact_matches_dlib(name: str) -> None:
    ref = _reference()[name]
    image = load_rgb(name)
    assert list(image.shape[:2]) == ref["size_hw"]
    found = mmod.detect_exact(image)
    check_records(found)
    assert len(found) == len(ref["faces"]), [d.box.as_list() for d in found]
    pairs = match(found, ref["faces"])
    for iou, dconf in pairs:
        _stats.append((name, iou, dconf))
        assert iou == 1.0, (name, pairs)
        assert dconf <= CONF_TOL, (name, pairs)
    assert sorted(d.box.as_list() for d in found) == sorted(f["box_ltrb"] for f in ref["faces"])


def test_report_agreement() -> None:
    """Prints min IoU / max confidence difference over the photos checked above (-s to see)."""
    if not _stats:
        pytest.skip("no comparison ran")
    ious = [s[1] for s in _stats]
    dconf = [s[2] for s in _stats]
    print(
        f"\nmmod exact vs dlib over {len(_stats)} faces: IoU min {min(ious):.4f}; "
        f"|conf diff| max {max(dconf):.2e} mean {np.mean(dconf):.2e}"
    )
    assert min(ious) == 1.0 and max(dconf) <= CONF_TOL


def test_exact_two_faces_one_cut_by_the_edge() -> None:
    """img59: a clear face and a weak one (confidence ~0.07) half outside the image."""
    ref = _reference()["img59.jpg"]["faces"]
    found = mmod.detect_exact(load_rgb("img59.jpg"))
    pairs = match(found, ref)
    assert len(found) == 2 and min(p[0] for p in pairs) == 1.0
    assert found[1].box.left < 0  # dlib keeps boxes that run off the image
    assert found[0].score > found[1].score  # a weak margin is a lower probability


def test_exact_max_side_still_finds_large_faces() -> None:
    """max_side skips full-resolution levels: the face is found, but on a coarser grid
    (measured over the fixture at 2000: IoU mean 0.95, min 0.62), so only loose bounds."""
    ref = _reference()["img49.jpg"]["faces"]
    found = mmod.detect_exact(load_rgb("img49.jpg"), max_side=2000)
    pairs = match(found, ref)
    assert len(found) == 1 and pairs[0][0] >= 0.6 and pairs[0][1] <= 0.05


def test_exact_upsample_maps_boxes_back() -> None:
    """No dlib reference exists for upsample=1: the same face, possibly one pyramid level
    (x1.2) larger or smaller, must come back in original-image coordinates."""
    ref = _reference()["img25.jpg"]["faces"]
    found = mmod.detect_exact(load_rgb("img25.jpg"), upsample=1)  # 400 x 400, face ~136 px
    assert len(found) == 1 and iou_inclusive(found[0].box.as_list(), ref[0]["box_ltrb"]) > 0.6
    with pytest.raises(FaceprintError, match="upsample"):
        mmod.detect_exact(load_rgb("img25.jpg"), upsample=-1)


def test_layout_tiles_fit_and_do_not_overlap() -> None:
    for h, w in [(1868, 1382), (400, 400), (380, 760), (2903, 4352), (20, 900), (900, 20)]:
        rects, rows, cols = mmod.tiled_pyramid_layout(h, w, 10, 11)
        assert rects[0] == (11, 11, 11 + w - 1, 11 + h - 1)
        for i, (x0, y0, x1, y1) in enumerate(rects):
            assert 0 <= x0 <= x1 < cols and 0 <= y0 <= y1 < rows
            for u0, v0, u1, v1 in rects[i + 1 :]:
                assert x1 < u0 or u1 < x0 or y1 < v0 or v1 < y0


# --------------------------------------------------------------------------------------------
# both modes


@pytest.mark.parametrize("run", [mmod.detect, mmod.detect_exact])
def test_blank_tiny_and_empty_images(run: Any) -> None:
    assert run(np.zeros((480, 640, 3), np.uint8)) == []
    assert run(np.full((300, 200, 3), 255, np.uint8)) == []
    assert run(np.zeros((0, 0, 3), np.uint8)) == []
    assert run(np.zeros((3, 3, 3), np.uint8)) == []
    with pytest.raises(ImageError, match="RGB"):
        run(np.zeros((30, 30), np.uint8))


@pytest.mark.parametrize("run", [mmod.detect, mmod.detect_exact])
def test_adjust_threshold_only_adds_detections(run: Any) -> None:
    image = load_rgb("selfie-many-people.jpg")  # 600 x 604, five faces of 90-130 px
    strict, default, loose = (run(image, adjust_threshold=t) for t in (0.5, 0.0, -1.0))
    assert min(d.raw_score for d in strict) > 0.5 and min(d.raw_score for d in default) > 0
    check_records(loose)
    assert len(loose) > len(default) >= 5 and min(d.raw_score for d in loose) <= 0.0
    boxes = [{d.box for d in found} for found in (strict, default, loose)]
    assert boxes[0] <= boxes[1] <= boxes[2]


# --------------------------------------------------------------------------------------------
# fast mode: the pyramid rule, the budget, and what it finds


def test_plan_follows_min_face_and_budget() -> None:
    cfg = mmod.load_config()
    small = mmod.plan(250, 250, cfg)  # doubled so 40-px faces fill the 80-px window
    assert small.scale == pytest.approx(80 / mmod.MIN_FACE) and small.smallest_face == 40
    assert small.sizes[0] == (500, 500)
    big = mmod.plan(3000, 4000, cfg)  # shrunk to the budget
    rows, cols = big.sizes[0]
    assert rows * cols <= mmod.MAX_PIXELS * 1.01 and rows * cols >= mmod.MAX_PIXELS * 0.99
    assert big.smallest_face == pytest.approx(80 * math.sqrt(3000 * 4000 / mmod.MAX_PIXELS))
    coarse = mmod.plan(250, 250, cfg, min_face=100)  # no level finds faces under 100 px
    assert coarse.scale == pytest.approx(0.8) and coarse.smallest_face == pytest.approx(100)
    for p in (small, big, coarse):
        assert min(p.sizes[-1]) >= 40 > min(p.sizes[-1]) * mmod.RATE  # down to a full-image face
        assert all(b[0] < a[0] for a, b in zip(p.sizes, p.sizes[1:], strict=False))
        assert p.factors[0] == pytest.approx((p.scale, p.scale), rel=0.01)
    with pytest.raises(FaceprintError, match="positive"):
        mmod.plan(250, 250, cfg, min_face=0)


@pytest.mark.parametrize("name", ["img49.jpg", "img59.jpg", "img12.jpg", "img43.jpg"])
def test_fast_finds_the_faces_dlib_finds(name: str) -> None:
    """On the fixture photos (big ones shrunk to the budget, small ones enlarged), the fast
    mode finds dlib's clear faces; boxes come from another grid, so they agree loosely
    (over the whole fixture: IoU mean ~0.75, min ~0.53)."""
    ref = [f for f in _reference()[name]["faces"] if f["mmod_confidence"] > 0.3]
    found = mmod.detect(load_rgb(name))
    check_records(found)
    pairs = match(found, ref)
    assert min(p[0] for p in pairs) >= 0.45, pairs


def test_fast_finds_a_small_face_the_exact_mode_misses() -> None:
    """img12's face (137 px) shrunk to ~50 px: under the window, so dlib's call without
    upsampling misses it; the fast mode enlarges the photo for min_face=40 and finds it,
    with the box mapped back to the small photo."""
    image = load_rgb("img12.jpg")  # 560 x 415
    k = 0.36
    small: Image8 = np.asarray(cv2.resize(image, None, fx=k, fy=k, interpolation=cv2.INTER_AREA))
    want = [k * v for v in _reference()["img12.jpg"]["faces"][0]["box_ltrb"]]
    assert mmod.detect_exact(small) == []
    found = mmod.detect(small)
    assert len(found) == 1 and iou_inclusive(found[0].box.as_list(), want) >= 0.5
    assert mmod.detect(small, min_face=100) == []  # nothing is built for faces that small


def test_budget_bounds_the_smallest_face_in_a_big_photo() -> None:
    """A ~50-px face in a 600 x 600 photo: the default budget (0.3 MP) keeps the photo
    about its size, so faces under ~80-90 px are out of reach; a budget big enough to
    double the photo finds it."""
    face = cv2.resize(load_rgb("img12.jpg"), None, fx=0.36, fy=0.36, interpolation=cv2.INTER_AREA)
    canvas = np.full((600, 600, 3), 128, np.uint8)
    canvas[250 : 250 + face.shape[0], 250 : 250 + face.shape[1]] = face
    assert mmod.plan(600, 600, mmod.load_config()).smallest_face > 80
    assert mmod.detect(canvas) == []
    found = mmod.detect(canvas, max_pixels=1200 * 1200)
    assert len(found) == 1 and found[0].box.left >= 250 and found[0].box.right <= 250 + 202


def test_detect_many_equals_detect() -> None:
    a, b = load_rgb("img10.jpg"), load_rgb("img12.jpg")
    many = mmod.detect_many([a, b, a], batch_size=2)
    single = [mmod.detect(a), mmod.detect(b), mmod.detect(a)]
    for got, want in zip(many, single, strict=True):
        assert [d.box for d in got] == [d.box for d in want]
        assert np.allclose([d.raw_score for d in got], [d.raw_score for d in want], atol=1e-4)


def test_probability_is_a_monotone_map_to_unit_interval() -> None:
    margins = np.linspace(-3, 3, 61)
    p = [mmod.probability(float(m)) for m in margins]
    assert all(0.0 <= v <= 1.0 for v in p) and all(b > a for a, b in zip(p, p[1:], strict=False))
    assert mmod.probability(1.0) > 0.9 and mmod.probability(-1.0) < 0.5
    assert mmod.probability(1e6) == 1.0 and mmod.probability(-1e6) == 0.0
