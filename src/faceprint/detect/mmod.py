"""dlib's MMOD CNN face detector (``mmod_human_face_detector.dat``, CC0) on ONNX Runtime.

Two ways to run the same network (converted from dlib's file to ONNX by
:mod:`faceprint.models.dlib_dnn`); both return :class:`~faceprint.types.Detection` records
(``score`` a probability, ``raw_score`` MMOD's margin, boxes as dlib integer rectangles,
right/bottom inclusive), highest score first.

:func:`detect` -- fast, the default
-----------------------------------
The network's detector window is 80 x 80: at any pyramid level it finds faces about 80
level pixels across. :func:`detect` chooses the pyramid from the smallest face wanted:

* *Minimum face* (``min_face``, default 40 px): level 0 is the photo scaled by
  ``s = 80 / min_face`` (x2 by default), so faces of ``min_face`` pixels reach the window;
  nothing is built above it (a bigger level could only find smaller faces).
* *Working-size budget* (``max_pixels``, default :data:`MAX_PIXELS` = 0.3 MP): level 0 is
  never more than ``max_pixels``. So ``s = min(80 / min_face, sqrt(max_pixels / (H * W)))``
  and the smallest face sought is ``80 / s`` pixels (slightly smaller ones are found too):
  ``min_face`` up to a photo of ``max_pixels * (min_face / 80)**2`` pixels (0.075 MP, e.g.
  316 x 237), then ``80 * sqrt(H * W / max_pixels)``, i.e. 14.6 % of the geometric mean of
  the photo's sides (146 px in a 1 MP photo, 207 px at 2 MP, 462 px at 10 MP). The cost is
  bounded by ``max_pixels`` whatever the photo's size.
* *Levels*: each further level is :data:`RATE` (0.7) times the one before, down to the
  last whose shorter side is at least half the window, 40 px (so a face as large as the
  photo, even one cut by its edges, fits the window on some level). dlib steps by 5/6;
  0.7 scores 40 % fewer pixels and, measured, finds the same faces (lfw-dev, ../shared/faces)
  with templates as close to dlib's (``bench/mmod_vs_dlib.py --templates``). All levels are
  packed in one canvas as dlib does (:func:`~faceprint.detect.mmod_pyramid.tiled_layout`,
  ~2.4x level 0's pixels) and scored in one forward pass; :func:`detect_many` also batches
  photos of one size (about 20 % less CPU per photo in batches of 8).
* *Resampling* is OpenCV's (:func:`~faceprint.detect.mmod_pyramid.fast_canvas`), not
  dlib's chain of align-corners resizes in float. Boxes are mapped back with each level's
  exact scale (:func:`~faceprint.detect.mmod_decode.scale_up`), then dlib's NMS runs.

Measured (2 shared cores under load, so provisional): CPU time per ``detect`` call 76 ms
for a 150 x 150 photo (enlarged x2), 136 ms at 0.23 MP, 155 ms at 2.6 MP, 240 ms at 12.6
MP (the budget bounds it; the rest is the shrinking). Against the exact mode on
../shared/faces: its 70 faces less one weak face cut by the edge (img59, margin 0.07),
boxes from another grid (IoU to dlib's mean 0.75), templates with cosine >= 0.998 to the
exact path's; on lfw-dev the centred face is found in 1,547 of 1,548 photos (exact mode:
743). ``bench/throughput.py``, ``bench/detection_recall.py``.

:func:`detect_exact` -- dlib, number for number
-----------------------------------------------
Reproduces ``dlib.cnn_face_detection_model_v1(path)(img, upsample)``: optional
``pyramid_up`` (``upsample``), dlib's tiled ``pyramid_down<6>`` canvas of the full-resolution
photo, one forward pass, ``loss_mmod_::to_label`` decoding and NMS (details in
:mod:`~faceprint.detect.mmod_pyramid` and :mod:`~faceprint.detect.mmod_decode`). On the 61
reference photos (``tests/test_mmod.py``, ``bench/mmod_vs_dlib.py``) every box is identical
to dlib 20.0.1's and every margin within 4e-5. Its cost grows with the pixel count (the
canvas is ~3.7x the photo): ~0.25 s at 0.2 MP, ~1.2 s at 2 MP, 12-18 s at 13 MP on 2 cores.
``max_side`` starts that pyramid at the first level whose longer side is at most
``max_side`` (faster, but boxes then move: a face may win on a neighbouring level).

Score
-----
``raw_score`` is MMOD's margin (dlib's "confidence"; a face when > 0 at the default
``adjust_threshold``). ``score`` is :func:`~faceprint.detect.mmod_config.probability`: a
logistic map of the margin fitted by ``bench/calibrate_mmod_score.py`` on labelled
detections (coefficients and counts in :data:`~faceprint.detect.mmod_config.SCORE_MAP`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from faceprint import runtime
from faceprint.detect.mmod_config import SCORE_MAP, MmodConfig, load_config, probability
from faceprint.detect.mmod_decode import (
    decode,
    nms,
    point_up,
    rect_down2,
    round_half_up,
    scale_up,
)
from faceprint.detect.mmod_pyramid import (
    Rect,
    build_tiled_pyramid,
    dlib_level_sizes,
    exact_planes,
    fast_canvas,
    fast_level_sizes,
    pyramid_up2,
    resize_align_corners,
    tiled_layout,
    tiled_pyramid_layout,
)
from faceprint.errors import FaceprintError, ImageError
from faceprint.types import Box, Detection, Image

__all__ = [
    "MAX_PIXELS",
    "MIN_FACE",
    "RATE",
    "SCORE_MAP",
    "MmodConfig",
    "Plan",
    "build_tiled_pyramid",
    "detect",
    "detect_exact",
    "detect_many",
    "load_config",
    "nms",
    "plan",
    "probability",
    "pyramid_up2",
    "resize_align_corners",
    "tiled_layout",
    "tiled_pyramid_layout",
]

F32 = npt.NDArray[np.float32]
F64 = npt.NDArray[np.float64]

#: Default smallest face :func:`detect` looks for, in photo pixels.
MIN_FACE = 40
#: Default working-size budget of :func:`detect`: level 0 of the pyramid has at most this
#: many pixels (the canvas scored is about 2.4x that).
MAX_PIXELS = 300_000
#: Levels stop at the last one whose shorter side is at least this share of the window.
_LAST_LEVEL_SIDE = 0.5
#: Scale step between the fast pyramid's levels (dlib's is 5/6; see the module docstring).
RATE = 0.7


# --------------------------------------------------------------------------------------------
# fast mode


@dataclass(frozen=True)
class Plan:
    """The fast pyramid for one photo size: ``scale`` (level-0 pixels per photo pixel),
    level ``sizes`` (rows, cols) and their tiles ``rects`` in a canvas of ``canvas_hw``,
    ``factors`` (level pixels per photo pixel, x and y, per level) and ``smallest_face``
    (photo pixels: the face that fills the detector window at level 0)."""

    scale: float
    sizes: tuple[tuple[int, int], ...]
    rects: tuple[Rect, ...]
    canvas_hw: tuple[int, int]
    factors: F64
    smallest_face: float


def plan(
    height: int,
    width: int,
    cfg: MmodConfig,
    *,
    min_face: float = MIN_FACE,
    max_pixels: int = MAX_PIXELS,
) -> Plan:
    """The pyramid :func:`detect` builds for a ``height x width`` photo (see the module
    docstring for the rule)."""
    if not min_face > 0 or not max_pixels > 0:
        raise FaceprintError("mmod: min_face and max_pixels must be positive")
    window = cfg.window
    scale = min(window / min_face, math.sqrt(max_pixels / max(height * width, 1)))
    sizes = fast_level_sizes(height, width, scale, RATE, window * _LAST_LEVEL_SIDE)
    rects, rows, cols = tiled_layout(sizes, cfg.pyramid_padding, cfg.pyramid_outer_padding)
    sizes = sizes[: len(rects)]
    factors = np.array([(w / width, h / height) for h, w in sizes], dtype=np.float64)
    return Plan(scale, tuple(sizes), tuple(rects), (rows, cols), factors, window / scale)


def _fast_results(
    scores: F32, cfg: MmodConfig, p: Plan, adjust_threshold: float
) -> list[Detection]:
    margins, boxes, levels = decode(scores, cfg, p.rects, adjust_threshold)
    rects = round_half_up(scale_up(boxes, levels, p.factors)).astype(np.int64)
    return _detections(margins, rects, cfg)


def _detections(margins: F64, rects: npt.NDArray[np.int64], cfg: MmodConfig) -> list[Detection]:
    kept = nms(margins, rects, cfg.nms_iou, cfg.nms_covered)
    return [_detection(float(margins[i]), rects[i].astype(np.float64)) for i in kept]


def _detection(margin: float, rect: F64) -> Detection:
    box = Box(float(rect[0]), float(rect[1]), float(rect[2]), float(rect[3]))
    return Detection(box=box, score=probability(margin), raw_score=margin, detector="mmod")


def _runnable(cfg: MmodConfig, p: Plan) -> bool:
    return bool(p.rects) and min(cfg.output_size(*p.canvas_hw)) > 0


def detect(
    image: Image,
    *,
    min_face: float = MIN_FACE,
    max_pixels: int = MAX_PIXELS,
    adjust_threshold: float = 0.0,
    model_dir: str | Path | None = None,
) -> list[Detection]:
    """Faces found by MMOD on a pyramid chosen from ``min_face`` within the ``max_pixels``
    budget (module docstring), highest score first. ``adjust_threshold`` is added to
    MMOD's decision threshold on the margin (negative: more, weaker detections)."""
    return detect_many(
        [image],
        min_face=min_face,
        max_pixels=max_pixels,
        adjust_threshold=adjust_threshold,
        model_dir=model_dir,
    )[0]


def detect_many(
    images: Sequence[Image],
    *,
    min_face: float = MIN_FACE,
    max_pixels: int = MAX_PIXELS,
    adjust_threshold: float = 0.0,
    model_dir: str | Path | None = None,
    batch_size: int = 8,
) -> list[list[Detection]]:
    """:func:`detect` for several photos, in input order; photos of one size share a pyramid
    plan and run ``batch_size`` at a time in one forward pass."""
    for image in images:
        _check_image(image)
    cfg = load_config(model_dir)
    results: list[list[Detection]] = [[] for _ in images]
    groups: dict[tuple[int, int], list[int]] = {}
    for i, image in enumerate(images):
        if image.shape[0] and image.shape[1]:
            groups.setdefault((image.shape[0], image.shape[1]), []).append(i)
    step = max(1, batch_size)
    for (h, w), idxs in groups.items():
        p = plan(h, w, cfg, min_face=min_face, max_pixels=max_pixels)
        if not _runnable(cfg, p):
            continue  # too small for the network: nothing to detect
        for start in range(0, len(idxs), step):
            chunk = idxs[start : start + step]
            batch = np.empty((len(chunk), 3, *p.canvas_hw), dtype=np.float32)
            for j, i in enumerate(chunk):
                fast_canvas(images[i], p.sizes, p.rects, p.canvas_hw, cfg.mean_rgb, batch[j])
            (scores,) = runtime.run(cfg.onnx_path, batch)[:1]
            for j, i in enumerate(chunk):
                results[i] = _fast_results(scores[j], cfg, p, adjust_threshold)
    return results


# --------------------------------------------------------------------------------------------
# exact mode


def _check_image(image: Image) -> None:
    if not isinstance(image, np.ndarray) or image.dtype != np.uint8:
        raise ImageError("mmod needs a uint8 numpy array (H x W x 3, RGB)")
    if image.ndim != 3 or image.shape[2] != 3:
        raise ImageError(f"mmod needs an H x W x 3 RGB image, got shape {image.shape}")


def _levels_to_skip(sizes: list[tuple[int, int]], max_side: int | None) -> int:
    if max_side is None:
        return 0
    for i, (h, w) in enumerate(sizes):
        if max(h, w) <= max_side:
            return i
    return len(sizes) - 1


def detect_exact(
    image: Image,
    *,
    upsample: int = 0,
    adjust_threshold: float = 0.0,
    model_dir: str | Path | None = None,
    max_side: int | None = None,
) -> list[Detection]:
    """What ``dlib.cnn_face_detection_model_v1(path)(image, upsample)`` returns, highest
    score first: boxes are dlib's rectangles, ``raw_score`` dlib's confidence.

    ``max_side`` (default off) starts dlib's pyramid at the first level whose longer side is
    at most ``max_side``: faster on big photos, misses faces too small for that level, and
    boxes no longer match dlib's exactly.
    """
    _check_image(image)
    if upsample < 0:
        raise FaceprintError("mmod: upsample must be 0 or more")
    cfg = load_config(model_dir)
    if image.shape[0] == 0 or image.shape[1] == 0:
        return []
    for _ in range(upsample):
        image = pyramid_up2(image)
    skip = _levels_to_skip(dlib_level_sizes(image.shape[0], image.shape[1], cfg.rate), max_side)
    planes = exact_planes(image, cfg.rate, skip)
    canvas, rects = build_tiled_pyramid(
        planes, cfg.mean_rgb, cfg.pyramid_padding, cfg.pyramid_outer_padding, cfg.rate
    )
    if not rects or min(cfg.output_size(canvas.shape[1], canvas.shape[2])) <= 0:
        return []  # too small for the network: nothing to detect
    (scores,) = runtime.run(cfg.onnx_path, canvas[None])[:1]
    margins, boxes, levels = decode(scores[0], cfg, rects, adjust_threshold)
    boxes = point_up(boxes, levels + skip, cfg.pyramid_down)
    rects_int = round_half_up(boxes).astype(np.int64)  # drectangle -> rectangle
    kept = nms(margins, rects_int, cfg.nms_iou, cfg.nms_covered)
    out = []
    for i in kept:
        rect = rects_int[i].astype(np.float64)
        if upsample:
            rect = rect_down2(rect, upsample)
        out.append(_detection(float(margins[i]), rect))
    return out
