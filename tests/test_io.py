"""Image loading: formats, orientation, modes, and a clear error for every bad file."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from faceprint.errors import ImageError
from faceprint.io import load_image

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
