"""The image pyramids MMOD runs on: dlib's exact tiled pyramid, and the fast one.

Both pack every pyramid level into one canvas (dlib's ``input_rgb_image_pyramid`` layout,
:func:`tiled_layout`), so one forward pass scores every level; they differ in how the
levels are made:

* exact (:func:`build_tiled_pyramid`): level sizes shrink by ``floor(5/6 * n)`` from the
  image itself and each level is resized from the previous one by align-corners bilinear
  interpolation, float for float what dlib computes (numpy, :func:`resize_align_corners`).
* fast (:func:`fast_canvas`): the level sizes are given (:func:`fast_level_sizes`); level 0
  is the photo enlarged (bilinear) or shrunk (halvings, then bilinear:
  :func:`shrink_or_enlarge`) by OpenCV, each further level is bilinear from the one before.
  Several times cheaper than the exact path; not dlib's numbers.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import cv2
import numpy as np
import numpy.typing as npt

from faceprint.types import Image

__all__ = [
    "Rect",
    "build_tiled_pyramid",
    "dlib_level_sizes",
    "exact_planes",
    "fast_canvas",
    "fast_level_sizes",
    "pyramid_up2",
    "resize_align_corners",
    "tiled_layout",
    "tiled_pyramid_layout",
]

F32 = npt.NDArray[np.float32]

#: dlib rectangle: (left, top, right, bottom), integers, right/bottom inclusive.
Rect = tuple[int, int, int, int]

#: dlib's ``compute_tiled_image_pyramid_details`` stops below this many rows.
MIN_LEVEL_HEIGHT = 5


# --------------------------------------------------------------------------------------------
# layout


def dlib_level_sizes(nr: int, nc: int, rate: float) -> list[tuple[int, int]]:
    """Sizes (rows, cols) of dlib's pyramid levels, as ``find_pyramid_down_output_image_size``."""
    sizes = [(nr, nc)]
    while True:
        nr = math.floor(rate * nr)
        nc = math.floor(rate * nc)
        if nr * nc == 0 or nr < MIN_LEVEL_HEIGHT:
            break
        sizes.append((nr, nc))
    return sizes


def _intersects(a: Rect, b: Rect) -> bool:
    return max(a[0], b[0]) <= min(a[2], b[2]) and max(a[1], b[1]) <= min(a[3], b[3])


def tiled_layout(
    sizes: Sequence[tuple[int, int]], padding: int, outer_padding: int
) -> tuple[list[Rect], int, int]:
    """Where each level (``sizes[i]`` = rows, cols; largest first) goes in the canvas.

    dlib's placement: a first column top to bottom (``padding`` apart, ``outer_padding``
    all round) and, once the rest fits beside it, a second column bottom-up along the right
    edge. Returns ``(rects, canvas_rows, canvas_cols)``; levels that would run into level 0
    are left out (dlib drops them too), so ``len(rects)`` may be less than ``len(sizes)``.
    """
    if not sizes or sizes[0][0] * sizes[0][1] == 0:
        return [], 0, 0
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
        rect = (right - (w - 1), bottom - (h - 1), right, bottom)
        if _intersects(rects[0], rect):
            break  # the second column would run into level 0
        rects.append(rect)
        y -= h + padding
        i += 1
    return rects, height + 2 * outer_padding, width0 + 2 * outer_padding


def tiled_pyramid_layout(
    nr: int, nc: int, padding: int, outer_padding: int, rate: float = 5.0 / 6.0
) -> tuple[list[Rect], int, int]:
    """dlib's ``impl::compute_tiled_image_pyramid_details`` for an ``nr x nc`` image."""
    if nr * nc == 0:
        return [], 0, 0
    return tiled_layout(dlib_level_sizes(nr, nc, rate), padding, outer_padding)


# --------------------------------------------------------------------------------------------
# exact (dlib) resampling


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


def exact_planes(image: Image, rate: float, skip: int) -> F32:
    """The raw float RGB planes ``(3, h, w)`` of dlib's pyramid level ``skip``."""
    sizes = dlib_level_sizes(image.shape[0], image.shape[1], rate)
    planes: F32 = np.ascontiguousarray(image.transpose(2, 0, 1), dtype=np.float32)
    for i in range(1, skip + 1):
        planes = resize_align_corners(planes, sizes[i][0], sizes[i][1])
    return planes


def build_tiled_pyramid(
    planes: F32,
    mean_rgb: Sequence[float],
    padding: int,
    outer_padding: int,
    rate: float = 5.0 / 6.0,
) -> tuple[F32, list[Rect]]:
    """dlib's network input for one image: a ``(3, R, C)`` float32 canvas in raw RGB 0..255.

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
# fast resampling


def fast_level_sizes(
    rows: int, cols: int, scale: float, rate: float, min_side: float
) -> list[tuple[int, int]]:
    """Level sizes for an ``rows x cols`` image: level ``i`` is the image scaled by
    ``scale * rate**i`` (rounded), down to the last level whose shorter side is at least
    ``min_side`` (always at least one level, however small the image)."""
    sizes: list[tuple[int, int]] = []
    s = scale
    while True:
        size = (max(1, round(rows * s)), max(1, round(cols * s)))
        if sizes and (min(size) < min_side or size == sizes[-1]):
            break
        sizes.append(size)
        s *= rate
    return sizes


def shrink_or_enlarge(image: Image, rows: int, cols: int) -> Image:
    """``image`` resampled to ``rows x cols``: enlarged by bilinear interpolation; shrunk by
    halving while it is at least twice the target (bilinear at exactly 1/2 averages 2 x 2
    pixels, a box filter like ``INTER_AREA`` but several times cheaper), then bilinear."""
    src = image
    while src.shape[0] >= 2 * rows and src.shape[1] >= 2 * cols:
        src = _bilinear(src, src.shape[0] // 2, src.shape[1] // 2)
    return src if src.shape[:2] == (rows, cols) else _bilinear(src, rows, cols)


def _bilinear(image: Image, rows: int, cols: int) -> Image:
    out: Image = np.asarray(
        cv2.resize(image, (cols, rows), interpolation=cv2.INTER_LINEAR), dtype=np.uint8
    )
    return out


def fast_canvas(
    image: Image,
    sizes: Sequence[tuple[int, int]],
    rects: Sequence[Rect],
    canvas_hw: tuple[int, int],
    mean_rgb: Sequence[float],
    out: F32 | None = None,
) -> F32:
    """The fast network input: a ``(3, R, C)`` float32 canvas holding ``image`` resampled to
    each of ``sizes`` at ``rects`` (from :func:`tiled_layout`), mean colour elsewhere.

    Level 0 is made from ``image`` (:func:`shrink_or_enlarge`); each further level from the
    one before by bilinear interpolation, as dlib chains its levels (a 5/6 step needs no
    anti-aliasing). ``out``, if given, is filled in place (a slot of a batch).
    """
    rows, cols = canvas_hw
    canvas = np.empty((3, rows, cols), dtype=np.float32) if out is None else out
    canvas[:] = np.asarray(mean_rgb, dtype=np.float32)[:, None, None]
    level = image
    for i, ((h, w), (x0, y0, _, _)) in enumerate(zip(sizes, rects, strict=False)):
        level = shrink_or_enlarge(image, h, w) if i == 0 else _bilinear(level, h, w)
        canvas[:, y0 : y0 + h, x0 : x0 + w] = level.transpose(2, 0, 1)
    return canvas
