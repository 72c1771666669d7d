"""Decoding an image file (or its bytes) to RGB uint8, safe against hostile input.

``decode(source) -> Decoded`` and ``load_image(source) -> Image``. In order, without
touching any process-wide state of Pillow:

1. a path is read by :func:`faceprint.io.files.read_file` (regular files only, size-limited);
2. the format is decided from the bytes and only that decoder reads the header;
3. the size is checked against ``FACEPRINT_MAX_PIXELS`` and the memory the decode would need
   against ``FACEPRINT_DECODE_BUDGET`` (:mod:`faceprint.io.budget`): a JPEG that does not
   fit is decoded at 1/2, 1/4 or 1/8 size if that fits, anything else is refused;
4. only then are the pixels decoded (first frame only), converted to RGB strip by strip
   (:mod:`faceprint.io.convert`) and turned upright per a well-formed EXIF orientation.

At most ``FACEPRINT_MAX_DECODES`` decodes (default 2) run at once in the process; more wait.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import datetime

from PIL import Image as PILImage

from faceprint.errors import ImageError
from faceprint.io.budget import FRAME_SCRATCH, decode_cost, jpeg_scans, plan
from faceprint.io.convert import to_rgb
from faceprint.io.files import read_file
from faceprint.io.formats import (
    LABELS,
    MAX_JPEG_SCANS,
    describe_failure,
    identify,
    open_as,
    webp_size,
)
from faceprint.io.limits import decode_budget, decode_slot, human_bytes, human_pixels, max_pixels
from faceprint.io.metadata import apply_orientation, read_metadata
from faceprint.types import Image

#: Smallest width and height accepted (nothing smaller can hold a recognisable face).
MIN_SIDE = 8

Source = str | os.PathLike[str] | bytes


@dataclass(frozen=True, eq=False)
class Decoded:
    """A decoded image and what is known about how it was decoded.

    ``image``: H x W x 3 RGB uint8, upright. ``scale``: original pixels per returned pixel
    (1 unless a large JPEG was decoded at reduced size; multiply coordinates in ``image`` by
    it to get coordinates in the full-size upright image). ``original_size``: (width, height)
    of the full-size image, upright. ``format``: "JPEG", "PNG", "WebP", ... ``captured_at``:
    EXIF DateTimeOriginal, else DateTime (timezone-aware when the EXIF gives an offset), or
    None. ``oriented``: an EXIF orientation other than "normal" was applied. ``xmp``: the raw
    embedded XMP packet (JPEG APP1, PNG iTXt, WebP, TIFF, HEIF), None if absent or > 1 MiB.
    """

    image: Image
    scale: float
    original_size: tuple[int, int]
    format: str
    captured_at: datetime | None
    oriented: bool
    xmp: bytes | None


def _too_large(name: str, width: int, height: int, limit: int) -> ImageError:
    pixels = width * height
    return ImageError(
        f"{name}: image is {width}x{height} ({human_pixels(pixels)}), larger than the "
        f"{human_pixels(limit)} limit (set FACEPRINT_MAX_PIXELS to raise it)"
    )


def _check_size(name: str, size: tuple[int, int], limit: int) -> None:
    width, height = size
    if width * height > limit:
        raise _too_large(name, width, height, limit)
    if width < MIN_SIDE or height < MIN_SIDE:
        raise ImageError(f"{name}: image is only {width}x{height} pixels")


def _over_budget(
    name: str, size: tuple[int, int], label: str, cost: int, budget: int
) -> ImageError:
    width, height = size
    reduced = " even at 1/8 size" if label == "JPEG" else ""
    return ImageError(
        f"{name}: decoding this {width}x{height} {label} image would need about "
        f"{human_bytes(cost)} of memory{reduced}, more than the {human_bytes(budget)} decode "
        "budget (set FACEPRINT_DECODE_BUDGET to raise it, or scale the image down)"
    )


def _decode_bytes(data: bytes, name: str) -> Decoded:
    limit, budget = max_pixels(), decode_budget()
    kind = identify(data, name)
    label = LABELS[kind]
    claimed = webp_size(data) if kind == "WEBP" else None
    if claimed is not None:  # libwebp allocates its canvas at open: check before it
        _check_size(name, claimed, limit)
        cost = decode_cost(
            claimed, "RGBA", len(data), scratch=FRAME_SCRATCH["WEBP"],
            coefficients=0, rotates=False,
        )  # fmt: skip
        if cost > budget:
            raise _over_budget(name, claimed, label, cost, budget)
    im = open_as(data, kind, name)
    try:
        width, height = im.size
        _check_size(name, im.size, limit)
        scans = jpeg_scans(data, MAX_JPEG_SCANS + 1) if kind == "JPEG" else 0
        if scans > MAX_JPEG_SCANS:
            raise ImageError(
                f"{name}: JPEG with more than {MAX_JPEG_SCANS} scans, refused (each scan is a "
                "pass over the whole image; a normal JPEG has 1 to 20)"
            )
        meta = read_metadata(im, kind)
        rotates = meta.orientation != 1
        turned = im.info.get("original_orientation")  # pillow-heif turns HEIF images itself
        oriented = rotates or (isinstance(turned, int) and 2 <= turned <= 8)
        scale, cost = plan(im, kind, len(data), rotates=rotates, scans=scans, budget=budget)
        if cost > budget:
            raise _over_budget(name, im.size, label, cost, budget)
        try:
            im.load()
        except PILImage.DecompressionBombError as exc:  # only above FACEPRINT_MAX_PIXELS=179M
            raise ImageError(f"{name}: too large for Pillow's own limit ({exc})") from exc
        except Exception as exc:  # any decoder failure on hostile bytes is a bad file
            raise ImageError(
                f"{name}: corrupt or truncated {label} image ({describe_failure(exc)})"
            ) from exc
        rgb = to_rgb(im, name)
    finally:
        im.close()
    upright = apply_orientation(rgb, meta.orientation)
    del rgb
    size = (width, height) if meta.orientation < 5 else (height, width)
    return Decoded(upright, float(scale), size, label, meta.captured_at, oriented, meta.xmp)


def decode(source: Source) -> Decoded:
    """Decode an image file (path) or its bytes; every failure is an ImageError."""
    with decode_slot():
        if isinstance(source, bytes | bytearray):
            return _decode_bytes(bytes(source), "uploaded image")
        return _decode_bytes(read_file(source), str(source))


def load_image(source: Source) -> Image:
    """Read an image file (or its bytes) as an H x W x 3 RGB uint8 array, upright.

    A JPEG too large for the decode budget at full size comes back at 1/2, 1/4 or 1/8 of
    its size: use :func:`decode` when coordinates must refer to the full-size image.
    """
    return decode(source).image
