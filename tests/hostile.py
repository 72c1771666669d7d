"""A corpus of hostile inputs, built at test time in a directory (nothing binary is committed).

Each input is a :class:`Case`: its path, its category, and the outcome faceprint must give
(``"ok"`` or the name of the error class, e.g. ``"ImageError"``), with a regex its message
must contain and, for images that decode, the expected size and mean colour. Tests assert
exactly that outcome.

Inputs are made by *builders*: functions ``f(ctx) -> Case | list[Case]`` registered under a
category with :func:`builder`. The image and file builders live in ``hostile_images.py`` and
``hostile_files.py``; more categories (galleries, CSVs, videos, HTTP requests) are added the
same way from other modules::

    from tests.hostile import Case, Context, builder

    @builder("gallery")
    def truncated_gallery(ctx: Context) -> Case:
        path = ctx.dir / "cut.db"
        ...
        return Case("gallery_cut", "gallery", path, "GalleryError", match="not a gallery")

    cases = build(tmp_dir, categories={"gallery"})

This module is plain Python (no pytest inside); the encoders below write the odd files that
Pillow cannot (16-bit RGB PNG, float and big-endian TIFF, malformed EXIF).
"""

from __future__ import annotations

import importlib
import struct
import zlib
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path


@dataclass(frozen=True)
class Case:
    """One hostile input and the outcome it must have."""

    name: str
    category: str
    path: Path
    expect: str  # "ok", or the name of the error class raised ("ImageError", ...)
    match: str = ""  # a regex the error message must contain (case-insensitive)
    note: str = ""  # why this is the expected outcome, where it is not obvious
    size: tuple[int, int] | None = None  # (width, height) of a decoded image
    colour: tuple[float, float, float] | None = None  # its mean RGB colour
    tolerance: float = 2.0  # allowed difference of each channel of ``colour``
    scale: float = 1.0  # Decoded.scale (large JPEGs are decoded at reduced size)
    faces: int = 0  # faces the image holds (the command line then exits 0, else 4)
    skip: str = ""  # why this input cannot be made or used here ("" = usable)
    cli: bool = True  # can be given on a command line (no NUL bytes, ...)
    #: The outcome holds for a process without root's override of permission bits (a test
    #: running as root runs it with CAP_DAC_OVERRIDE and CAP_DAC_READ_SEARCH dropped).
    unprivileged: bool = False

    @property
    def ok(self) -> bool:
        return self.expect == "ok"


@dataclass(frozen=True)
class Context:
    """What builders get: the directory to write into, and real photos for realism."""

    dir: Path
    face_photo: Path | None = None  # a photo with exactly one face (for names, not content)
    extra: dict[str, object] = field(default_factory=dict)


Builder = Callable[[Context], Case | list[Case]]
REGISTRY: dict[str, list[Builder]] = {}
#: Modules whose import registers the built-in builders.
BUILTIN_MODULES = ("tests.hostile_images", "tests.hostile_files")


def _load_builtin() -> None:
    for module in BUILTIN_MODULES:
        importlib.import_module(module)


def categories() -> list[str]:
    """Every registered category (known without building anything)."""
    _load_builtin()
    return sorted(REGISTRY)


def builder(category: str) -> Callable[[Builder], Builder]:
    """Register a builder function under ``category``."""

    def register(fn: Builder) -> Builder:
        REGISTRY.setdefault(category, []).append(fn)
        return fn

    return register


def build(
    directory: Path,
    categories: Iterable[str] | None = None,
    *,
    face_photo: Path | None = None,
) -> list[Case]:
    """Make every input of the chosen categories (default: all) in ``directory``."""
    _load_builtin()
    chosen = set(categories) if categories is not None else set(REGISTRY)
    unknown = chosen - set(REGISTRY)
    if unknown:
        raise KeyError(f"no hostile-input category {sorted(unknown)}")
    cases: list[Case] = []
    for category in sorted(chosen):
        sub = directory / category
        sub.mkdir(parents=True, exist_ok=True)
        ctx = Context(sub, face_photo)
        for fn in REGISTRY[category]:
            made = fn(ctx)
            for case in made if isinstance(made, list) else [made]:
                cases.append(replace(case, category=category))
    names = [c.name for c in cases]
    duplicates = {n for n in names if names.count(n) > 1}
    if duplicates:
        raise ValueError(f"hostile cases named twice: {sorted(duplicates)}")
    return cases


# ---- encoders for files Pillow will not write --------------------------------------------


def png_chunk(kind: bytes, data: bytes, crc: int | None = None) -> bytes:
    value = zlib.crc32(kind + data) if crc is None else crc
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", value)


def png_bytes(
    width: int,
    height: int,
    *,
    bits: int = 8,
    colour: int = 0,
    rows: Iterable[bytes] | None = None,
    extra: Sequence[bytes] = (),
    idat: bytes | None = None,
) -> bytes:
    """A PNG of raw ``rows`` (each without its filter byte), compressed as they stream in;
    ``idat`` gives the compressed data instead (or claims a size with no pixels at all)."""
    ihdr = struct.pack(">IIBBBBB", width, height, bits, colour, 0, 0, 0)
    if idat is None:
        packer = zlib.compressobj(6)
        parts = [packer.compress(b"\x00" + row) for row in rows or ()]
        idat = b"".join(parts) + packer.flush()
    return (
        b"\x89PNG\r\n\x1a\n"
        + png_chunk(b"IHDR", ihdr)
        + b"".join(extra)
        + png_chunk(b"IDAT", idat)
        + png_chunk(b"IEND", b"")
    )


_TIFF_TYPES = {1: "B", 2: "B", 3: "H", 4: "I", 7: "B"}


def tiff_bytes(
    width: int,
    height: int,
    pixels: bytes,
    *,
    samples: int = 1,
    bits: int = 8,
    sample_format: int = 1,
    photometric: int = 1,
    endian: str = "<",
    tags: dict[int, tuple[int, Sequence[int] | bytes]] | None = None,
    ifd_offset: int | None = None,
) -> bytes:
    """An uncompressed one-strip TIFF. ``sample_format`` 1 = unsigned, 2 = signed, 3 = float;
    ``tags`` adds or replaces entries ({tag: (type, values)}); ``ifd_offset`` lies about
    where the first IFD is."""
    strip = 8
    entries: dict[int, tuple[int, Sequence[int] | bytes]] = {
        256: (4, [width]),
        257: (4, [height]),
        258: (3, [bits] * samples),
        259: (3, [1]),
        262: (3, [photometric]),
        273: (4, [strip]),
        277: (3, [samples]),
        278: (4, [height]),
        279: (4, [len(pixels)]),
        284: (3, [1]),
        339: (3, [sample_format] * samples),
    }
    entries.update(tags or {})
    pad = b"\x00" * (len(pixels) % 2)
    start = strip + len(pixels) + len(pad)
    after = start + 2 + 12 * len(entries) + 4
    table, heap = b"", b""
    for tag in sorted(entries):
        kind, values = entries[tag]
        code = _TIFF_TYPES[kind]
        raw = (
            bytes(values)
            if isinstance(values, bytes)
            else struct.pack(f"{endian}{len(values)}{code}", *values)
        )
        count = len(raw) // struct.calcsize(code)
        if len(raw) <= 4:
            field_value = raw.ljust(4, b"\x00")
        else:
            field_value = struct.pack(f"{endian}I", after + len(heap))
            heap += raw + b"\x00" * (len(raw) % 2)
        table += struct.pack(f"{endian}HHI", tag, kind, count) + field_value
    magic = b"II*\x00" if endian == "<" else b"MM\x00*"
    first = start if ifd_offset is None else ifd_offset
    ifd = struct.pack(f"{endian}H", len(entries)) + table + struct.pack(f"{endian}I", 0)
    return magic + struct.pack(f"{endian}I", first) + pixels + pad + ifd + heap


def exif_blob(
    entries: Sequence[tuple[int, int, int, bytes]],
    *,
    ifd_offset: int = 8,
    next_ifd: int = 0,
    tail: bytes = b"",
) -> bytes:
    """A little-endian EXIF block ("Exif\\0\\0" + TIFF header + IFD0). Each entry is (tag,
    type, count, 4-byte value field), written as given, however absurd."""
    table = b"".join(
        struct.pack("<HHI", t, k, n) + v.ljust(4, b"\x00")[:4] for t, k, n, v in entries
    )
    ifd = struct.pack("<H", len(entries)) + table + struct.pack("<I", next_ifd)
    return b"Exif\x00\x00" + b"II*\x00" + struct.pack("<I", ifd_offset) + ifd + tail


def with_app1(jpeg: bytes, payload: bytes) -> bytes:
    """``jpeg`` with an APP1 segment carrying ``payload`` right after its SOI marker."""
    segment = b"\xff\xe1" + struct.pack(">H", len(payload) + 2) + payload
    return jpeg[:2] + segment + jpeg[2:]


def with_jpeg_size(jpeg: bytes, width: int, height: int) -> bytes:
    """``jpeg`` whose frame header (SOF0/SOF2) claims another size."""
    for marker in (b"\xff\xc0", b"\xff\xc2"):
        at = jpeg.find(marker)
        if at >= 0:
            return jpeg[: at + 5] + struct.pack(">HH", height, width) + jpeg[at + 9 :]
    raise ValueError("no SOF0/SOF2 marker")
