"""Loading images: any common format, EXIF orientation applied, always RGB uint8.

Every failure becomes an ImageError whose message says what is wrong with the file.
"""

from __future__ import annotations

import io
import os
import warnings
from pathlib import Path

import numpy as np
from PIL import Image as PILImage
from PIL import ImageOps, UnidentifiedImageError

from faceprint.errors import ImageError
from faceprint.types import Image

#: Largest image accepted, in pixels (default 100 megapixels; FACEPRINT_MAX_PIXELS overrides).
DEFAULT_MAX_PIXELS = 100_000_000

_SIGNATURES = {
    b"%PDF": "a PDF document",
    b"PK\x03\x04": "a ZIP archive (or an office document)",
    b"\x1f\x8b": "a gzip archive",
    b"GIF8": "a GIF image (animated GIFs are not supported; convert one frame to PNG)",
    b"<": "a text/HTML/SVG file",
    b"{": "a JSON/text file",
}


def max_pixels() -> int:
    value = os.environ.get("FACEPRINT_MAX_PIXELS", "")
    return int(value) if value.isdigit() and int(value) > 0 else DEFAULT_MAX_PIXELS


def _describe(head: bytes) -> str:
    for sig, what in _SIGNATURES.items():
        if head.startswith(sig):
            return what
    if not head:
        return "an empty file"
    return "not a recognised image format"


def _decode(data: bytes, name: str) -> Image:
    limit = max_pixels()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", PILImage.DecompressionBombWarning)
            old_limit = PILImage.MAX_IMAGE_PIXELS
            PILImage.MAX_IMAGE_PIXELS = None  # we check the size ourselves, before decoding
            try:
                img: PILImage.Image = PILImage.open(io.BytesIO(data))
            finally:
                PILImage.MAX_IMAGE_PIXELS = old_limit
            width, height = img.size
            if width * height > limit:
                raise ImageError(
                    f"{name}: image is {width}x{height} ({width * height / 1e6:.0f} MP), larger "
                    f"than the {limit / 1e6:.0f} MP limit (set FACEPRINT_MAX_PIXELS to raise it)"
                )
            if img.format not in ("JPEG", "PNG", "WEBP", "BMP", "TIFF", "MPO"):
                raise ImageError(
                    f"{name}: unsupported image format {img.format}; use JPEG, PNG, WebP or BMP"
                )
            img.load()
    except UnidentifiedImageError as exc:
        raise ImageError(f"{name}: cannot read as an image ({_describe(data[:8])})") from exc
    except ImageError:
        raise
    except (OSError, SyntaxError, ValueError, PILImage.DecompressionBombError) as exc:
        raise ImageError(f"{name}: corrupt or truncated image ({exc})") from exc
    img = ImageOps.exif_transpose(img) or img
    if img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info):
        rgba = img.convert("RGBA")
        background = PILImage.new("RGBA", rgba.size, (255, 255, 255, 255))
        img = PILImage.alpha_composite(background, rgba)
    if img.mode == "I;16" or img.mode == "I":
        arr16 = np.asarray(img, dtype=np.float64)
        scale = 255.0 / max(float(arr16.max()), 1.0)
        img = PILImage.fromarray(np.clip(arr16 * scale, 0, 255).astype(np.uint8))
    rgb = np.ascontiguousarray(np.asarray(img.convert("RGB"), dtype=np.uint8))
    if rgb.shape[0] < 8 or rgb.shape[1] < 8:
        raise ImageError(f"{name}: image is only {rgb.shape[1]}x{rgb.shape[0]} pixels")
    return rgb


def load_image(source: str | os.PathLike[str] | bytes) -> Image:
    """Read an image file (or its bytes) as an H x W x 3 RGB uint8 array."""
    if isinstance(source, bytes):
        return _decode(source, "uploaded image")
    path = Path(source)
    if not path.exists():
        raise ImageError(f"{path}: no such file")
    if path.is_dir():
        raise ImageError(f"{path}: is a directory, not an image")
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ImageError(f"{path}: cannot read file ({exc.strerror})") from exc
    return _decode(data, str(path))


def save_image(path: str | os.PathLike[str], image: Image, quality: int = 92) -> None:
    """Write an RGB image; format from the file extension."""
    out = Path(path)
    try:
        PILImage.fromarray(image).save(out, quality=quality)
    except (OSError, ValueError, KeyError) as exc:
        raise ImageError(f"{out}: cannot write image ({exc})") from exc
