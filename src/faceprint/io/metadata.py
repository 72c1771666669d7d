"""What an image says about itself: EXIF orientation, capture time, XMP packet.

EXIF is written by cameras, phones and editors, and sometimes by attackers: every read here
is guarded, and anything malformed is treated as absent (no rotation, no time), never as an
error. Pillow's own complaints about such data are warnings, silenced by the filter in
:mod:`faceprint.io.formats`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

import numpy as np
from PIL import Image as PILImage

from faceprint.types import Image

#: The largest XMP packet returned (bigger ones are dropped, not truncated).
MAX_XMP_BYTES = 1 << 20

_ORIENTATION = 0x0112
_DATETIME = 0x0132
_EXIF_IFD = 0x8769
_DATETIME_ORIGINAL = 0x9003
_OFFSET_TIME = 0x9010
_OFFSET_TIME_ORIGINAL = 0x9011
_OFFSET = re.compile(r"([+-])(\d\d):(\d\d)")
_XMP_ORIENTATION = re.compile(rb'tiff:Orientation(="|>)([0-9])')


@dataclass(frozen=True)
class Metadata:
    orientation: int  # EXIF orientation 1..8; 1 when absent, invalid or malformed
    captured_at: datetime | None
    xmp: bytes | None


def _text(value: Any) -> str | None:
    if isinstance(value, bytes):
        value = value.decode("latin-1")
    if isinstance(value, tuple) and len(value) == 1:
        value = value[0]
    return value.strip("\x00 ") if isinstance(value, str) else None


def _exif_time(value: Any, offset: Any) -> datetime | None:
    text = _text(value)
    if not text:
        return None
    try:
        when = datetime.strptime(text[:19], "%Y:%m:%d %H:%M:%S")
    except ValueError:
        return None
    zone = _OFFSET.fullmatch(_text(offset) or "")
    if zone:
        minutes = int(zone.group(2)) * 60 + int(zone.group(3))
        if minutes <= 14 * 60:
            sign = -1 if zone.group(1) == "-" else 1
            when = when.replace(tzinfo=timezone(timedelta(minutes=sign * minutes)))
    return when


def _orientation(exif: PILImage.Exif) -> int:
    value = exif.get(_ORIENTATION)
    if isinstance(value, tuple) and len(value) == 1:
        value = value[0]
    return value if isinstance(value, int) and 1 <= value <= 8 else 1


def _xmp(im: PILImage.Image) -> bytes | None:
    value = im.info.get("xmp")
    if isinstance(value, str):
        value = value.encode("utf-8", "replace")
    if isinstance(value, bytes | bytearray) and 0 < len(value) <= MAX_XMP_BYTES:
        return bytes(value)
    return None


def _exif(im: PILImage.Image, kind: str) -> PILImage.Exif:
    """The EXIF of ``im`` from its header alone. (``Image.getexif`` is not used for other
    formats than TIFF: for a PNG without an eXIf chunk before its pixels it decodes the
    whole image to look further, before the decode budget has been checked.)"""
    if kind == "TIFF":
        return im.getexif()
    exif = PILImage.Exif()
    raw = im.info.get("exif")
    if isinstance(raw, bytes) and raw:
        exif.load(raw)
    return exif


def _xmp_orientation(xmp: bytes | None) -> int:
    """``tiff:Orientation`` of an XMP packet (Pillow's exif_transpose honours it too)."""
    match = _XMP_ORIENTATION.search(xmp) if xmp else None
    return int(match.group(2)) if match and 1 <= int(match.group(2)) <= 8 else 1


def read_metadata(im: PILImage.Image, kind: str) -> Metadata:
    """Orientation, capture time (DateTimeOriginal, else DateTime) and XMP of ``im``."""
    xmp = _xmp(im)
    try:
        exif = _exif(im, kind)
    except Exception:  # malformed EXIF of any kind: as if there were none
        return Metadata(1, None, xmp)
    try:
        orientation = _orientation(exif) if _ORIENTATION in exif else _xmp_orientation(xmp)
    except Exception:
        orientation = 1
    captured: datetime | None = None
    try:
        sub = exif.get_ifd(_EXIF_IFD)
        captured = _exif_time(sub.get(_DATETIME_ORIGINAL), sub.get(_OFFSET_TIME_ORIGINAL))
        if captured is None:
            captured = _exif_time(exif.get(_DATETIME), sub.get(_OFFSET_TIME))
    except Exception:
        try:
            captured = _exif_time(exif.get(_DATETIME), None)
        except Exception:
            captured = None
    return Metadata(orientation, captured, xmp)


def apply_orientation(image: Image, orientation: int) -> Image:
    """``image`` turned upright per its EXIF orientation (as Pillow's exif_transpose)."""
    if orientation == 2:
        turned = image[:, ::-1]
    elif orientation == 3:
        turned = image[::-1, ::-1]
    elif orientation == 4:
        turned = image[::-1]
    elif orientation == 5:
        turned = image.transpose(1, 0, 2)
    elif orientation == 6:
        turned = np.rot90(image, -1)
    elif orientation == 7:
        turned = image[::-1, ::-1].transpose(1, 0, 2)
    elif orientation == 8:
        turned = np.rot90(image, 1)
    else:
        return image
    return np.ascontiguousarray(turned)
