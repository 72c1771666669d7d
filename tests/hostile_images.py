"""Hostile and odd image files: bombs, corrupt files, malformed EXIF, odd depths and modes.

Registered into :mod:`tests.hostile` (see there). Colours are chosen so a mis-decoding
(16-bit clipped to white, float to black, alpha on black) shows in the mean colour.
"""

from __future__ import annotations

import io
import struct
from pathlib import Path
from typing import Any

from PIL import Image, PngImagePlugin

from tests.hostile import (
    Case,
    Context,
    builder,
    exif_blob,
    png_bytes,
    png_chunk,
    tiff_bytes,
    with_app1,
    with_jpeg_size,
)

RED, BLUE, TEAL = (200, 30, 40), (20, 40, 210), (90, 120, 150)


def encode(im: Image.Image, fmt: str, **options: Any) -> bytes:
    out = io.BytesIO()
    im.save(out, fmt, **options)
    return out.getvalue()


def small_jpeg(colour: tuple[int, int, int] = TEAL, size: tuple[int, int] = (64, 48)) -> bytes:
    return encode(Image.new("RGB", size, colour), "JPEG", quality=95)


def write(ctx: Context, name: str, data: bytes) -> Path:
    path = ctx.dir / name
    path.write_bytes(data)
    return path


def ok(ctx: Context, name: str, data: bytes, size: tuple[int, int], colour: Any, **kw: Any) -> Case:
    return Case(name, "", write(ctx, name + ".jpg", data), "ok", size=size, colour=colour, **kw)


def bad(ctx: Context, name: str, data: bytes, match: str, **kw: Any) -> Case:
    return Case(name, "", write(ctx, name + ".jpg", data), "ImageError", match=match, **kw)


@builder("bomb")
def bombs(ctx: Context) -> list[Case]:
    limit = r"larger than the .* limit"
    budget = "decode budget"
    zero16 = b"\x00" * 20000
    gif = b"GIF89a" + struct.pack("<HHBBB", 65535, 65535, 0, 0, 0)
    gif += b"\x2c" + struct.pack("<HHHHB", 0, 0, 65535, 65535, 0) + b"\x02\x02\x44\x01\x00\x3b"
    webp_canvas = b"VP8X" + struct.pack("<I", 10) + b"\x02\x00\x00\x00"
    webp_canvas += (16383).to_bytes(3, "little") * 2
    webp = b"RIFF" + struct.pack("<I", 4 + len(webp_canvas)) + b"WEBP" + webp_canvas
    bmp = b"BM" + struct.pack("<IHHI", 54, 0, 0, 54)
    bmp += struct.pack("<IiiHHIIiiII", 40, 30000, 30000, 1, 24, 0, 0, 2835, 2835, 0, 0)
    return [
        bad(ctx, "png8_claims_50000x50000", png_bytes(50000, 50000, idat=b""), "50000x50000"),
        bad(ctx, "png16_claims_30000x30000", png_bytes(30000, 30000, bits=16, idat=b""), limit),
        bad(
            ctx,
            "png16_real_10000x10000",
            png_bytes(10000, 10000, bits=16, rows=(zero16 for _ in range(10000))),
            budget,
            note="100 MP inside the pixel limit, but 16-bit grey + RGB output exceed 400 MB",
        ),
        bad(
            ctx,
            "png8_real_rgb_10000x10000",
            png_bytes(10000, 10000, colour=2, rows=(b"\x00" * 30000 for _ in range(10000))),
            budget,
            note="a PNG cannot be decoded at reduced size",
        ),
        ok(
            ctx,
            "jpeg_real_100mp",
            encode(Image.new("RGB", (10000, 10000), TEAL), "JPEG"),
            (5000, 5000),
            TEAL,
            scale=2.0,
            tolerance=3.0,
            note="over the budget at full size, decoded at 1/2 (DCT scaling)",
        ),
        bad(ctx, "jpeg_claims_65000x65000", with_jpeg_size(small_jpeg(), 65000, 65000), limit),
        bad(ctx, "gif_claims_65535x65535", gif, "too large|limit"),
        bad(ctx, "tiff_claims_100000x100000", tiff_bytes(100000, 100000, b"\x00" * 16), limit),
        bad(ctx, "webp_claims_16384x16384", webp, limit, note="refused before libwebp sees it"),
        bad(ctx, "bmp_claims_30000x30000", bmp, limit),
        bad(ctx, "jpeg_150_scans", _many_scans(150), "more than 100 scans"),
    ]


def _many_scans(count: int) -> bytes:
    data = encode(Image.new("RGB", (64, 64), TEAL), "JPEG", progressive=True)
    last = data.rfind(b"\xff\xda")
    scan = data[last:-2]
    return data[:last] + scan * count + b"\xff\xd9"


@builder("corrupt")
def corrupt(ctx: Context) -> list[Case]:
    jpeg = encode(Image.radial_gradient("L").convert("RGB").resize((256, 256)), "JPEG")
    png = encode(Image.radial_gradient("L").resize((256, 256)), "PNG")
    webp = encode(Image.new("RGB", (256, 256), RED), "WEBP")
    tiff = tiff_bytes(64, 64, bytes(range(64)) * 64)
    gif = encode(Image.new("P", (64, 64), 3), "GIF")
    bmp = encode(Image.new("RGB", (64, 64), RED), "BMP")
    ihdr_crc = bytearray(png)
    ihdr_crc[29] ^= 0xFF
    idat_at = png.find(b"IDAT")
    idat_len = struct.unpack(">I", png[idat_at - 4 : idat_at])[0]
    idat_crc = bytearray(png)
    idat_crc[idat_at + 4 + idat_len] ^= 0xFF
    garbage = bytearray(jpeg)
    start = jpeg.find(b"\xff\xda") + 20
    garbage[start : start + 400] = bytes((i * 37) % 251 for i in range(400))
    truncated = "corrupt or truncated"
    return [
        bad(ctx, "jpeg_cut_to_a_third", jpeg[: len(jpeg) // 3], truncated),
        bad(ctx, "jpeg_cut_in_header", jpeg[:120], truncated),
        bad(ctx, "jpeg_soi_only", b"\xff\xd8\xff", truncated),
        Case(
            "jpeg_garbage_in_scan",
            "",
            write(ctx, "jpeg_garbage_in_scan.jpg", bytes(garbage)),
            "ok",
            size=(256, 256),
            note="libjpeg conceals damaged entropy-coded data",
        ),
        bad(ctx, "png_cut_in_half", png[: len(png) // 2], truncated),
        bad(ctx, "png_bad_crc_in_ihdr", bytes(ihdr_crc), "checksum .*IHDR"),
        bad(ctx, "png_bad_crc_in_idat", bytes(idat_crc), "checksum .*IDAT"),
        bad(ctx, "png_without_idat", png[:33] + png_chunk(b"IEND", b""), truncated),
        bad(ctx, "png_bad_zlib", png_bytes(64, 64, idat=b"\x78\x9c" + b"\xff" * 64), truncated),
        bad(ctx, "webp_cut", webp[: len(webp) // 2], truncated),
        bad(ctx, "webp_riff_junk", b"RIFF\x40\x00\x00\x00WEBPVP8 " + b"\x11" * 60, truncated),
        bad(ctx, "tiff_cut", tiff[: len(tiff) // 2], truncated),
        bad(
            ctx,
            "tiff_ifd_past_end",
            tiff_bytes(64, 64, b"\x00" * 4096, ifd_offset=10**7),
            truncated,
        ),
        bad(
            ctx,
            "tiff_strip_past_end",
            tiff_bytes(64, 64, b"\x00" * 4096, tags={273: (4, [10**7])}),
            truncated,
        ),
        bad(ctx, "gif_cut", gif[: len(gif) - 12], truncated),
        bad(ctx, "bmp_cut", bmp[: len(bmp) // 2], truncated),
    ]


def _exif_jpeg(ctx: Context, name: str, exif: bytes, size: tuple[int, int], note: str) -> Case:
    data = with_app1(small_jpeg(), exif)
    return ok(ctx, name, data, size, TEAL, tolerance=3.0, note=note)


@builder("exif")
def malformed_exif(ctx: Context) -> list[Case]:
    upright, turned = (64, 48), (48, 64)
    orient = 0x0112
    ascii_date = b"2023:13:45 99:99:99\x00"
    return [
        _exif_jpeg(ctx, "exif_16_bytes", b"Exif\x00\x00" + b"X" * 10, upright, "not a TIFF"),
        _exif_jpeg(ctx, "exif_ifd_past_end", exif_blob([], ifd_offset=0xFFFFFF00), upright, ""),
        _exif_jpeg(
            ctx,
            "exif_huge_count",
            exif_blob([(orient, 3, 0x3FFFFFFF, struct.pack("<I", 26))]),
            upright,
            "orientation claims a billion values",
        ),
        _exif_jpeg(
            ctx,
            "exif_orientation_9",
            exif_blob([(orient, 3, 1, struct.pack("<H", 9))]),
            upright,
            "not a valid orientation: no rotation",
        ),
        _exif_jpeg(
            ctx, "exif_orientation_0", exif_blob([(orient, 3, 1, b"\x00\x00")]), upright, ""
        ),
        _exif_jpeg(
            ctx,
            "exif_orientation_6",
            exif_blob([(orient, 3, 1, struct.pack("<H", 6))]),
            turned,
            "a valid orientation (control): turned upright",
        ),
        _exif_jpeg(
            ctx, "exif_orientation_as_text", exif_blob([(orient, 2, 2, b"6\x00")]), upright, ""
        ),
        _exif_jpeg(
            ctx,
            "exif_recursive_ifd",
            exif_blob([(0x8769, 4, 1, struct.pack("<I", 8))]),
            upright,
            "the Exif sub-IFD pointer points at IFD0 itself",
        ),
        _exif_jpeg(ctx, "exif_next_ifd_is_itself", exif_blob([], next_ifd=8), upright, ""),
        _exif_jpeg(
            ctx,
            "exif_impossible_date",
            exif_blob([(0x0132, 2, len(ascii_date), struct.pack("<I", 26))], tail=ascii_date),
            upright,
            "",
        ),
        ok(
            ctx,
            "png_exif_chunk_garbage",
            encode(Image.new("RGB", (64, 48), TEAL), "PNG", exif=b"Exif\x00\x00garbage!"),
            upright,
            TEAL,
        ),
        ok(
            ctx,
            "webp_exif_garbage",
            encode(Image.new("RGB", (64, 48), TEAL), "WEBP", exif=b"\x00" * 7, lossless=True),
            upright,
            TEAL,
        ),
        ok(
            ctx,
            "tiff_exif_ifd_past_end",
            tiff_bytes(64, 48, bytes([128]) * 64 * 48, tags={34665: (4, [10**8])}),
            upright,
            (128, 128, 128),
        ),
    ]


@builder("depth")
def depths(ctx: Context) -> list[Case]:
    n = 64 * 48
    half = [0] * 32 + [1] * 32
    grey = (128.0, 128.0, 128.0)

    def halves(low: float, high: float, code: str, endian: str = "<") -> bytes:
        row = struct.pack(f"{endian}64{code}", *(high if h else low for h in half))
        return row * 48

    return [
        ok(ctx, "tiff16_big_endian", tiff_bytes(64, 48, struct.pack(">H", 0x8000) * n, bits=16,
           endian=">"), (64, 48), grey, note="I;16B: >> 8"),
        ok(ctx, "tiff16_little_endian", tiff_bytes(64, 48, struct.pack("<H", 0x4000) * n,
           bits=16), (64, 48), (64, 64, 64)),
        ok(ctx, "tiff16_rgb", tiff_bytes(64, 48, struct.pack(">3H", 0x8000, 0x4000, 0x2000) * n,
           samples=3, bits=16, photometric=2, endian=">"), (64, 48), (128, 64, 32)),
        ok(ctx, "tiff_float_0_to_1", tiff_bytes(64, 48, struct.pack("<f", 0.5) * n, bits=32,
           sample_format=3), (64, 48), grey, tolerance=1.0, note="0..1 floats: x 255"),
        ok(ctx, "tiff_float_0_to_200", tiff_bytes(64, 48, halves(0.0, 200.0, "f"), bits=32,
           sample_format=3), (64, 48), (127.5, 127.5, 127.5), note="beyond 0..1: data range"),
        ok(ctx, "tiff_float_nan", tiff_bytes(64, 48, halves(float("nan"), 1.0, "f"), bits=32,
           sample_format=3), (64, 48), (127.5, 127.5, 127.5), note="NaN is black"),
        ok(ctx, "tiff_int32_wide", tiff_bytes(64, 48, halves(0, 100000, "i"), bits=32,
           sample_format=2), (64, 48), (127.5, 127.5, 127.5), note="beyond 16 bits: data range"),
        ok(ctx, "tiff_int32_16bit_values", tiff_bytes(64, 48, struct.pack("<i", 0x8000) * n,
           bits=32, sample_format=2), (64, 48), grey),
        ok(ctx, "png16_grey", png_bytes(64, 48, bits=16, rows=[b"\xc0\x00" * 64] * 48),
           (64, 48), (192, 192, 192)),
        ok(ctx, "png16_rgb", png_bytes(64, 48, bits=16, colour=2,
           rows=[b"\x80\x00\x40\x00\x20\x00" * 64] * 48), (64, 48), (128, 64, 32)),
        ok(ctx, "png16_rgba_half_alpha", png_bytes(64, 48, bits=16, colour=6,
           rows=[b"\x00\x00\x00\x00\x00\x00\x80\x00" * 64] * 48), (64, 48), (127, 127, 127),
           note="black at half alpha on white"),
    ]  # fmt: skip


@builder("mode")
def modes(ctx: Context) -> list[Case]:
    size = (64, 48)
    palette = Image.new("P", size, 1)
    palette.putpalette([0, 0, 0, *RED] + [0] * 762)
    clear = palette.copy()
    clear.info["transparency"] = 1
    trns = png_chunk(b"tRNS", struct.pack(">HHH", 200, 30, 40))
    white = (255, 255, 255)
    return [
        ok(ctx, "cmyk_jpeg", encode(Image.new("CMYK", size, (0, 255, 255, 0)), "JPEG",
           quality=95), size, (255, 0, 0), tolerance=6.0, note="Adobe inverted CMYK"),
        ok(ctx, "palette_png", encode(palette, "PNG"), size, RED),
        ok(ctx, "palette_transparent_png", encode(clear, "PNG", transparency=1), size, white),
        ok(ctx, "la_png_half_alpha", encode(Image.new("LA", size, (0, 128)), "PNG"), size,
           (127, 127, 127)),
        ok(ctx, "rgba_png_clear", encode(Image.new("RGBA", size, (*RED, 0)), "PNG"), size, white),
        ok(ctx, "rgb_png_transparent_colour", png_bytes(64, 48, colour=2, extra=[trns],
           rows=[bytes(RED) * 64] * 48), size, white),
        ok(ctx, "grey_jpeg", encode(Image.new("L", size, 100), "JPEG", quality=95), size,
           (100, 100, 100)),
        ok(ctx, "bilevel_png", encode(Image.new("1", size, 1), "PNG"), size, white),
        ok(ctx, "lab_tiff", encode(Image.new("LAB", size, (136, 208, 195)), "TIFF"), size,
           (250, 3, 11), tolerance=4.0),
        ok(ctx, "ycbcr_tiff_jpeg", encode(Image.new("RGB", size, RED), "TIFF",
           compression="jpeg"), size, RED, tolerance=6.0),
        ok(ctx, "bmp", encode(Image.new("RGB", size, RED), "BMP"), size, RED),
        ok(ctx, "webp_lossless", encode(Image.new("RGB", size, RED), "WEBP", lossless=True),
           size, RED),
    ]  # fmt: skip


@builder("tiny")
def tiny(ctx: Context) -> list[Case]:
    return [
        bad(ctx, "png_1x1", encode(Image.new("RGB", (1, 1)), "PNG"), "only 1x1"),
        bad(ctx, "gif_1x1", encode(Image.new("P", (1, 1)), "GIF"), "only 1x1"),
        bad(ctx, "png_7x500", encode(Image.new("RGB", (7, 500)), "PNG"), "only 7x500"),
        ok(ctx, "png_8x8", encode(Image.new("RGB", (8, 8), RED), "PNG"), (8, 8), RED),
    ]


def _frames(mode: str = "RGB") -> list[Image.Image]:
    return [Image.new(mode, (64, 48), c) for c in (RED, BLUE, TEAL)]


@builder("animated")
def animated(ctx: Context) -> list[Case]:
    first = _frames()
    size = (64, 48)
    note = "the first frame is used"
    return [
        ok(ctx, "gif_animated", encode(first[0], "GIF", save_all=True, append_images=first[1:]),
           size, RED, tolerance=8.0, note=note),
        ok(ctx, "apng", encode(first[0], "PNG", save_all=True, append_images=first[1:]),
           size, RED, note=note),
        ok(ctx, "tiff_three_pages", encode(first[0], "TIFF", save_all=True,
           append_images=first[1:]), size, RED, note=note),
        ok(ctx, "webp_animated", encode(first[0], "WEBP", save_all=True, append_images=first[1:],
           lossless=True), size, RED, note=note),
        ok(ctx, "mpo_two_pictures", encode(first[0], "MPO", save_all=True,
           append_images=first[1:2], quality=95), size, RED, tolerance=4.0, note=note),
    ]  # fmt: skip


@builder("modern")
def modern(ctx: Context) -> list[Case]:
    from PIL import features

    im = Image.new("RGB", (64, 48), RED)
    cases = []
    if features.check("avif"):
        data = encode(im, "AVIF", quality=95)
        cases.append(ok(ctx, "avif", data, (64, 48), RED, tolerance=8.0))
        cases.append(bad(ctx, "avif_cut", data[: len(data) // 2], "corrupt or truncated"))
    try:
        import pillow_heif

        pillow_heif.register_heif_opener()
        heic = encode(im, "HEIF", quality=95)
        cases.append(ok(ctx, "heic", heic, (64, 48), RED, tolerance=8.0))
        cases.append(bad(ctx, "heic_cut", heic[: len(heic) // 2], "corrupt or truncated"))
    except ImportError:  # without the optional extra: a clear refusal
        heic = b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic" + b"\x00" * 64
        cases.append(bad(ctx, "heic", heic, "pillow-heif"))
    xmp = PngImagePlugin.PngInfo()
    xmp.add_itxt("XML:com.adobe.xmp", "<x:xmpmeta " + "x" * 2_000_000 + "/>")
    cases.append(ok(ctx, "png_xmp_2mb", encode(im, "PNG", pnginfo=xmp), (64, 48), RED,
                    note="a 2 MB XMP packet is dropped, not returned"))  # fmt: skip
    return cases
