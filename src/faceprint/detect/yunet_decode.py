"""From YuNet's raw outputs to detections: decoding, NMS, and the geometry of tiling.

Outputs, per stride s in (8, 16, 32), one row per grid cell (row-major, ``idx = r*cols + c``):
``cls_s`` and ``obj_s`` (sigmoid, score = sqrt(clamp(cls) * clamp(obj))), ``bbox_s`` (dx, dy,
log w, log h: centre = ((c, r) + (dx, dy)) * s, size = exp(.) * s) and ``kps_s`` (5 points,
each ((c, r) + offset) * s). It is anchor free: one prior per cell.
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt

from faceprint.detect.yunet_runner import STRIDES
from faceprint.types import Box, Detection

FloatArray = npt.NDArray[np.float32]
#: Detections of one image: boxes (n, 4) ltrb, scores (n,), keypoints (n, 5, 2).
Raw = tuple[FloatArray, FloatArray, FloatArray]


def empty() -> Raw:
    none = np.zeros((0,), np.float32)
    return none.reshape(0, 4), none, none.reshape(0, 5, 2)


def decode(
    outputs: list[FloatArray], index: int, height: int, width: int, score_threshold: float
) -> Raw:
    """Decode image ``index`` of a batch (outputs as :meth:`YunetRunner.run` orders them)."""
    n = len(STRIDES)
    boxes, scores, marks = [], [], []
    for k, stride in enumerate(STRIDES):
        rows, cols = height // stride, width // stride
        assert rows * cols == outputs[k].shape[1]
        cls = outputs[k][index, :, 0]
        obj = outputs[k + n][index, :, 0]
        score = np.sqrt(np.clip(cls, 0.0, 1.0) * np.clip(obj, 0.0, 1.0))
        keep = np.nonzero(score >= score_threshold)[0]
        if keep.size == 0:
            continue
        bbox = outputs[k + 2 * n][index, keep]
        kps = outputs[k + 3 * n][index, keep].reshape(-1, 5, 2)
        grid = np.stack([keep % cols, keep // cols], axis=1).astype(np.float32)
        centre = (grid + bbox[:, :2]) * stride
        size = np.exp(bbox[:, 2:4]) * stride
        boxes.append(np.concatenate([centre - size / 2, centre + size / 2], axis=1))
        scores.append(score[keep])
        marks.append((kps + grid[:, None, :]) * stride)
    if not boxes:
        return empty()
    return (
        np.concatenate(boxes).astype(np.float32),
        np.concatenate(scores).astype(np.float32),
        np.concatenate(marks).astype(np.float32),
    )


def nms(boxes: FloatArray, scores: FloatArray, threshold: float, top_k: int) -> list[int]:
    """Greedy NMS on ltrb boxes, highest score first; returns kept indices."""
    order = np.argsort(-scores, kind="stable")[:top_k]
    areas = np.maximum(boxes[:, 2] - boxes[:, 0], 0) * np.maximum(boxes[:, 3] - boxes[:, 1], 0)
    keep: list[int] = []
    while order.size:
        i = int(order[0])
        keep.append(i)
        rest = order[1:]
        iw = np.minimum(boxes[i, 2], boxes[rest, 2]) - np.maximum(boxes[i, 0], boxes[rest, 0])
        ih = np.minimum(boxes[i, 3], boxes[rest, 3]) - np.maximum(boxes[i, 1], boxes[rest, 1])
        inter = np.maximum(iw, 0) * np.maximum(ih, 0)
        union = areas[i] + areas[rest] - inter
        iou = np.where(union > 0, inter / np.maximum(union, 1e-9), 0.0)
        order = rest[iou <= threshold]
    return keep


def covered(small: FloatArray, big: FloatArray, fraction: float = 0.5) -> npt.NDArray[np.bool_]:
    """For each box of small: is more than fraction of its area inside some box of big?"""
    if len(small) == 0 or len(big) == 0:
        return np.zeros(len(small), dtype=bool)
    iw = np.minimum(small[:, None, 2], big[None, :, 2]) - np.maximum(
        small[:, None, 0], big[None, :, 0]
    )
    ih = np.minimum(small[:, None, 3], big[None, :, 3]) - np.maximum(
        small[:, None, 1], big[None, :, 1]
    )
    inter = np.maximum(iw, 0) * np.maximum(ih, 0)
    area = np.maximum((small[:, 2] - small[:, 0]) * (small[:, 3] - small[:, 1]), 1e-9)
    return np.asarray((inter / area[:, None]).max(axis=1) > fraction)


def tiles(h: int, w: int, size: int, overlap: int) -> list[tuple[int, int, int, int]]:
    """Top-left corners and sizes (y, x, th, tw) of overlapping tiles covering h x w."""

    def starts(n: int) -> list[int]:
        if n <= size:
            return [0]
        count = math.ceil((n - overlap) / (size - overlap))
        step = (n - size) / (count - 1)
        return [round(i * step) for i in range(count)]

    return [(y, x, min(size, h), min(size, w)) for y in starts(h) for x in starts(w)]


def to_detections(raw: Raw, keep: list[int]) -> list[Detection]:
    """Detection records of the kept rows; the score is already a probability."""
    boxes, scores, marks = raw
    return [
        Detection(
            box=Box(*(float(v) for v in boxes[i])),
            score=float(scores[i]),
            raw_score=float(scores[i]),
            detector="yunet",
            keypoints=np.ascontiguousarray(marks[i], dtype=np.float32),
        )
        for i in keep
    ]
