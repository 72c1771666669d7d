"""How much memory a decode will take, known from the header before any pixel is decoded.

The estimate adds what is alive at the worst moment of each phase of a decode:

* the encoded bytes (held by the caller for the whole decode);
* decode: the decoder's own scratch memory plus Pillow's decoded frame in its native mode
  (Pillow keeps 1 byte per pixel for ``1``/``L``/``P``, 2 for the 16-bit modes and 4 for every
  other mode, RGB included). Scratch, measured per format: a progressive (or multi-scan) JPEG
  keeps all its DCT coefficients, 2 bytes per sample at full size even when decoded at reduced
  size; libtiff may hold a whole strip or tile in the file's own layout; libwebp, libavif and
  libheif decode whole frames (several full-size RGBA buffers);
* conversion to RGB: the native frame, the RGB uint8 result (3 bytes per pixel) and the
  temporaries of one strip of rows (conversion runs strip by strip, so Pillow's intermediate
  modes and numpy's float arrays never exist at full size);
* orientation: the result and its rotated copy (the native frame is closed by then);
* plus 4 MB for the decoders' working buffers.

``python bench/hostile_memory.py --estimates`` prints the estimate next to the measured
peak for a 20 MP image in each format (the estimate is 2-10% above it for JPEG, PNG, TIFF,
BMP, GIF and WebP; AVIF and HEIF are estimated for 10-bit 4:4:4, above an 8-bit photo).

Only the first frame of an animated or multi-frame file is decoded, so only it is counted.
A JPEG whose full size does not fit is decoded at 1/2, 1/4 or 1/8 size (libjpeg's DCT
scaling, Pillow's draft mode) when that fits; the caller learns the scale.
"""

from __future__ import annotations

import math
import re

from PIL import Image as PILImage

#: Pixels converted per strip (bounds the conversion temporaries).
STRIP_PIXELS = 1 << 17
#: Bytes per pixel of one strip's temporaries (float64 RGBA, Pillow's crop and conversion).
STRIP_BYTES_PER_PIXEL = 48
_NATIVE_BYTES = {"1": 1, "L": 1, "P": 1, "I;16": 2, "I;16L": 2, "I;16B": 2, "I;16N": 2}
#: Full-size scratch buffers (bytes per pixel) of the decoders that decode whole frames.
FRAME_SCRATCH = {"WEBP": 13, "AVIF": 10, "HEIF": 10}
JPEG_SCALES = (1, 2, 4, 8)
#: The decoders' own working buffers (row buffers, Huffman tables, lookup tables).
DECODER_OVERHEAD = 4_000_000
_NEXT_MARKER = re.compile(rb"\xff[^\x00\xd0-\xd7\xff]")


def native_bytes(mode: str) -> int:
    """Bytes per pixel of a decoded Pillow image in ``mode``."""
    return _NATIVE_BYTES.get(mode, 4)


def jpeg_coefficient_bytes(im: PILImage.Image) -> int:
    """Memory libjpeg keeps for a progressive or multi-scan JPEG: every DCT coefficient."""
    layers = getattr(im, "layer", None) or [("", 1, 1, 0)] * len(im.getbands())
    h_max = max(max(int(layer[1]) for layer in layers), 1)
    v_max = max(max(int(layer[2]) for layer in layers), 1)
    width, height = im.size
    total = 0
    for _, h, v, _q in layers:
        cols = math.ceil(width * max(int(h), 1) / h_max / 8) * 8
        rows = math.ceil(height * max(int(v), 1) / v_max / 8) * 8
        total += cols * rows * 2
    return total


def _tiff_raw_bytes_per_pixel(im: PILImage.Image) -> int:
    tags = getattr(im, "tag_v2", {})
    try:
        samples = int(tags.get(277, 1))
        bits = tags.get(258, (8,))
        bits_per_sample = max(int(b) for b in (bits if isinstance(bits, tuple) else (bits,)))
    except (TypeError, ValueError):
        samples, bits_per_sample = 4, 32
    return max(samples, 1) * max(math.ceil(bits_per_sample / 8), 1)


def scratch_per_pixel(im: PILImage.Image, kind: str) -> int:
    """Bytes per pixel of the decoder's own full-frame buffers (0: it decodes row by row)."""
    if kind == "TIFF":
        return _tiff_raw_bytes_per_pixel(im)
    return FRAME_SCRATCH.get(kind, 0)


def decode_cost(
    size: tuple[int, int],
    mode: str,
    encoded: int,
    *,
    scratch: int,
    coefficients: int,
    rotates: bool,
) -> int:
    """Peak bytes of decoding a ``size`` frame of ``mode`` to an RGB uint8 array."""
    pixels = size[0] * size[1]
    native = pixels * native_bytes(mode)
    out = pixels * 3
    strip = min(pixels, max(STRIP_PIXELS, size[0])) * STRIP_BYTES_PER_PIXEL  # >= one row
    decoding = pixels * scratch + coefficients + native
    converting = native + out + strip
    orienting = 2 * out if rotates else out
    return encoded + DECODER_OVERHEAD + max(decoding, converting, orienting)


def jpeg_scans(data: bytes, stop: int = 1000) -> int:
    """How many scans (SOS segments) the first image of a JPEG has, counting up to ``stop``.

    Walks the marker segments; after each SOS it skips the entropy-coded data to the next
    marker (a 0xFF byte not followed by 0x00, a restart marker or another 0xFF)."""
    pos, scans, end = 2, 0, len(data)
    while pos + 4 <= end and scans < stop:
        if data[pos] != 0xFF:
            return scans  # not a marker where one must be: the decoder will say so
        marker = data[pos + 1]
        if marker == 0xFF or marker == 0x01 or 0xD0 <= marker <= 0xD8:
            pos += 1 if marker == 0xFF else 2
            continue
        if marker == 0xD9:  # end of the first image (an MPO's others follow)
            return scans
        pos += 2 + int.from_bytes(data[pos + 2 : pos + 4], "big")
        if marker == 0xDA:
            scans += 1
            found = _NEXT_MARKER.search(data, pos)
            if found is None:
                return scans
            pos = found.start()
    return scans


def plan(
    im: PILImage.Image, kind: str, encoded: int, *, rotates: bool, scans: int, budget: int
) -> tuple[int, int]:
    """(scale, cost) of decoding ``im``: a JPEG over ``budget`` is switched to the smallest
    DCT reduction (1/2, 1/4, 1/8) that fits. A cost over ``budget`` means refuse it."""
    coefficients = 0
    if kind == "JPEG" and (im.info.get("progressive") or scans > 1):
        coefficients = jpeg_coefficient_bytes(im)
    scratch = scratch_per_pixel(im, kind)
    width, height = im.size

    def cost(scale: int) -> int:
        size = (-(-width // scale), -(-height // scale))
        return decode_cost(
            size, im.mode, encoded, scratch=scratch, coefficients=coefficients, rotates=rotates
        )

    scales = JPEG_SCALES if kind == "JPEG" else (1,)
    for scale in scales:
        if cost(scale) <= budget:
            break
    else:
        return 1, cost(scales[-1])
    if scale > 1:
        drafted = im.draft(im.mode, (max(width // scale, 1), max(height // scale, 1)))
        if drafted is None or im.size != (-(-width // scale), -(-height // scale)):
            return 1, cost(1)  # Pillow could not reduce this JPEG: refuse it at full size
    return scale, cost(scale)
