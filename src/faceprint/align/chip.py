"""Face chips the way dlib cuts them: get_face_chip_details + extract_image_chip in numpy.

Geometry: dlib's mean positions of the 5 landmarks in a unit face square are padded,
scaled to the chip size, and fitted to the detected landmarks with a least-squares
similarity transform. That gives the chip's rotation angle and its (rotated) rectangle in
the image; chip pixel (0, 0) lands on the rectangle's top-left corner and pixel
(size-1, size-1) on its bottom-right corner.

Sampling: when the rectangle is much larger than the chip, dlib first builds an image
pyramid (5-tap [1 4 6 4 1] Gaussian, integer arithmetic, step 2) on a crop around the face
and samples the level whose size is just above the chip's; sampling is bilinear with
truncation to uint8 and black outside the (cropped, downsampled) image. All of that is
reproduced here, including dlib's pyramid coordinate mapping.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

Rect = tuple[float, float, float, float]  # left, top, right, bottom (inclusive, dlib style)

# dlib's mean face: landmark positions of the 5-point model in a unit face square
# (0, 1: corners of one eye, 2, 3: of the other, 4: below the nose)
_MEAN_FACE_5 = np.array(
    [
        [0.8595674595992, 0.2134981538014],
        [0.6460604764104, 0.2289674387677],
        [0.1205750620789, 0.2137274526848],
        [0.3340850613712, 0.2290642403242],
        [0.4901123135679, 0.6277975316475],
    ]
)


def _similarity(src: npt.NDArray[np.float64], dst: npt.NDArray[np.float64]) -> tuple:
    """Least-squares similarity src -> dst (Umeyama, no reflection): (a, b, tx, ty) with
    x' = a x - b y + tx, y' = b x + a y + ty."""
    ms, md = src.mean(axis=0), dst.mean(axis=0)
    s, d = src - ms, dst - md
    sigma = float((s * s).sum())
    if sigma == 0:
        a, b = 1.0, 0.0
    else:
        a = float((s[:, 0] * d[:, 0] + s[:, 1] * d[:, 1]).sum()) / sigma
        b = float((s[:, 0] * d[:, 1] - s[:, 1] * d[:, 0]).sum()) / sigma
    tx = md[0] - (a * ms[0] - b * ms[1])
    ty = md[1] - (b * ms[0] + a * ms[1])
    return a, b, tx, ty


def _landmarks(landmarks5: npt.ArrayLike) -> npt.NDArray[np.float64]:
    pts = np.asarray(landmarks5, dtype=np.float64)
    if pts.shape != (5, 2):
        raise ValueError(f"expected 5 (x, y) landmarks, got an array of shape {pts.shape}")
    return pts


def chip_details(
    landmarks5: npt.ArrayLike, size: int = 150, padding: float = 0.25
) -> tuple[Rect, float]:
    """dlib's get_face_chip_details for a 5-point shape: (rect ltrb in image, angle)."""
    if size <= 0 or padding < 0:
        raise ValueError("size must be positive and padding non-negative")
    pts = _landmarks(landmarks5)
    template = (padding + _MEAN_FACE_5) / (2 * padding + 1) * size
    a, b, tx, ty = _similarity(template, pts)
    angle = math.atan2(b, a)
    scale = math.hypot(a, b)
    cx = a * (size / 2) - b * (size / 2) + tx
    cy = b * (size / 2) + a * (size / 2) + ty
    half = (size * scale - 1) / 2  # centered_drect: width - 1 between the edge pixels
    return (cx - half, cy - half, cx + half, cy + half), angle


def _rotate(center: tuple[float, float], pt: tuple[float, float], angle: float) -> tuple:
    c, s = math.cos(angle), math.sin(angle)
    x, y = pt[0] - center[0], pt[1] - center[1]
    return (c * x - s * y + center[0], s * x + c * y + center[1])


def _corners(rect: Rect, angle: float) -> npt.NDArray[np.float64]:
    """The rect's tl, tr, bl, br corners rotated about its centre: (4, 2)."""
    x0, y0, x1, y1 = rect
    cen = ((x0 + x1) / 2, (y0 + y1) / 2)
    return np.array([_rotate(cen, p, angle) for p in ((x0, y0), (x1, y0), (x0, y1), (x1, y1))])


def chip_transform(
    landmarks5: npt.ArrayLike, size: int = 150, padding: float = 0.25
) -> npt.NDArray[np.float64]:
    """2x3 affine matrix mapping image (x, y) to chip (x, y), as dlib's get_mapping_to_chip.

    Usable directly with ``cv2.warpAffine(image, M, (size, size))`` (no pyramid smoothing).
    """
    rect, angle = chip_details(landmarks5, size, padding)
    corners = _corners(rect, angle)
    chip_pts = np.array([[0, 0], [size - 1, 0], [size - 1, size - 1]], dtype=np.float64)
    return _affine_from_3(corners[[0, 1, 3]], chip_pts)


def _affine_from_3(
    src: npt.NDArray[np.float64], dst: npt.NDArray[np.float64]
) -> npt.NDArray[np.float64]:
    """The affine map taking three points src to dst: 2x3."""
    a = np.hstack((src, np.ones((3, 1))))
    return np.asarray(np.linalg.solve(a, dst).T, dtype=np.float64)


# --------------------------------------------------------------------------------------
# dlib's pyramid_down<2>
# --------------------------------------------------------------------------------------


def _rect_down(rect: Rect) -> Rect:
    """pyramid_down<2>::rect_down: p / 2 - (1.25, 0.75) on both corners."""
    x0, y0, x1, y1 = rect
    return (x0 / 2 - 1.25, y0 / 2 - 0.75, x1 / 2 - 1.25, y1 / 2 - 0.75)


def _area(rect: Rect) -> float:
    x0, y0, x1, y1 = rect
    if x0 > x1 or y0 > y1:
        return 0.0
    return (x1 - x0 + 1) * (y1 - y0 + 1)


def pyramid_down(img: npt.NDArray[np.uint8]) -> npt.NDArray[np.uint8]:
    """One level of dlib's pyramid_down<2> on an RGB image: [1 4 6 4 1]^2 / 256, step 2."""
    nr, nc = img.shape[:2]
    if nr <= 8 or nc <= 8:
        return np.zeros((0, 0) + img.shape[2:], dtype=np.uint8)
    out_c = (nc - 3) // 2
    out_r = (nr - 3) // 2
    src = img.astype(np.uint16)  # as dlib: sums reach at most 16 * 16 * 255 = 65280
    span = 2 * out_c - 1
    rows = (
        src[:, 0:span:2]
        + 4 * src[:, 1 : span + 1 : 2]
        + 6 * src[:, 2 : span + 2 : 2]
        + 4 * src[:, 3 : span + 3 : 2]
        + src[:, 4 : span + 4 : 2]
    )
    span = 2 * out_r - 1
    cols = (
        rows[0:span:2]
        + 4 * rows[1 : span + 1 : 2]
        + 6 * rows[2 : span + 2 : 2]
        + 4 * rows[3 : span + 3 : 2]
        + rows[4 : span + 4 : 2]
    )
    return (cols // 256).astype(np.uint8)


def _bilinear(
    img: npt.NDArray[np.uint8], x: npt.NDArray[np.float64], y: npt.NDArray[np.float64]
) -> npt.NDArray[np.uint8]:
    """dlib's interpolate_bilinear for RGB: black where the 2x2 neighbourhood leaves img."""
    h, w = img.shape[:2]
    left = np.floor(x)
    top = np.floor(y)
    ok = (left >= 0) & (top >= 0) & (left + 1 < w) & (top + 1 < h)
    li = np.where(ok, left, 0).astype(np.intp)
    ti = np.where(ok, top, 0).astype(np.intp)
    lr = (x - left)[..., None]
    tb = (y - top)[..., None]
    if w < 2 or h < 2:
        return np.zeros(x.shape + (3,), dtype=np.uint8)
    f = img.astype(np.float64)
    tl = f[ti, li]
    tr = f[ti, li + 1]
    bl = f[ti + 1, li]
    br = f[ti + 1, li + 1]
    val = (1 - tb) * ((1 - lr) * tl + lr * tr) + tb * ((1 - lr) * bl + lr * br)
    out = np.clip(val, 0, 255).astype(np.uint8)  # dlib truncates
    out[~ok] = 0
    return out


# --------------------------------------------------------------------------------------
# chips
# --------------------------------------------------------------------------------------


def extract_chip(
    image: np.ndarray, landmarks5: npt.ArrayLike, size: int = 150, padding: float = 0.25
) -> npt.NDArray[np.uint8]:
    """The aligned (size, size, 3) uint8 face chip, as dlib.get_face_chip(img, shape, ...).

    Pass dlib-compatible (integer-rounded) landmarks to get dlib's chip exactly.
    """
    img = np.asarray(image)
    if img.ndim != 3 or img.shape[2] != 3 or img.dtype != np.uint8:
        raise ValueError(f"expected an RGB uint8 image (H, W, 3), got {img.dtype} {img.shape}")
    rect, angle = chip_details(landmarks5, size, padding)
    n_px = size * size
    h, w = img.shape[:2]

    # how many pyramid levels, and how much border the crop needs
    depth = 0
    grow = 2.0
    r = _rect_down(rect)
    while _area(r) > n_px:
        r = _rect_down(r)
        depth += 1
        grow = grow * 2 + 2
    corners = _corners(rect, angle)
    bl_, bt_ = corners.min(axis=0) - grow
    br_, bb_ = corners.max(axis=0) + grow
    # intersect with the image, then round to an integer rectangle as dlib does
    bbox = [
        math.floor(max(bl_, 0) + 0.5),
        math.floor(max(bt_, 0) + 0.5),
        math.floor(min(br_, w - 1) + 0.5),
        math.floor(min(bb_, h - 1) + 0.5),
    ]
    if bbox[0] > bbox[2] or bbox[1] > bbox[3]:
        return np.zeros((size, size, 3), dtype=np.uint8)
    level_img = img[bbox[1] : bbox[3] + 1, bbox[0] : bbox[2] + 1]

    # which level to sample, and the chip rectangle in that level's coordinates
    r = (rect[0] - bbox[0], rect[1] - bbox[1], rect[2] - bbox[0], rect[3] - bbox[1])
    level = -1
    while _area(_rect_down(r)) > n_px:
        level += 1
        r = _rect_down(r)
    for _ in range(level + 1):
        level_img = pyramid_down(level_img)

    # chip pixel -> level pixel: tl, tr, bl chip corners onto the rotated rect corners
    c = _corners(r, angle)
    chip_pts = np.array([[0, 0], [size - 1, 0], [0, size - 1]], dtype=np.float64)
    m = _affine_from_3(chip_pts, c[[0, 1, 2]])
    ys, xs = np.mgrid[0:size, 0:size].astype(np.float64)
    x = m[0, 0] * xs + m[0, 1] * ys + m[0, 2]
    y = m[1, 0] * xs + m[1, 1] * ys + m[1, 2]
    return _bilinear(level_img, x, y)


def extract_chips(
    image: np.ndarray,
    landmarks: Sequence[npt.ArrayLike] | np.ndarray,
    size: int = 150,
    padding: float = 0.25,
) -> npt.NDArray[np.uint8]:
    """Chips for several faces of one image: (N, size, size, 3) uint8.

    Each chip is cut as by ``extract_chip`` (dlib's single-chip path). dlib's batched
    ``get_face_chips`` crops one shared region for all faces before its pyramid, which can
    shift pyramid sampling by a pixel; this function does not reproduce that coupling.
    """
    chips = [extract_chip(image, lm, size, padding) for lm in landmarks]
    if not chips:
        return np.zeros((0, size, size, 3), dtype=np.uint8)
    return np.stack(chips)
