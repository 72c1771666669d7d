"""Image loading: formats, orientation, modes, and a clear error for every bad file."""

from __future__ import annotations

import hashlib
import os
import struct
import subprocess
import sys
import threading
import zlib
from contextlib import ExitStack
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageOps, PngImagePlugin, TiffImagePlugin

from faceprint.errors import FaceprintError, ImageError, ModelError
from faceprint.io import (
    decode,
    decode_budget,
    file_sha256,
    load_image,
    max_decodes,
    max_pixels,
    read_file,
)
from faceprint.io.limits import active_decodes, decode_slot

FACES = Path(__file__).resolve().parents[2] / "shared" / "faces"


def png_header_only(width: int, height: int) -> bytes:
    """A PNG that claims a size (the decoder reads the header before any pixel)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", b"") + chunk(b"IEND", b"")


def test_real_jpeg_and_webp_named_jpg() -> None:
    img = load_image(FACES / "img1.jpg")
    assert img.shape == (1868, 1382, 3) and img.dtype == np.uint8
    webp = load_image(FACES / "img47.jpg")  # a WebP file with a .jpg name
    assert webp.shape == (1800, 1350, 3)


def test_exif_orientation_is_applied() -> None:
    path = FACES / "antispoof" / "image_T1.jpg"
    raw = Image.open(path)
    assert raw.getexif().get(0x0112) == 6  # rotate 90 degrees
    img = load_image(path)
    assert img.shape[:2] == (raw.size[0], raw.size[1])  # width and height swap


@pytest.mark.parametrize("mode", ["L", "RGBA", "P", "LA", "CMYK"])
def test_modes_become_rgb(tmp_path: Path, mode: str) -> None:
    src = Image.open(FACES / "img10.jpg").convert(mode)
    path = tmp_path / ("x.png" if mode != "CMYK" else "x.jpg")
    src.save(path)
    img = load_image(path)
    assert img.ndim == 3 and img.shape[2] == 3 and img.dtype == np.uint8


@pytest.mark.parametrize("fmt", ["PNG", "WEBP", "BMP"])
def test_formats(tmp_path: Path, fmt: str) -> None:
    path = tmp_path / f"x.{fmt.lower()}"
    Image.open(FACES / "img10.jpg").save(path, format=fmt)
    assert load_image(path).shape == (594, 408, 3)


def test_bytes_input() -> None:
    assert load_image((FACES / "img10.jpg").read_bytes()).shape == (594, 408, 3)


def test_missing_file() -> None:
    with pytest.raises(ImageError, match="no such file"):
        load_image("/nonexistent/photo.jpg")


def test_directory(tmp_path: Path) -> None:
    with pytest.raises(ImageError, match="is a directory"):
        load_image(tmp_path)


def test_pdf_renamed_jpg(tmp_path: Path) -> None:
    path = tmp_path / "photo.jpg"
    path.write_bytes(b"%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\n%%EOF\n")
    with pytest.raises(ImageError, match="PDF document"):
        load_image(path)


def test_empty_file(tmp_path: Path) -> None:
    path = tmp_path / "empty.jpg"
    path.write_bytes(b"")
    with pytest.raises(ImageError, match="empty file"):
        load_image(path)


def test_truncated_jpeg(tmp_path: Path) -> None:
    data = (FACES / "img10.jpg").read_bytes()
    path = tmp_path / "cut.jpg"
    path.write_bytes(data[: len(data) // 3])
    with pytest.raises(ImageError, match="corrupt or truncated"):
        load_image(path)


def test_huge_dimensions_refused_before_decoding(tmp_path: Path) -> None:
    path = tmp_path / "huge.png"
    path.write_bytes(png_header_only(20000, 20000))
    with pytest.raises(ImageError, match="20000x20000.*limit"):
        load_image(path)


def test_tiny_image(tmp_path: Path) -> None:
    path = tmp_path / "tiny.png"
    Image.new("RGB", (3, 3)).save(path)
    with pytest.raises(ImageError, match="only 3x3"):
        load_image(path)


# ---- limits from the environment ---------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "value"),
    [("400000000", 400_000_000), ("400MB", 400_000_000), ("1.5GB", 1_500_000_000),
     ("512MiB", 512 * 2**20), ("2 g", 2_000_000_000), (" 64mb ", 64_000_000)],
)  # fmt: skip
def test_decode_budget_units(monkeypatch: pytest.MonkeyPatch, text: str, value: int) -> None:
    monkeypatch.setenv("FACEPRINT_DECODE_BUDGET", text)
    assert decode_budget() == value


@pytest.mark.parametrize("text", ["lots", "12XB", "-5MB", "1e9", "0.5KB"])
def test_bad_decode_budget_is_explained(monkeypatch: pytest.MonkeyPatch, text: str) -> None:
    monkeypatch.setenv("FACEPRINT_DECODE_BUDGET", text)
    with pytest.raises(FaceprintError, match="FACEPRINT_DECODE_BUDGET=.*(not a size|too small)"):
        load_image(FACES / "img10.jpg")


@pytest.mark.parametrize("name", ["FACEPRINT_MAX_PIXELS", "FACEPRINT_MAX_DECODES"])
@pytest.mark.parametrize("text", ["0", "-3", "many", "1.5"])
def test_bad_counts_are_explained(monkeypatch: pytest.MonkeyPatch, name: str, text: str) -> None:
    monkeypatch.setenv(name, text)
    with pytest.raises(FaceprintError, match=f"{name}=.*at least 1"):
        max_pixels() if name == "FACEPRINT_MAX_PIXELS" else max_decodes()


def test_tiny_pixel_limit_is_stated_in_pixels(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FACEPRINT_MAX_PIXELS", "1")
    with pytest.raises(ImageError, match=r"408x594 \(242,352 pixels\), larger than the 1 pixel "):
        load_image(FACES / "img10.jpg")
    monkeypatch.setenv("FACEPRINT_MAX_PIXELS", "2500000")
    with pytest.raises(ImageError, match=r"1382x1868 \(2.6 MP\), larger than the 2.5 MP limit"):
        load_image(FACES / "img1.jpg")


def test_budget_refuses_before_decoding(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("FACEPRINT_DECODE_BUDGET", "4MB")
    path = tmp_path / "big.png"
    Image.new("RGB", (1000, 1000), (10, 20, 30)).save(path)
    with pytest.raises(ImageError, match="1000x1000 PNG image would need about 1.* 4 MB decode"):
        load_image(path)
    monkeypatch.setenv("FACEPRINT_DECODE_BUDGET", "20MB")
    assert load_image(path).shape == (1000, 1000, 3)


def test_large_jpeg_is_decoded_at_reduced_size(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    path = tmp_path / "baseline.jpg"
    Image.open(FACES / "img13.jpg").save(path, quality=95)
    full = decode(path)
    assert full.scale == 1.0 and full.original_size == (2048, 1364)
    monkeypatch.setenv("FACEPRINT_DECODE_BUDGET", "20MB")  # full size needs about 30 MB
    half = decode(path)
    assert half.scale == 2.0 and half.original_size == (2048, 1364)
    assert half.image.shape == (682, 1024, 3)
    reduced = full.image.reshape(682, 2, 1024, 2, 3).mean(axis=(1, 3))
    assert np.abs(reduced - half.image).mean() < 3.0  # the same picture, at half size


def test_progressive_jpeg_coefficients_count(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """A progressive JPEG keeps all DCT coefficients at full size, even when drafted."""
    src = Image.open(FACES / "img13.jpg").resize((2000, 2000))
    base, prog = tmp_path / "base.jpg", tmp_path / "prog.jpg"
    src.save(base, quality=90, subsampling=0)
    src.save(prog, quality=90, subsampling=0, progressive=True)
    monkeypatch.setenv("FACEPRINT_DECODE_BUDGET", "20MB")  # coefficients: 2000*2000*3*2 = 24 MB
    assert decode(base).scale == 2.0
    with pytest.raises(ImageError, match="even at 1/8 size, more than the 20 MB decode budget"):
        decode(prog)


# ---- what a decode tells besides the pixels ----------------------------------------------


def _exif(orientation: int | None = None, **times: str) -> bytes:
    exif = Image.Exif()
    if orientation is not None:
        exif[0x0112] = orientation
    if "datetime" in times:
        exif[0x0132] = times["datetime"]
    sub = exif.get_ifd(0x8769)
    if "original" in times:
        sub[0x9003] = times["original"]
    if "offset" in times:
        sub[0x9011] = times["offset"]
    return exif.tobytes()


def test_capture_time(tmp_path: Path) -> None:
    im = Image.new("RGB", (64, 48), (1, 2, 3))
    cases = {
        "both": (_exif(original="2021:06:01 10:20:30", datetime="2022:01:01 00:00:00"),
                 datetime(2021, 6, 1, 10, 20, 30)),
        "zone": (_exif(original="2021:06:01 10:20:30", offset="+02:00"),
                 datetime(2021, 6, 1, 10, 20, 30, tzinfo=timezone(timedelta(hours=2)))),
        "datetime": (_exif(datetime="2019:12:31 23:59:59"), datetime(2019, 12, 31, 23, 59, 59)),
        "zeros": (_exif(original="0000:00:00 00:00:00"), None),
        "none": (b"", None),
    }  # fmt: skip
    for name, (exif, expected) in cases.items():
        path = tmp_path / f"{name}.jpg"
        im.save(path, exif=exif)
        assert decode(path).captured_at == expected, name
    assert decode(FACES / "img10.jpg").captured_at is None


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "WEBP", "TIFF"])
def test_xmp_packet(tmp_path: Path, fmt: str) -> None:
    packet = b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF/></x:xmpmeta>'
    path = tmp_path / f"x.{fmt.lower()}"
    im = Image.new("RGB", (64, 48), (9, 9, 9))
    if fmt == "PNG":
        info = PngImagePlugin.PngInfo()
        info.add_itxt("XML:com.adobe.xmp", packet.decode())
        im.save(path, pnginfo=info)
    elif fmt == "TIFF":
        tags = TiffImagePlugin.ImageFileDirectory_v2()
        tags[700] = packet
        im.save(path, tiffinfo=tags)
    else:
        im.save(path, fmt, xmp=packet)
    result = decode(path)
    assert result.xmp == packet and result.format == {"WEBP": "WebP"}.get(fmt, fmt)
    assert decode(FACES / "img10.jpg").xmp is None


@pytest.mark.parametrize("orientation", range(1, 9))
def test_orientation_as_pillow(tmp_path: Path, orientation: int) -> None:
    rng = np.random.default_rng(orientation)
    pixels = rng.integers(0, 255, (24, 40, 3), dtype=np.uint8)
    path = tmp_path / "o.png"
    Image.fromarray(pixels).save(path, exif=_exif(orientation))
    result = decode(path)
    expected = np.asarray(ImageOps.exif_transpose(Image.open(path)).convert("RGB"))
    assert np.array_equal(result.image, expected)
    assert result.oriented == (orientation != 1)
    assert result.original_size == (expected.shape[1], expected.shape[0])


def test_sixteen_bit_gradient_keeps_its_brightness(tmp_path: Path) -> None:
    """>> 8: a dark 16-bit image stays dark (no per-image stretching)."""
    values = np.tile(np.arange(0, 4096, 64, dtype=np.uint16), (48, 1))  # 12-bit data
    path = tmp_path / "dark.png"
    Image.fromarray(values).save(path)
    out = load_image(path)
    assert np.array_equal(out[..., 0], (values >> 8).astype(np.uint8))


# ---- files -------------------------------------------------------------------------------


def test_read_file_limits(tmp_path: Path) -> None:
    path = tmp_path / "f.bin"
    path.write_bytes(b"x" * 100)
    assert read_file(path, limit=100) == b"x" * 100
    with pytest.raises(ImageError, match="100 bytes, larger than the 99 bytes limit"):
        read_file(path, limit=99)
    # /proc files say they are empty: the limit still holds while reading
    assert read_file("/proc/self/status").startswith(b"Name:")
    with pytest.raises(ImageError, match="larger than the 10 bytes limit"):
        read_file("/proc/self/maps", limit=10)
    with pytest.raises(ImageError, match="larger than the 10 bytes limit"):
        file_sha256("/proc/self/maps", limit=10)


def test_file_sha256(tmp_path: Path) -> None:
    photo = FACES / "img1.jpg"
    assert file_sha256(photo) == hashlib.sha256(photo.read_bytes()).hexdigest()
    empty = tmp_path / "empty"
    empty.write_bytes(b"")
    assert file_sha256(empty) == hashlib.sha256(b"").hexdigest()
    with pytest.raises(ImageError, match="empty"):
        read_file(empty)
    fifo = tmp_path / "pipe.jpg"
    os.mkfifo(fifo)
    with pytest.raises(ImageError, match="named pipe"):
        file_sha256(fifo)
    with pytest.raises(ModelError, match="is a directory"):
        file_sha256(tmp_path, error=ModelError)


def test_heic_without_pillow_heif_is_explained(tmp_path: Path) -> None:
    path = tmp_path / "x.heic"
    path.write_bytes(b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic" + b"\x00" * 64)
    code = (
        "import sys; sys.modules['pillow_heif'] = None\n"  # as if it were not installed
        "from faceprint.io import load_image\n"
        f"load_image({str(path)!r})\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert "ImageError" in proc.stderr and "needs pillow-heif" in proc.stderr


def test_decode_slots_bound_concurrency() -> None:
    done: list[tuple[int, ...]] = []
    worker = threading.Thread(target=lambda: done.append(load_image(FACES / "img10.jpg").shape))
    with ExitStack() as held:
        for _ in range(max_decodes()):
            held.enter_context(decode_slot())
        assert active_decodes() == max_decodes()
        worker.start()
        worker.join(0.5)
        assert worker.is_alive() and not done  # waits for a free slot
    worker.join(60)
    assert done == [(594, 408, 3)] and active_decodes() == 0


def test_old_import_paths_still_work() -> None:
    from faceprint.io.image import load_image as old_load
    from faceprint.io.image import max_pixels as old_max

    assert old_load is load_image and old_max() == 100_000_000


def test_heic_orientation_is_applied_once(tmp_path: Path) -> None:
    pillow_heif = pytest.importorskip("pillow_heif")
    pillow_heif.register_heif_opener()
    pixels = np.zeros((48, 64, 3), np.uint8)
    pixels[:, :32] = (255, 0, 0)
    path = tmp_path / "turned.heic"
    Image.fromarray(pixels).save(path, "HEIF", exif=_exif(6), quality=100)
    result = decode(path)
    expected = np.asarray(ImageOps.exif_transpose(Image.open(path)).convert("RGB"))
    assert result.image.shape == (64, 48, 3) and result.oriented
    assert np.abs(result.image.astype(int) - expected).mean() < 1.0
