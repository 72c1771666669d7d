"""Which format a file is, by its first bytes, and opening it with exactly that decoder.

The format is decided from the content (never the file name), then only that Pillow plugin
reads the header. Calling the plugin directly (not ``PIL.Image.open``) does two things:
its own error reaches the message ("bad checksum in IHDR" instead of "not a recognised
image format"), and Pillow's process-wide decompression-bomb limit is not consulted at
open: faceprint checks each image's size against its own per-call limits instead, and never
changes ``PIL.Image.MAX_IMAGE_PIXELS``. (Pillow still applies that limit inside the GIF and
TIFF readers, at 179 MP by default, far above faceprint's own limits.)

HEIC/HEIF needs ``pillow-heif`` (``pip install 'faceprint[library]'``), registered with
Pillow the first time such a file is seen. AVIF is read by Pillow itself (Pillow >= 11.3
wheels) when it was built with libavif.
"""

from __future__ import annotations

import io
import threading
import warnings
import zlib
from collections.abc import Callable
from typing import IO

from PIL import (
    BmpImagePlugin,
    GifImagePlugin,
    JpegImagePlugin,
    PngImagePlugin,
    TiffImagePlugin,
    features,
)
from PIL import Image as PILImage

from faceprint.errors import ImageError

# Pillow reports odd files (corrupt EXIF, truncated metadata, "possible decompression bomb")
# through warnings.warn, attributed to its own modules. faceprint turns every problem into
# an ImageError or ignores it on purpose (malformed EXIF: no rotation), so these warnings
# would only be noise on stderr. warnings.catch_warnings is not thread-safe (it swaps the
# process-wide filter list), so instead one filter, installed once at import, ignores
# UserWarning and RuntimeWarning (DecompressionBombWarning is one) raised by Pillow's and
# pillow-heif's modules only; warnings from anything else, and Pillow's deprecation
# warnings, are untouched.
for _category in (UserWarning, RuntimeWarning):
    warnings.filterwarnings("ignore", category=_category, module=r"(PIL|pillow_heif)(\.|$)")

LABELS = {
    "JPEG": "JPEG",
    "PNG": "PNG",
    "GIF": "GIF",
    "WEBP": "WebP",
    "BMP": "BMP",
    "TIFF": "TIFF",
    "AVIF": "AVIF",
    "HEIF": "HEIF",
}

_IMAGE_SIGNATURES = (
    (b"\xff\xd8\xff", "JPEG"),
    (b"\x89PNG\r\n\x1a\n", "PNG"),
    (b"GIF87a", "GIF"),
    (b"GIF89a", "GIF"),
    (b"II*\x00", "TIFF"),
    (b"MM\x00*", "TIFF"),
    (b"II+\x00", "TIFF"),
    (b"MM\x00+", "TIFF"),
)
_OTHER_SIGNATURES = (
    (b"%PDF", "a PDF document"),
    (b"PK\x03\x04", "a ZIP archive (or an office document)"),
    (b"PK\x05\x06", "a ZIP archive (empty)"),
    (b"\x1f\x8b", "a gzip archive"),
    (b"7z\xbc\xaf\x27\x1c", "a 7-Zip archive"),
    (b"Rar!", "a RAR archive"),
    (b"\x7fELF", "a program (ELF executable)"),
    (b"8BPS", "a Photoshop document (export it as JPEG or PNG)"),
    (b"\x00\x00\x00\x0cjP  ", "a JPEG 2000 image (not supported; convert it to JPEG or PNG)"),
    (b"\xff\x4f\xff\x51", "a JPEG 2000 codestream (not supported; convert it to JPEG or PNG)"),
    (b"\x00\x00\x01\x00", "a Windows icon (not supported)"),
    (b"\xef\xbb\xbf", "a text file"),
)
_BMP_HEADER_SIZES = {12, 16, 40, 52, 56, 64, 108, 124}
_AVIF_BRANDS = {b"avif", b"avis"}
_HEIF_BRANDS = {b"heic", b"heix", b"hevc", b"hevx", b"heim", b"heis", b"hevm", b"hevs"}
_HEIF_GENERIC = {b"mif1", b"msf1", b"miaf"}
_VIDEO_BRANDS = {b"isom", b"iso2", b"mp41", b"mp42", b"qt  ", b"M4V ", b"3gp4", b"3gp5", b"dash"}
#: Scans a JPEG may have (libjpeg makes 10 for progressive colour; each is a pass over the
#: whole image, so thousands of tiny scans would take minutes to decode).
MAX_JPEG_SCANS = 100


def _brands(head: bytes) -> list[bytes]:
    """ISO base media file brands (major first) if ``head`` starts with an ftyp box."""
    if head[4:8] != b"ftyp" or len(head) < 12:
        return []
    size = min(int.from_bytes(head[:4], "big"), 256, len(head))
    return [head[8:12]] + [head[i : i + 4] for i in range(16, size - 3, 4)]


def sniff(data: bytes) -> tuple[str | None, str]:
    """(format key, "") for a supported image, else (None, what the bytes look like)."""
    head = data[:256]
    for sig, kind in _IMAGE_SIGNATURES:
        if head.startswith(sig):
            return kind, ""
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "WEBP", ""
    if head[:2] == b"BM" and int.from_bytes(head[14:18], "little") in _BMP_HEADER_SIZES:
        return "BMP", ""
    brands = _brands(head)
    if brands:
        for group, kind in ((_AVIF_BRANDS, "AVIF"), (_HEIF_BRANDS, "HEIF")):
            if brands[0] in group:
                return kind, ""
        for group, kind in ((_AVIF_BRANDS, "AVIF"), (_HEIF_BRANDS | _HEIF_GENERIC, "HEIF")):
            if group.intersection(brands):
                return kind, ""
        if _VIDEO_BRANDS.intersection(brands):
            return None, "a video (MP4/MOV), not a photo"
        return None, "an ISO media file that is not a HEIF or AVIF image"
    if not data:
        return None, "an empty file"
    for sig, what in _OTHER_SIGNATURES:
        if head.startswith(sig):
            return None, what
    text = head.lstrip()
    if text[:1] == b"<":
        return None, "a text/HTML/SVG file"
    if text[:1] in (b"{", b"["):
        return None, "a JSON/text file"
    if head[:1] == b"P" and head[1:2] in b"1234567" and len(head) > 2 and head[2] in b" \t\r\n":
        return None, "a Netpbm image (PPM/PGM; not supported, convert it to PNG)"
    if all(32 <= c < 127 or c in (9, 10, 13) for c in head):
        return None, "a text file"
    return None, "not a recognised image format"


def png_checksum_problem(data: bytes) -> str | None:
    """A critical PNG chunk (IHDR, PLTE, IDAT, IEND...) whose CRC is wrong, as libpng
    refuses it (Pillow does not check IDAT). A file cut short is left to the decoder."""
    view = memoryview(data)
    pos = 8
    while pos + 12 <= len(data):
        length = int.from_bytes(view[pos : pos + 4], "big")
        end = pos + 12 + length
        if end > len(data):
            return None
        kind = bytes(view[pos + 4 : pos + 8])
        critical = not kind[0] & 0x20  # an upper-case first letter marks a critical chunk
        stored = int.from_bytes(view[end - 4 : end], "big")
        if critical and zlib.crc32(view[pos + 4 : end - 4]) != stored:
            return f"bad checksum (CRC) in its {kind.decode('latin-1')!r} chunk"
        if kind == b"IEND":
            return None
        pos = end
    return None


_heif_lock = threading.Lock()
_heif_ready = False

Factory = Callable[[IO[bytes], str], PILImage.Image]


def _heif_factory(name: str) -> Factory:
    global _heif_ready
    with _heif_lock:
        if not _heif_ready:
            try:
                import pillow_heif
            except ImportError as exc:
                raise ImageError(
                    f"{name}: a HEIC/HEIF image; reading it needs pillow-heif "
                    "(pip install 'faceprint[library]'), or convert it to JPEG"
                ) from exc
            pillow_heif.register_heif_opener()
            _heif_ready = True
    factory: Factory = PILImage.OPEN["HEIF"][0]
    return factory


def _factory(kind: str, name: str) -> Factory:
    if kind == "HEIF":
        return _heif_factory(name)
    if kind == "AVIF":
        if not features.check("avif"):
            raise ImageError(
                f"{name}: an AVIF image, and this Pillow was built without AVIF support "
                "(Pillow 11.3 or later from PyPI has it); convert it to JPEG"
            )
        from PIL import AvifImagePlugin

        return AvifImagePlugin.AvifImageFile
    if kind == "WEBP":
        if not features.check("webp"):
            raise ImageError(f"{name}: a WebP image, and this Pillow lacks WebP support")
        from PIL import WebPImagePlugin

        return WebPImagePlugin.WebPImageFile
    plugins: dict[str, Factory] = {
        "JPEG": JpegImagePlugin.jpeg_factory,
        "PNG": PngImagePlugin.PngImageFile,
        "GIF": GifImagePlugin.GifImageFile,
        "BMP": BmpImagePlugin.BmpImageFile,
        "TIFF": TiffImagePlugin.TiffImageFile,
    }
    return plugins[kind]


def describe_failure(exc: BaseException) -> str:
    """A short reason for a decoder exception."""
    if isinstance(exc, MemoryError):
        return "not enough memory to decode it"
    text = str(exc).strip() or type(exc).__name__
    return text if len(text) <= 200 else text[:200] + "..."


def webp_size(data: bytes) -> tuple[int, int] | None:
    """(width, height) a WebP file claims, from its first chunk (None if unreadable).

    libwebp allocates its whole canvas when Pillow merely opens the file, so the size is
    checked from these bytes first."""
    fourcc = data[12:16]
    if fourcc == b"VP8X" and len(data) >= 30:
        width = int.from_bytes(data[24:27], "little") + 1
        return width, int.from_bytes(data[27:30], "little") + 1
    if fourcc == b"VP8 " and len(data) >= 30 and data[23:26] == b"\x9d\x01\x2a":
        width = int.from_bytes(data[26:28], "little") & 0x3FFF
        return width, int.from_bytes(data[28:30], "little") & 0x3FFF
    if fourcc == b"VP8L" and len(data) >= 25 and data[20] == 0x2F:
        bits = int.from_bytes(data[21:25], "little")
        return (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
    return None


def identify(data: bytes, name: str) -> str:
    """The format key of ``data``, or an ImageError saying what the bytes are instead."""
    kind, what = sniff(data)
    if kind is None:
        raise ImageError(f"{name}: cannot read as an image ({what})")
    if kind == "PNG" and (problem := png_checksum_problem(data)):
        raise ImageError(f"{name}: corrupt PNG image ({problem})")
    return kind


def open_as(data: bytes, kind: str, name: str) -> PILImage.Image:
    """Read the header of an image of format ``kind`` (no pixels are decoded)."""
    label = LABELS[kind]
    factory = _factory(kind, name)
    try:
        im = factory(io.BytesIO(data), "")
    except PILImage.DecompressionBombError as exc:
        raise ImageError(f"{name}: {label} image too large to decode ({exc})") from exc
    except Exception as exc:  # any failure of a decoder on hostile bytes is a bad file
        raise ImageError(
            f"{name}: corrupt or truncated {label} image ({describe_failure(exc)})"
        ) from exc
    if kind == "JPEG" and im.format not in ("JPEG", "MPO"):
        im.close()
        raise ImageError(f"{name}: unsupported JPEG variant {im.format}")
    return im
