"""Any decoded Pillow image to RGB uint8, strip by strip (bounded temporary memory).

How each kind of sample becomes 8 bits:

* 16-bit (``I;16``, ``I;16L``, ``I;16B``, both byte orders, from PNG, TIFF, PGM): ``v >> 8``,
  i.e. scaled by the range of the type (65535 -> 255). The same stored value always gives
  the same output, whatever the rest of the image, and it is what Pillow already does for
  16-bit RGB PNG and TIFF (it keeps the high byte); stretching each image to its own range
  would brighten a dark photo and amplify its noise.
* 32-bit integer (``I``): values within 0..65535 are 16-bit data that Pillow widened (PGM,
  signed-16 TIFF), so ``>> 8`` as above; anything else (true 32-bit data has no nominal
  white) is scaled linearly from min(0, minimum) to the maximum.
* float (``F``): when every finite value is within 0..1 (the usual convention of float
  images) ``round(255 * v)``; otherwise (floats holding 0..255 or raw sensor counts, which a
  clip to 0..1 would turn white) the same linear scaling as 32-bit integers. NaN is black.
* alpha (RGBA, LA, PA, palette or grey/RGB with a transparent colour): composited on white.
* palette, grey, bilevel, CMYK (Pillow's conversion, Adobe's inverted CMYK included),
  YCbCr, HSV: Pillow's conversion to RGB.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import numpy as np
import numpy.typing as npt
from PIL import Image as PILImage

from faceprint.errors import ImageError
from faceprint.io.budget import STRIP_PIXELS
from faceprint.types import Image

Strip = Callable[[PILImage.Image], npt.NDArray[np.uint8]]
_SIXTEEN = ("I;16", "I;16L", "I;16B", "I;16N")
_ALPHA = ("RGBA", "RGBa", "LA", "La", "PA")


def _strips(im: PILImage.Image) -> Iterator[tuple[int, PILImage.Image]]:
    width, height = im.size
    rows = max(1, STRIP_PIXELS // max(width, 1))
    for top in range(0, height, rows):
        yield top, im.crop((0, top, width, min(height, top + rows)))


def _on_white(strip: PILImage.Image) -> npt.NDArray[np.uint8]:
    rgba = np.asarray(strip.convert("RGBA"), dtype=np.uint16)
    alpha = rgba[..., 3:4]
    mixed = (rgba[..., :3] * alpha + 255 * (255 - alpha) + 127) // 255
    return mixed.astype(np.uint8)


def _high_byte(strip: PILImage.Image) -> npt.NDArray[np.uint8]:
    values = np.asarray(strip).astype(np.uint16, copy=False)
    return (values >> 8).astype(np.uint8)[..., None]


def _range_of(im: PILImage.Image) -> tuple[float, float, bool]:
    """(lowest, highest, all within 0..1) of the finite values of an I or F image."""
    low, high, unit, seen = np.inf, -np.inf, True, False
    for _, strip in _strips(im):
        values = np.asarray(strip, dtype=np.float64)
        finite = values[np.isfinite(values)]
        if finite.size:
            seen = True
            low, high = min(low, float(finite.min())), max(high, float(finite.max()))
    if not seen:
        return 0.0, 0.0, True
    unit = low >= 0.0 and high <= 1.0
    return low, high, unit


def _wide(im: PILImage.Image) -> Strip:
    """The mapping of a 32-bit integer or float image (see the module docstring)."""
    low, high, unit = _range_of(im)
    if im.mode == "I" and low >= 0 and high <= 65535:

        def sixteen(strip: PILImage.Image) -> npt.NDArray[np.uint8]:
            values = np.asarray(strip).astype(np.int64)
            return (values >> 8).astype(np.uint8)[..., None]

        return sixteen
    if im.mode == "F" and unit:
        low, high = 0.0, 1.0
    else:
        low = min(low, 0.0)
    span = high - low

    def linear(strip: PILImage.Image) -> npt.NDArray[np.uint8]:
        values = np.asarray(strip, dtype=np.float64)
        values = np.nan_to_num(values, nan=low, posinf=high, neginf=low)
        if span <= 0:
            return np.zeros((*values.shape, 1), np.uint8)
        scaled = np.clip((values - low) * (255.0 / span), 0.0, 255.0)
        return np.rint(scaled).astype(np.uint8)[..., None]

    return linear


def _converter(im: PILImage.Image) -> Strip:
    mode = im.mode
    if mode in _SIXTEEN:
        return _high_byte
    if mode in ("I", "F"):
        return _wide(im)
    if mode in _ALPHA or "transparency" in im.info:
        return _on_white
    if mode == "RGB":
        return lambda strip: np.asarray(strip, dtype=np.uint8)
    if mode == "L":
        return lambda strip: np.asarray(strip, dtype=np.uint8)[..., None]
    if mode == "1":
        return lambda strip: np.asarray(strip.convert("L"), dtype=np.uint8)[..., None]
    return lambda strip: np.asarray(strip.convert("RGB"), dtype=np.uint8)


def to_rgb(im: PILImage.Image, name: str) -> Image:
    """An H x W x 3 RGB uint8 array of the loaded image ``im``."""
    width, height = im.size
    out = np.empty((height, width, 3), np.uint8)
    try:
        convert = _converter(im)
        for top, strip in _strips(im):
            out[top : top + strip.height] = convert(strip)
    except Exception as exc:  # a mode Pillow cannot convert, or a damaged palette
        raise ImageError(
            f"{name}: cannot convert its {im.mode} pixels to RGB ({type(exc).__name__}: {exc})"
        ) from exc
    return out
