"""dlib's MMOD CNN face detector (``mmod_human_face_detector.dat``, CC0) on ONNX Runtime.

This reproduces ``dlib.cnn_face_detection_model_v1(path)(img, upsample)`` step by step; the
network itself is converted from dlib's file to ONNX by :mod:`faceprint.models.dlib_dnn`.

What dlib does, and what this module does the same way
------------------------------------------------------
1. *Upsampling* (only if ``upsample > 0``): the Python API enlarges the image with
   ``pyramid_up(img, pyramid_down<2>)`` -- the output is ``(2*nr+1) x (2*nc+2)`` and is filled
   by align-corners bilinear interpolation -- and maps boxes back with ``rect_down``
   (``p/2 - (1.25, 0.75)`` per level, then rounded).
2. *Tiled pyramid* (``input_rgb_image_pyramid<pyramid_down<6>>``): level sizes shrink by
   ``floor(5/6 * n)`` until a level is under 5 rows; the levels are packed into one image,
   a first column top to bottom (``pyramid_padding`` rows apart, ``pyramid_outer_padding``
   all round) and, once the rest fits beside it, a second column bottom-up along the right
   edge (see :func:`tiled_pyramid_layout`). The canvas is zero in the network's normalised
   space, i.e. equal to the mean colour in raw RGB. Level 0 is the image; level ``i`` is
   resized from level ``i-1`` *as stored in the canvas* by align-corners bilinear
   interpolation (``tt::resize_bilinear`` -> ``resize_image``), not by ``pyramid_down``'s
   own filter -- the DNN input layer builds its pyramid that way.
3. *One forward pass* of the whole canvas.
4. *Decoding* (``loss_mmod_::to_label``): every score ``> adjust_threshold`` at output cell
   ``(c, r)`` becomes a detector-window-sized ``drectangle`` centred on the cell's input-space
   position (``centered_drect``: ``(w-1)/2`` either side), is assigned to the pyramid level
   whose tile is nearest to its rounded centre, shifted to that tile's origin and scaled up
   to the image with ``pyramid_down<6>::point_up`` (``p*6/5 + 0.3`` per level).
5. *NMS*: detections sorted by score (highest first); one is dropped if, after rounding to an
   integer ``rectangle``, it overlaps a kept one by ``intersection / bounding-box-of-both``
   ``> iou_thresh`` or covers more than ``percent_covered_thresh`` of either box
   (``test_box_overlap`` from the loss options).

Boxes are dlib ``rectangle`` s: integers, with *inclusive* right/bottom (``right - left + 1``
pixels wide), exactly the numbers dlib's Python API returns.

Speed
-----
The canvas is about 3.7x the image's pixels (pyramid_down<6> shrinks slowly), so the cost
grows with the pixel count. Measured on 2 cores (AMD EPYC), whole ``detect`` call:
0.2-0.3 s for 0.2 MP photos, ~0.5 s at 1 MP, ~1.2 s at 1.6-2.6 MP, 3-7 s at 3.5-5 MP and
12-18 s for the 12.6-14 MP photos (roughly 40 % pre-processing in numpy, 60 % ONNX Runtime);
``bench/mmod_vs_dlib.py`` reproduces these numbers.

``max_side`` (default off) trades fidelity for speed without changing the arithmetic: the
pyramid is built exactly as above, but the canvas starts at the first level whose longer
side is at most ``max_side``, and boxes are mapped up through the skipped levels as well.
It is *not* harmless: the score grid then falls at other positions and a face may win on a
neighbouring pyramid level (x1.2 in size), so boxes move. Over the 61 reference photos,
``max_side=2000`` gave IoU to dlib mean 0.954 / min 0.616 (confidence within 0.026) at 2.3x
less total time, ``max_side=1200`` mean 0.896 / min 0.599 at 3.3x less; at full resolution
every box is identical to dlib's. Faces smaller than about ``80 * (6/5)**k`` pixels (``k``
skipped levels) are lost.

``upsample`` follows dlib's Python API (``pyramid_up`` with ``pyramid_down<2>``, then
``rect_down``); it has no dlib reference in the fixture, so it is checked only for sanity.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from faceprint import runtime
from faceprint.errors import ImageError, ModelError
from faceprint.models import dlib_dnn
from faceprint.types import Box, Face, Image

__all__ = [
    "MmodConfig",
    "build_tiled_pyramid",
    "detect",
    "detect_many",
    "nms",
    "pyramid_up2",
    "resize_align_corners",
    "tiled_pyramid_layout",
]

F32 = npt.NDArray[np.float32]
F64 = npt.NDArray[np.float64]

#: dlib's ``compute_tiled_image_pyramid_details`` stops below this many rows.
_MIN_LEVEL_HEIGHT = 5


# --------------------------------------------------------------------------------------------
# configuration read from the model file


@dataclass(frozen=True)
class MmodConfig:
    """The numbers from the ``.dat`` file that the pre/post-processing needs."""

    onnx_path: Path
    mean_rgb: tuple[float, float, float]
    pyramid_padding: int
    pyramid_outer_padding: int
    pyramid_down: int  # N of pyramid_down<N>
    windows: tuple[tuple[int, int], ...]  # detector windows (width, height), one per channel
    nms_iou: float
    nms_covered: float
    #: output cell (c, r) -> input position: (c * sx + ox, r * sy + oy)
    out_to_in: tuple[float, float, float, float]
    #: the convolutions as (kernel, stride, padding) per axis, to know when the score map
    #: of a canvas would be empty: ((ky, sy, py), (kx, sx, px)) per layer
    convs: tuple[tuple[tuple[int, int, int], tuple[int, int, int]], ...] = ()

    def output_size(self, rows: int, cols: int) -> tuple[int, int]:
        """Score map size for a canvas of ``rows x cols`` (<= 0 when too small)."""
        for (ky, sy, py), (kx, sx, px) in self.convs:
            if rows <= 0 or cols <= 0:
                break
            rows = 1 + (rows + 2 * py - ky) // sy
            cols = 1 + (cols + 2 * px - kx) // sx
        return rows, cols

    @property
    def rate(self) -> float:
        return (self.pyramid_down - 1.0) / self.pyramid_down


# --------------------------------------------------------------------------------------------
# geometry: dlib rectangles are (left, top, right, bottom), integers, inclusive


Rect = tuple[int, int, int, int]


def _level_sizes(nr: int, nc: int, rate: float) -> list[tuple[int, int]]:
    """Sizes (rows, cols) of the pyramid levels, as ``find_pyramid_down_output_image_size``."""
    sizes = [(nr, nc)]
    while True:
        nr = math.floor(rate * nr)
        nc = math.floor(rate * nc)
        if nr * nc == 0 or nr < _MIN_LEVEL_HEIGHT:
            break
        sizes.append((nr, nc))
    return sizes


def _intersects(a: Rect, b: Rect) -> bool:
    return max(a[0], b[0]) <= min(a[2], b[2]) and max(a[1], b[1]) <= min(a[3], b[3])


def tiled_pyramid_layout(
    nr: int, nc: int, padding: int, outer_padding: int, rate: float = 5.0 / 6.0
) -> tuple[list[Rect], int, int]:
    """Where each pyramid level goes in the tiled canvas, and the canvas size.

    Returns ``(rects, canvas_rows, canvas_cols)``; ``rects[i]`` is level ``i``'s tile as an
    inclusive (left, top, right, bottom). Same result as dlib's
    ``impl::compute_tiled_image_pyramid_details``.
    """
    if nr * nc == 0:
        return [], 0, 0
    sizes = _level_sizes(nr, nc, rate)
    width0, height0 = sizes[0][1], sizes[0][0]

    total_height = sum(h + padding for h, _ in sizes) - 2 * padding
    height = 0
    prev_width = 0
    for h, w in sizes:
        # the first column ends once the next level fits beside the previous one and the
        # first column is tall enough for the rest to double back along the right edge
        if w <= width0 - prev_width - padding and (height - height0) * 2 >= (
            total_height - height0
        ):
            break
        height += h + padding
        prev_width = w
    height -= padding

    canvas_rows = height + 2 * outer_padding
    canvas_cols = width0 + 2 * outer_padding

    rects: list[Rect] = []
    y = outer_padding
    i = 0
    while y < height + outer_padding and i < len(sizes):
        h, w = sizes[i]
        rects.append((outer_padding, y, outer_padding + w - 1, y + h - 1))
        y += h + padding
        i += 1
    y -= padding
    while i < len(sizes):
        h, w = sizes[i]
        right, bottom = outer_padding + width0 - 1, y - 1
        left, top = right - (w - 1), bottom - (h - 1)
        rect = (left, top, right, bottom)
        if _intersects(rects[0], rect):
            break  # the second column would run into level 0
        rects.append(rect)
        y -= h + padding
        i += 1
    return rects, canvas_rows, canvas_cols


# --------------------------------------------------------------------------------------------
# resampling


def _axis_weights(n_in: int, n_out: int) -> tuple[npt.NDArray[np.intp], npt.NDArray[np.intp], F32]:
    """Align-corners bilinear taps along one axis, as dlib's ``resize_image``."""
    scale = (n_in - 1) / max(n_out - 1, 1)
    # dlib accumulates ``pos += scale``; the rounding differs from ``i * scale`` only in the
    # last bits, which matter just where ``pos`` lands on an integer: take the same path.
    pos = np.cumsum(np.full(n_out, scale, dtype=np.float64)) - scale
    lo = np.floor(pos).astype(np.intp)
    lo = np.clip(lo, 0, n_in - 1)
    hi = np.minimum(lo + 1, n_in - 1)
    frac = (pos - lo).astype(np.float32)
    return lo, hi, frac


def resize_align_corners(src: F32, rows: int, cols: int) -> F32:
    """Bilinear resize of a ``(C, H, W)`` float32 array with corners aligned.

    Rows are blended by gathering whole rows; columns by multiplying blocks of the result
    with small banded weight matrices (a gather along the last axis is several times slower).
    Same values as dlib's ``resize_image`` up to float32 rounding.
    """
    c, h, w = src.shape
    ylo, yhi, yf = _axis_weights(h, rows)
    xlo, xhi, xf = _axis_weights(w, cols)
    top = np.take(src, ylo, axis=1)
    bot = np.take(src, yhi, axis=1)
    bot -= top
    bot *= yf[None, :, None]
    top += bot
    del bot
    flat = top.reshape(c * rows, w)
    out = np.empty((c * rows, cols), dtype=np.float32)
    block = 32
    for j0 in range(0, cols, block):
        j1 = min(cols, j0 + block)
        a, b = int(xlo[j0]), int(xhi[j1 - 1]) + 1
        weights = np.zeros((b - a, j1 - j0), dtype=np.float32)
        jj = np.arange(j1 - j0)
        np.add.at(weights, (xlo[j0:j1] - a, jj), 1 - xf[j0:j1])
        np.add.at(weights, (xhi[j0:j1] - a, jj), xf[j0:j1])
        np.matmul(flat[:, a:b], weights, out=out[:, j0:j1])
    result: F32 = out.reshape(c, rows, cols)
    return result


def pyramid_up2(image: Image) -> Image:
    """dlib's ``pyramid_up(img, pyramid_down<2>)``: ``(2*nr+1) x (2*nc+2)``, bilinear."""
    h, w = image.shape[:2]
    planes = np.ascontiguousarray(image.transpose(2, 0, 1), dtype=np.float32)
    up = resize_align_corners(planes, 2 * h + 1, 2 * w + 2)
    out: Image = np.clip(np.rint(up), 0, 255).astype(np.uint8).transpose(1, 2, 0)
    return np.ascontiguousarray(out)


def _pyramid_levels(image: Image, rate: float, skip: int) -> tuple[list[tuple[int, int]], F32]:
    """Level sizes of the full pyramid and the raw float RGB planes of level ``skip``."""
    h, w = image.shape[:2]
    sizes = _level_sizes(h, w, rate)
    planes: F32 = np.ascontiguousarray(image.transpose(2, 0, 1), dtype=np.float32)
    for i in range(1, skip + 1):
        planes = resize_align_corners(planes, sizes[i][0], sizes[i][1])
    return sizes, planes


def build_tiled_pyramid(
    planes: F32,
    mean_rgb: Sequence[float],
    padding: int,
    outer_padding: int,
    rate: float = 5.0 / 6.0,
) -> tuple[F32, list[Rect]]:
    """The network input for one image: a ``(3, R, C)`` float32 canvas in raw RGB 0..255.

    ``planes`` is the image as ``(3, H, W)`` float32. Every pixel outside the tiles holds the
    mean colour (zero once the network subtracts it).
    """
    _, h, w = planes.shape
    rects, rows, cols = tiled_pyramid_layout(h, w, padding, outer_padding, rate)
    canvas = np.empty((3, rows, cols), dtype=np.float32)
    canvas[:] = np.asarray(mean_rgb, dtype=np.float32)[:, None, None]
    if not rects:
        return canvas, rects
    l0, t0, r0, b0 = rects[0]
    canvas[:, t0 : b0 + 1, l0 : r0 + 1] = planes
    prev = planes
    for x0, y0, x1, y1 in rects[1:]:
        level = resize_align_corners(prev, y1 - y0 + 1, x1 - x0 + 1)
        canvas[:, y0 : y1 + 1, x0 : x1 + 1] = level
        prev = level
    return canvas, rects


# --------------------------------------------------------------------------------------------
# decoding


def _nearest_rects(rects: list[Rect], x: F64, y: F64) -> npt.NDArray[np.intp]:
    """dlib's ``nearest_rect`` for many points: the first tile containing the point, else the
    first of the tiles nearest to it (Euclidean distance to the tile's closest pixel)."""
    r = np.asarray(rects, dtype=np.float64)
    x0, y0, x1, y1 = (r[None, :, j] for j in range(4))
    px, py = x[:, None], y[:, None]
    inside = (x0 <= px) & (px <= x1) & (y0 <= py) & (py <= y1)
    dist = np.hypot(np.clip(px, x0, x1) - px, np.clip(py, y0, y1) - py)
    idx: npt.NDArray[np.intp] = np.where(
        inside.any(axis=1), inside.argmax(axis=1), dist.argmin(axis=1)
    )
    return idx


def _round_half_up(v: F64) -> F64:
    """dlib's double -> long conversion in ``rectangle``/``point``: ``floor(v + 0.5)``."""
    out: F64 = np.floor(v + 0.5)
    return out


def _decode(
    scores: F32,
    cfg: MmodConfig,
    rects: list[Rect],
    adjust_threshold: float,
    extra_levels: int,
) -> tuple[F64, F64]:
    """Score map ``(K, H', W')`` -> scores ``(n,)`` and image-space drectangles ``(n, 4)``.

    ``extra_levels`` pyramid levels were skipped before the canvas (``max_side``), so boxes
    are scaled up through them as well.
    """
    sx, ox, sy, oy = cfg.out_to_in
    up = cfg.pyramid_down / (cfg.pyramid_down - 1.0)
    origins = np.asarray(rects, dtype=np.float64)[:, [0, 1, 0, 1]]
    all_scores: list[F64] = []
    all_boxes: list[F64] = []
    for k in range(scores.shape[0]):
        win_w, win_h = cfg.windows[k]
        rr, cc = np.nonzero(scores[k] > adjust_threshold)
        if rr.size == 0:
            continue
        px = cc.astype(np.float64) * sx + ox  # output_tensor_to_input_tensor
        py = rr.astype(np.float64) * sy + oy
        hw, hh = (win_w - 1) / 2.0, (win_h - 1) / 2.0  # centered_drect
        boxes = np.stack([px - hw, py - hh, px + hw, py + hh], axis=1)
        # tensor_space_to_image_space: tile nearest to the rounded centre, then point_up
        cx = _round_half_up((boxes[:, 0] + boxes[:, 2]) / 2)
        cy = _round_half_up((boxes[:, 1] + boxes[:, 3]) / 2)
        level = _nearest_rects(rects, cx, cy)
        boxes -= origins[level]
        times = level + extra_levels
        for i in range(int(times.max(initial=0))):
            m = times > i
            boxes[m] = boxes[m] * up + 0.3
        all_scores.append(scores[k][rr, cc].astype(np.float64))
        all_boxes.append(boxes)
    if not all_scores:
        return np.zeros(0), np.zeros((0, 4))
    return np.concatenate(all_scores), np.concatenate(all_boxes)


def nms(scores: F64, rects: npt.NDArray[np.int64], iou: float, covered: float) -> list[int]:
    """Greedy NMS, highest score first, as ``loss_mmod_::to_label``; returns kept indices.

    ``rects`` are integer (left, top, right, bottom), inclusive; two overlap as in dlib's
    ``test_box_overlap`` (whose "union" is the bounding box of both rectangles).
    """
    order = np.argsort(-scores, kind="stable")
    r = rects.astype(np.int64)
    area = (r[:, 2] - r[:, 0] + 1) * (r[:, 3] - r[:, 1] + 1)
    kept: list[int] = []
    for i in order.tolist():
        if kept:
            k = np.asarray(kept)
            iw = np.minimum(r[k, 2], r[i, 2]) - np.maximum(r[k, 0], r[i, 0]) + 1
            ih = np.minimum(r[k, 3], r[i, 3]) - np.maximum(r[k, 1], r[i, 1]) + 1
            inter = (np.maximum(iw, 0) * np.maximum(ih, 0)).astype(np.float64)
            ow = np.maximum(r[k, 2], r[i, 2]) - np.minimum(r[k, 0], r[i, 0]) + 1
            oh = np.maximum(r[k, 3], r[i, 3]) - np.minimum(r[k, 1], r[i, 1]) + 1
            hit = (inter > 0) & (
                (inter / (ow * oh) > iou)
                | (inter / area[k] > covered)
                | (inter / area[i] > covered)
            )
            if hit.any():
                continue
        kept.append(i)
    return kept


def _rect_down2(rect: F64, levels: int) -> F64:
    """``pyramid_down<2>::rect_down`` applied ``levels`` times, rounded to a rectangle."""
    r = rect.astype(np.float64)
    for _ in range(levels):
        r = r / 2 - np.array([1.25, 0.75, 1.25, 0.75])
    return _round_half_up(r)


# --------------------------------------------------------------------------------------------
# public API


def _check_image(image: Image) -> None:
    if not isinstance(image, np.ndarray) or image.dtype != np.uint8:
        raise ImageError("mmod.detect needs a uint8 numpy array (H x W x 3, RGB)")
    if image.ndim != 3 or image.shape[2] != 3:
        raise ImageError(f"mmod.detect needs an H x W x 3 RGB image, got shape {image.shape}")


def _levels_to_skip(sizes: list[tuple[int, int]], max_side: int | None) -> int:
    if max_side is None:
        return 0
    for i, (h, w) in enumerate(sizes):
        if max(h, w) <= max_side:
            return i
    return len(sizes) - 1


def _prepare(
    image: Image, cfg: MmodConfig, upsample: int, max_side: int | None
) -> tuple[F32, list[Rect], int]:
    for _ in range(upsample):
        image = pyramid_up2(image)
    sizes = _level_sizes(image.shape[0], image.shape[1], cfg.rate)
    skip = _levels_to_skip(sizes, max_side)
    _, planes = _pyramid_levels(image, cfg.rate, skip)
    canvas, rects = build_tiled_pyramid(
        planes, cfg.mean_rgb, cfg.pyramid_padding, cfg.pyramid_outer_padding, cfg.rate
    )
    return canvas, rects, skip


def _finish(
    scores: F32,
    cfg: MmodConfig,
    rects: list[Rect],
    skip: int,
    upsample: int,
    adjust_threshold: float,
) -> list[Face]:
    det_scores, boxes = _decode(scores, cfg, rects, adjust_threshold, skip)
    int_boxes = _round_half_up(boxes).astype(np.int64)  # drectangle -> rectangle
    kept = nms(det_scores, int_boxes, cfg.nms_iou, cfg.nms_covered)
    faces: list[Face] = []
    for i in kept:
        rect = int_boxes[i].astype(np.float64)
        if upsample:
            rect = _rect_down2(rect, upsample)
        faces.append(
            Face(
                box=Box(float(rect[0]), float(rect[1]), float(rect[2]), float(rect[3])),
                score=float(det_scores[i]),
                landmarks=np.zeros((0, 2), dtype=np.float32),
            )
        )
    return faces


def detect(
    image: Image,
    *,
    upsample: int = 0,
    adjust_threshold: float = 0.0,
    model_dir: str | Path | None = None,
    max_side: int | None = None,
) -> list[Face]:
    """Faces found by dlib's MMOD CNN detector, as ``cnn_face_detection_model_v1(img, upsample)``.

    ``box`` is dlib's integer rectangle (inclusive right/bottom), ``score`` its confidence;
    faces come highest score first; ``landmarks`` is an empty ``(0, 2)`` array.
    ``max_side`` (default off) starts the pyramid at the first level whose longer side is at
    most ``max_side``: faster on big photos, misses only faces too small for that level.
    """
    _check_image(image)
    if upsample < 0:
        raise ValueError("upsample must be >= 0")
    cfg = load_config(model_dir)
    if image.shape[0] == 0 or image.shape[1] == 0:
        return []
    canvas, rects, skip = _prepare(image, cfg, upsample, max_side)
    if not rects or min(cfg.output_size(canvas.shape[1], canvas.shape[2])) <= 0:
        return []  # too small for the network: nothing to detect
    (scores,) = runtime.run(cfg.onnx_path, canvas[None])[:1]
    return _finish(scores[0], cfg, rects, skip, upsample, adjust_threshold)


def detect_many(
    images: Sequence[Image],
    *,
    upsample: int = 0,
    adjust_threshold: float = 0.0,
    model_dir: str | Path | None = None,
    max_side: int | None = None,
    batch_size: int = 4,
) -> list[list[Face]]:
    """:func:`detect` for several images; same-sized images run together in one batch.

    dlib's own batch call requires images of one size (one tiled layout per batch); here
    images are grouped by size, so any mix is accepted, and results are in input order.
    On CPU a batch saves little time; it mainly bounds the number of runtime calls.
    """
    for image in images:
        _check_image(image)
    cfg = load_config(model_dir)
    results: list[list[Face]] = [[] for _ in images]
    groups: dict[tuple[int, int], list[int]] = {}
    for i, image in enumerate(images):
        if image.shape[0] and image.shape[1]:
            groups.setdefault((image.shape[0], image.shape[1]), []).append(i)
    for idxs in groups.values():
        for start in range(0, len(idxs), max(1, batch_size)):
            chunk = idxs[start : start + max(1, batch_size)]
            prepared = [_prepare(images[i], cfg, upsample, max_side) for i in chunk]
            rects, skip = prepared[0][1], prepared[0][2]
            rows, cols = prepared[0][0].shape[1:]
            if not rects or min(cfg.output_size(rows, cols)) <= 0:
                continue
            batch = np.stack([p[0] for p in prepared])
            (scores,) = runtime.run(cfg.onnx_path, batch)[:1]
            for j, i in enumerate(chunk):
                results[i] = _finish(scores[j], cfg, rects, skip, upsample, adjust_threshold)
    return results


# --------------------------------------------------------------------------------------------
# model loading (the reader and converter live in faceprint.models.dlib_dnn)

_configs: dict[str, MmodConfig] = {}
_config_lock = threading.Lock()


def _conv_geometry(
    model: dlib_dnn.DnnModel,
) -> tuple[tuple[tuple[int, int, int], tuple[int, int, int]], ...]:
    out = []
    for layer in model.layers:
        if layer.kind in ("con", "max_pool", "avg_pool"):
            p = layer.params
            if layer.kind == "con":
                ky, kx = (int(v) for v in layer.tensors["weight"].shape[2:])
            else:
                ky, kx = int(p["nr"]), int(p["nc"])
            out.append(
                (
                    (ky, int(p["stride_y"]), int(p["padding_y"])),
                    (kx, int(p["stride_x"]), int(p["padding_x"])),
                )
            )
    return tuple(out)


def load_config(model_dir: str | Path | None = None) -> MmodConfig:
    """Locate the ``.dat`` file, convert it once to ONNX (cached) and read its options."""
    onnx_path = dlib_dnn.mmod_onnx_path(model_dir)
    key = str(onnx_path)
    with _config_lock:
        cfg = _configs.get(key)
    if cfg is not None:
        return cfg
    model = dlib_dnn.mmod_model(model_dir)
    if not model.is_detector or model.input.get("type") != "input_rgb_image_pyramid":
        raise ModelError("the MMOD detector file is not an image-pyramid MMOD network")
    loss = model.loss
    if loss.get("use_bounding_box_regression"):
        raise ModelError("MMOD models with bounding box regression are not supported")
    sy, oy, sx, ox = dlib_dnn.output_to_input_transform(model)
    mean = model.input["mean_rgb"]
    cfg = MmodConfig(
        onnx_path=onnx_path,
        mean_rgb=(float(mean[0]), float(mean[1]), float(mean[2])),
        pyramid_padding=int(model.input["pyramid_padding"]),
        pyramid_outer_padding=int(model.input["pyramid_outer_padding"]),
        pyramid_down=int(model.input.get("pyramid_down", 6)),
        windows=tuple((int(w["width"]), int(w["height"])) for w in loss["detector_windows"]),
        nms_iou=float(loss["overlaps_nms"]["iou_thresh"]),
        nms_covered=float(loss["overlaps_nms"]["percent_covered_thresh"]),
        out_to_in=(sx, ox, sy, oy),
        convs=_conv_geometry(model),
    )
    with _config_lock:
        _configs[key] = cfg
    return cfg
