"""YuNet face detector (libfacedetection / opencv_zoo ``face_detection_yunet_2023mar``, MIT).

Run by ONNX Runtime through its runner (:mod:`faceprint.detect.yunet_runner`: the
dynamic-size graph, input tensor and output order; :mod:`faceprint.detect.yunet_decode`:
decoding and NMS); OpenCV is used only for resizing. :func:`detect` and
:func:`detect_batch` return :class:`~faceprint.types.Detection` records.

Keypoints
---------
``Detection.keypoints`` is ``(5, 2)`` float32 ``(x, y)`` in original image pixels, in YuNet
order: 0 right eye, 1 left eye, 2 nose tip, 3 right mouth corner, 4 left mouth corner --
"right" is the subject's right, so on an upright, frontal face point 0 has the smaller x
(image left). The centre of each eye is given, not its corners (dlib's 5-point model, which
:func:`faceprint.detect.detect` uses for alignment, gives eye corners).

Image size
----------
``max_side`` bounds the longest side of the network input: a larger image is downscaled
(``cv2.INTER_AREA``) by ``max_side / max(H, W)``; a smaller one is run at its own size (never
upscaled). YuNet finds faces down to about 10 px at its input, so with the default 640 a face
must be about 1.6 % of the longest image side. To find smaller faces in a large image either
raise ``max_side`` (``None`` = full resolution, cost grows with the pixel count) or pass
``tile=True``: the image is also cut at full resolution (or at ``tile_max_side``) into
overlapping ``tile_size`` tiles that run as one batch, and the detections of every pass are
merged by NMS. Tile detections are kept only if no larger than ``tile_overlap`` (such a face
lies whole inside some tile), not touching an inner tile border (a neighbour sees it whole) and
not mostly inside a global detection (a mouth or an ear of a big face); larger faces are the
global pass's job. The network's largest boxes are a few hundred pixels, so a full-resolution
pass alone (``max_side=None``) can miss a face that fills a big photo: keep the downscaled pass.

Measured on 2 CPU threads (ONNX Runtime 1.x, this machine): 640x480 ~35 ms; 1382x1868 ~50 ms
(downscaled to 473x640); 4352x2903 ~140 ms, ~1.9 s with ``tile=True``.
Batching same-size inputs gives the same results and about the same time per image on CPU.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np

from faceprint.detect import yunet_decode
from faceprint.detect.yunet_decode import Raw
from faceprint.detect.yunet_runner import model_path, pad_up
from faceprint.errors import ImageError
from faceprint.models import registry
from faceprint.models.packs import YUNET
from faceprint.models.runner import Runner
from faceprint.types import Box, Detection, Image

__all__ = [
    "DLIB_BOX_COEFFS",
    "detect",
    "detect_batch",
    "model_path",
    "to_dlib_box",
]


# --------------------------------------------------------------------------- input


def _check_image(image: np.ndarray) -> None:
    if not isinstance(image, np.ndarray) or image.dtype != np.uint8:
        raise ImageError("detect() expects a uint8 numpy array (H x W x 3, RGB)")
    if image.ndim != 3 or image.shape[2] != 3:
        raise ImageError(f"detect() expects an H x W x 3 RGB image, got shape {image.shape}")
    if image.shape[0] < 1 or image.shape[1] < 1:
        raise ImageError("detect() got an empty image")


def _scale_for(shape: tuple[int, ...], max_side: int | None) -> float:
    longest = max(shape[0], shape[1])
    if max_side is None or longest <= max_side:
        return 1.0
    return max_side / longest


def _resize(image: Image, scale: float) -> Image:
    if scale == 1.0:
        return image
    h, w = image.shape[:2]
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    return np.asarray(cv2.resize(image, size, interpolation=cv2.INTER_AREA), dtype=np.uint8)


# --------------------------------------------------------------------------- passes


def _run(
    runner: Runner[Sequence[Image]], images: Sequence[Image], score_threshold: float
) -> list[Raw]:
    """One network call over images (already resized); raw detections in their pixels."""
    blob = runner.prepare(images)
    outputs = runner.run(blob)
    h, w = blob.shape[2:]
    return [yunet_decode.decode(outputs, i, h, w, score_threshold) for i in range(len(images))]


def _tiled_pass(
    runner: Runner[Sequence[Image]],
    image: Image,
    scale: float,
    score_threshold: float,
    tile_size: int,
    tile_overlap: int,
    batch_size: int,
) -> Raw:
    """Detections from overlapping tiles of image resized by scale, in original pixels."""
    work = _resize(image, scale)
    h, w = work.shape[:2]
    tiles = yunet_decode.tiles(h, w, tile_size, tile_overlap)
    boxes, scores, marks = [], [], []
    margin = 2.0
    for start in range(0, len(tiles), batch_size):
        chunk = tiles[start : start + batch_size]
        crops = [work[y : y + th, x : x + tw] for y, x, th, tw in chunk]
        for (y, x, th, tw), (b, s, m) in zip(
            chunk, _run(runner, crops, score_threshold), strict=True
        ):
            # Keep only faces small enough to lie whole in some tile (<= overlap); bigger ones
            # are the global pass's job, and a big face seen through a tile yields part-face
            # false positives (a mouth, an ear). Drop detections cut by an inner tile border:
            # a neighbouring tile sees them whole.
            ok = np.maximum(b[:, 2] - b[:, 0], b[:, 3] - b[:, 1]) <= tile_overlap
            if x > 0:
                ok &= b[:, 0] > margin
            if y > 0:
                ok &= b[:, 1] > margin
            if x + tw < w:
                ok &= b[:, 2] < tw - margin
            if y + th < h:
                ok &= b[:, 3] < th - margin
            offset = np.array([x, y], np.float32)
            boxes.append((b[ok] + np.tile(offset, 2)) / scale)
            scores.append(s[ok])
            marks.append((m[ok] + offset) / scale)
    return (
        np.concatenate(boxes).astype(np.float32),
        np.concatenate(scores).astype(np.float32),
        np.concatenate(marks).astype(np.float32),
    )


# --------------------------------------------------------------------------- public API


def detect_batch(
    images: Sequence[Image],
    *,
    score_threshold: float = 0.6,
    nms_threshold: float = 0.3,
    max_side: int | None = 640,
    top_k: int = 5000,
    batch_size: int = 8,
    tile: bool = False,
    tile_size: int = 640,
    tile_overlap: int = 160,
    tile_max_side: int | None = None,
    model_dir: Path | str | None = None,
) -> list[list[Detection]]:
    """Detect faces in several RGB uint8 images; one list of faces per image.

    Images are resized as in :func:`detect` and zero-padded bottom/right to a multiple of 32;
    those with the same padded size (video frames, photos from one camera, tiles) run
    ``batch_size`` at a time in one network call (the converted YuNet graph takes batch > 1).
    Images are never padded further to share a batch, since that perturbs detections near
    their bottom/right edge, so results equal :func:`detect` image by image.
    Faces are sorted by descending score.
    """
    for image in images:
        _check_image(image)
    runner: Runner[Sequence[Image]] = registry.load(YUNET, model_dir)
    scales = [_scale_for(im.shape, max_side) for im in images]
    work = [_resize(im, sc) for im, sc in zip(images, scales, strict=True)]
    # Batch only images whose padded input size is the same: padding an image further than
    # its own multiple of 32 changes the network's output near its bottom/right edge.
    groups: dict[tuple[int, int], list[int]] = {}
    for i, im in enumerate(work):
        groups.setdefault((pad_up(im.shape[0]), pad_up(im.shape[1])), []).append(i)
    by_index: dict[int, Raw] = {}
    step = max(1, batch_size)
    for members in groups.values():
        for start in range(0, len(members), step):
            idx = members[start : start + step]
            outs = _run(runner, [work[i] for i in idx], score_threshold)
            for i, (b, s, m) in zip(idx, outs, strict=True):
                by_index[i] = (b / scales[i], s, m / scales[i])
    raws = [by_index[i] for i in range(len(images))]
    results: list[list[Detection]] = []
    for image, (b, s, m) in zip(images, raws, strict=True):
        if tile:
            tscale = _scale_for(image.shape, tile_max_side)
            longest = max(image.shape[0], image.shape[1]) * tscale
            if longest > tile_size or max_side is not None and longest > max_side:
                tb, ts, tm = _tiled_pass(
                    runner, image, tscale, score_threshold, tile_size, tile_overlap, batch_size
                )
                # a tile detection lying mostly inside a global one is a face part: drop it
                inside = yunet_decode.covered(tb, b)
                tb, ts, tm = tb[~inside], ts[~inside], tm[~inside]
                b, s, m = np.concatenate([b, tb]), np.concatenate([s, ts]), np.concatenate([m, tm])
        keep = yunet_decode.nms(b, s, nms_threshold, top_k) if len(s) else []
        results.append(yunet_decode.to_detections((b, s, m), keep))
    return results


def detect(
    image: Image,
    *,
    score_threshold: float = 0.6,
    nms_threshold: float = 0.3,
    max_side: int | None = 640,
    top_k: int = 5000,
    tile: bool = False,
    tile_size: int = 640,
    tile_overlap: int = 160,
    tile_max_side: int | None = None,
    model_dir: Path | str | None = None,
) -> list[Detection]:
    """Detect faces in an RGB uint8 ``H x W x 3`` image with YuNet.

    Returns Detection records sorted by descending score, with ``box`` (ltrb, original pixels,
    may extend past the image border), ``score`` and ``raw_score`` (both sqrt(cls * obj),
    already a probability), ``detector="yunet"`` and ``keypoints`` (5 x 2, float32: right eye,
    left eye, nose tip, right mouth corner, left mouth corner; "right" being the subject's).

    ``max_side``: the longest side of the network input; bigger images are downscaled to it,
    smaller ones are not upscaled; ``None`` runs at full resolution.
    ``tile``: also search overlapping ``tile_size`` tiles (``tile_overlap`` px apart) of the
    image at full resolution (or downscaled to ``tile_max_side``), to find faces too small for
    the downscaled pass; tiles run batched and everything is merged by NMS.
    """
    return detect_batch(
        [image],
        score_threshold=score_threshold,
        nms_threshold=nms_threshold,
        max_side=max_side,
        top_k=top_k,
        batch_size=8,
        tile=tile,
        tile_size=tile_size,
        tile_overlap=tile_overlap,
        tile_max_side=tile_max_side,
        model_dir=model_dir,
    )[0]


# --------------------------------------------------------------------------- dlib box

# MMOD box = f(YuNet detection), fitted by linear least squares (bench/calibrate_yunet_box.py,
# "box only" variant) over the 61 images of /work/shared/fixtures/dlib_reference.json (dlib
# 20.0.1 cnn_face_detection_model_v1, upsample 0, first face), YuNet at its defaults.
# With e = eye centre (mean of keypoints 0 and 1), c = YuNet box centre, w, h = its size:
#     cx = ex + CX * (c_x - e_x);  cy = ey + CY * (c_y - e_y);  side = SW * w + SH * h
# Residual IoU vs dlib's box: mean 0.788, min 0.624 (leave-one-out: mean 0.785, min 0.620);
# raw YuNet boxes: mean 0.644, min 0.497. MMOD sizes come from a discrete image pyramid, which
# bounds what any smooth map can reach. Variants using mouth centre / eye-mouth distance fit no
# better out of sample.
DLIB_BOX_COEFFS: dict[str, float] = {
    "cx": 0.198290,
    "cy": 0.931108,
    "side_w": 0.139368,
    "side_h": 0.618060,
}


def to_dlib_box(det: Detection) -> Box:
    """Map a YuNet detection to the square box dlib's MMOD detector would give for that face.

    dlib's 5-point shape predictor was trained on MMOD boxes (eyebrows to lower lip, square);
    YuNet's are taller (forehead to chin). Use this box, not ``det.box``, as the ``rect`` for
    dlib's shape predictor. See :data:`DLIB_BOX_COEFFS` for how the map was fitted.
    """
    if det.keypoints is None:
        raise ValueError("to_dlib_box needs a YuNet detection with its 5 keypoints")
    kp = np.asarray(det.keypoints, dtype=np.float64)
    ex, ey = (kp[0] + kp[1]) / 2
    b = det.box
    bcx, bcy = (b.left + b.right) / 2, (b.top + b.bottom) / 2
    k = DLIB_BOX_COEFFS
    cx = ex + k["cx"] * (bcx - ex)
    cy = ey + k["cy"] * (bcy - ey)
    half = (k["side_w"] * b.width + k["side_h"] * b.height) / 2
    return Box(float(cx - half), float(cy - half), float(cx + half), float(cy + half))
