"""From MMOD's score map to boxes: decoding, mapping to the image, and dlib's NMS.

Decoding follows ``loss_mmod_::to_label``: every score ``> adjust_threshold`` at output cell
``(c, r)`` becomes a detector-window-sized ``drectangle`` centred on the cell's input-space
position (``centered_drect``: ``(w-1)/2`` either side) and is assigned to the pyramid level
whose tile is nearest to its rounded centre, then shifted to that tile's origin. What maps
the tile-local box to the image depends on how the pyramid was made:

* exact: dlib's ``pyramid_down<6>::point_up`` (``p*6/5 + 0.3`` per level, :func:`point_up`);
* fast: each level is the image scaled by known factors (:func:`scale_up`).

Boxes are dlib ``rectangle`` s: integers, *inclusive* right/bottom (``right - left + 1``
pixels wide).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from faceprint.detect.mmod_config import MmodConfig
from faceprint.detect.mmod_pyramid import Rect

__all__ = ["decode", "nms", "point_up", "rect_down2", "round_half_up", "scale_up"]

F32 = npt.NDArray[np.float32]
F64 = npt.NDArray[np.float64]
Ints = npt.NDArray[np.intp]


def _nearest_rects(rects: Sequence[Rect], x: F64, y: F64) -> Ints:
    """dlib's ``nearest_rect`` for many points: the first tile containing the point, else the
    first of the tiles nearest to it (Euclidean distance to the tile's closest pixel)."""
    r = np.asarray(rects, dtype=np.float64)
    x0, y0, x1, y1 = (r[None, :, j] for j in range(4))
    px, py = x[:, None], y[:, None]
    inside = (x0 <= px) & (px <= x1) & (y0 <= py) & (py <= y1)
    dist = np.hypot(np.clip(px, x0, x1) - px, np.clip(py, y0, y1) - py)
    idx: Ints = np.where(inside.any(axis=1), inside.argmax(axis=1), dist.argmin(axis=1))
    return idx


def round_half_up(v: F64) -> F64:
    """dlib's double -> long conversion in ``rectangle``/``point``: ``floor(v + 0.5)``."""
    out: F64 = np.floor(v + 0.5)
    return out


def decode(
    scores: F32, cfg: MmodConfig, rects: Sequence[Rect], adjust_threshold: float
) -> tuple[F64, F64, Ints]:
    """Score map ``(K, H', W')`` -> scores ``(n,)``, tile-local drectangles ``(n, 4)`` and
    the pyramid level ``(n,)`` each belongs to."""
    sx, ox, sy, oy = cfg.out_to_in
    origins = np.asarray(rects, dtype=np.float64)[:, [0, 1, 0, 1]]
    all_scores: list[F64] = []
    all_boxes: list[F64] = []
    all_levels: list[Ints] = []
    for k in range(scores.shape[0]):
        win_w, win_h = cfg.windows[k]
        rr, cc = np.nonzero(scores[k] > adjust_threshold)
        if rr.size == 0:
            continue
        px = cc.astype(np.float64) * sx + ox  # output_tensor_to_input_tensor
        py = rr.astype(np.float64) * sy + oy
        hw, hh = (win_w - 1) / 2.0, (win_h - 1) / 2.0  # centered_drect
        boxes = np.stack([px - hw, py - hh, px + hw, py + hh], axis=1)
        cx = round_half_up((boxes[:, 0] + boxes[:, 2]) / 2)
        cy = round_half_up((boxes[:, 1] + boxes[:, 3]) / 2)
        level = _nearest_rects(rects, cx, cy)
        boxes -= origins[level]
        all_scores.append(scores[k][rr, cc].astype(np.float64))
        all_boxes.append(boxes)
        all_levels.append(level)
    if not all_scores:
        return np.zeros(0), np.zeros((0, 4)), np.zeros(0, dtype=np.intp)
    return np.concatenate(all_scores), np.concatenate(all_boxes), np.concatenate(all_levels)


def point_up(boxes: F64, levels: Ints, down: int) -> F64:
    """dlib's ``pyramid_down<down>::point_up`` applied ``levels[i]`` times to box ``i``."""
    up = down / (down - 1.0)
    out = boxes.copy()
    for i in range(int(levels.max(initial=0))):
        m = levels > i
        out[m] = out[m] * up + 0.3
    return out


def scale_up(boxes: F64, levels: Ints, factors: F64) -> F64:
    """Tile-local inclusive boxes -> image boxes, level ``j`` being the image scaled by
    ``factors[j] = (fx, fy)`` (level pixels per image pixel).

    Pixel ``i`` of a level covers ``[i, i + 1) / f`` of the image (OpenCV's pixel-area
    convention), so an inclusive span ``[a, b]`` maps to ``[a / f, (b + 1) / f - 1]``.
    """
    f = factors[levels]
    fx, fy = f[:, 0], f[:, 1]
    out = np.empty_like(boxes)
    out[:, 0] = boxes[:, 0] / fx
    out[:, 1] = boxes[:, 1] / fy
    out[:, 2] = (boxes[:, 2] + 1) / fx - 1
    out[:, 3] = (boxes[:, 3] + 1) / fy - 1
    return out


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


def rect_down2(rect: F64, levels: int) -> F64:
    """``pyramid_down<2>::rect_down`` applied ``levels`` times, rounded to a rectangle."""
    r = rect.astype(np.float64)
    for _ in range(levels):
        r = r / 2 - np.array([1.25, 0.75, 1.25, 0.75])
    return round_half_up(r)
