"""Hostile file-system inputs and non-images with an image's name.

Registered into :mod:`tests.hostile` (see there). A FIFO, device or socket must be refused
without being opened for reading (opening a FIFO for reading blocks until a writer comes).
"""

from __future__ import annotations

import os
import shutil
import socket
import struct
from pathlib import Path

from PIL import Image

from tests.hostile import Case, Context, builder
from tests.hostile_images import RED, encode


def _named(ctx: Context, name: str, data: bytes, match: str, note: str = "") -> Case:
    path = ctx.dir / f"{name}.jpg"
    path.write_bytes(data)
    return Case(name, "", path, "ImageError", match=match, note=note)


@builder("not_image")
def not_images(ctx: Context) -> list[Case]:
    zipped = b"PK\x03\x04" + b"\x14\x00" * 10 + b"hello.txt" + b"\x00" * 40
    mp4 = struct.pack(">I", 24) + b"ftypisom\x00\x00\x02\x00isomiso2" + b"\x00" * 64
    return [
        _named(ctx, "pdf", b"%PDF-1.7\n1 0 obj << /Type /Catalog >> endobj\n%%EOF\n", "PDF"),
        _named(ctx, "zip", zipped, "ZIP"),
        _named(ctx, "html", b"<!DOCTYPE html><html><body>hello</body></html>", "HTML"),
        _named(
            ctx, "svg", b'<?xml version="1.0"?><svg xmlns="http://www.w3.org/2000/svg"/>', "SVG"
        ),
        _named(ctx, "json", b'{"image": "not really"}', "JSON"),
        _named(ctx, "empty", b"", "empty"),
        _named(
            ctx,
            "random_bytes",
            bytes((i * 7919 + 13) % 256 for i in range(4096)),
            "not a recognised image format",
        ),  # fmt: skip
        _named(ctx, "mp4_video", mp4, "video"),
        _named(ctx, "photoshop", b"8BPS\x00\x01" + b"\x00" * 64, "Photoshop"),
        _named(ctx, "windows_icon", b"\x00\x00\x01\x00\x01\x00" + b"\x00" * 64, "icon"),
        _named(ctx, "elf_program", b"\x7fELF\x02\x01\x01" + b"\x00" * 64, "program"),
        _named(ctx, "gzip", b"\x1f\x8b\x08" + b"\x00" * 32, "gzip"),
        _named(ctx, "plain_text", b"just some words, not a photo\n" * 4, "text file"),
        _named(ctx, "netpbm", b"P6\n64 48\n255\n" + b"\x00" * 64 * 48 * 3, "Netpbm"),
    ]


def _fs(ctx: Context, name: str, path: Path, match: str, **kw: object) -> Case:
    return Case(name, "", path, "ImageError", match=match, **kw)  # type: ignore[arg-type]


def _fifo(ctx: Context) -> Case:
    path = ctx.dir / "fifo.jpg"
    os.mkfifo(path)
    return _fs(ctx, "fifo_named_jpg", path, "named pipe", note="must not hang")


def _socket(ctx: Context) -> Case:
    path = ctx.dir / "socket.jpg"
    if len(os.fsencode(path)) > 100:
        return _fs(ctx, "unix_socket_named_jpg", path, "socket", skip="path too long to bind")
    with socket.socket(socket.AF_UNIX) as sock:
        sock.bind(os.fspath(path))
    return _fs(ctx, "unix_socket_named_jpg", path, "socket")


def _unreadable(ctx: Context) -> Case:
    path = ctx.dir / "unreadable.jpg"
    path.write_bytes(encode(Image.new("RGB", (64, 48), RED), "JPEG"))
    path.chmod(0)
    return _fs(ctx, "unreadable_chmod_000", path, "permission denied", unprivileged=True)


def _sparse(ctx: Context) -> Case:
    path = ctx.dir / "sparse_3gb.jpg"
    with path.open("wb") as fh:
        fh.write(encode(Image.new("RGB", (64, 48), RED), "JPEG"))
        fh.truncate(3 * 10**9)
    return _fs(ctx, "sparse_3gb", path, "3 GB, larger than", note="refused without reading")


@builder("filesystem")
def filesystem(ctx: Context) -> list[Case]:
    d = ctx.dir
    photo = encode(Image.new("RGB", (64, 48), RED), "JPEG", quality=95)
    (d / "loop_a.jpg").symlink_to(d / "loop_b.jpg")
    (d / "loop_b.jpg").symlink_to(d / "loop_a.jpg")
    (d / "dangling.jpg").symlink_to(d / "no-such-target.jpg")
    (d / "folder.jpg").mkdir()
    (d / "zero.jpg").symlink_to("/dev/zero")
    (d / "regular.jpg").write_bytes(photo)
    long_name = d / ("n" * 251 + ".jpg")
    long_name.write_bytes(photo)
    odd = Path(os.fsdecode(os.fsencode(d) + b"/caf\xe9-\xff\xfe.jpg"))
    face = ctx.face_photo
    if face is not None:
        shutil.copy(face, odd)
    else:
        odd.write_bytes(photo)
    size = (64, 48)
    return [
        _fifo(ctx),
        _socket(ctx),
        _unreadable(ctx),
        _sparse(ctx),
        _fs(ctx, "symlink_loop", d / "loop_a.jpg", "symbolic link loop"),
        _fs(ctx, "dangling_symlink", d / "dangling.jpg", "broken symbolic link"),
        _fs(ctx, "directory_named_jpg", d / "folder.jpg", "is a directory"),
        _fs(ctx, "dev_zero", Path("/dev/zero"), "character device"),
        _fs(ctx, "symlink_to_dev_zero", d / "zero.jpg", "character device"),
        _fs(ctx, "missing_file", d / "missing.jpg", "no such file"),
        _fs(ctx, "path_through_a_file", d / "regular.jpg" / "x.jpg", "not a directory"),
        _fs(ctx, "name_too_long", d / ("n" * 300 + ".jpg"), "file name too long"),
        _fs(ctx, "nul_in_name", Path(str(d / "nul") + "\x00.jpg"), "not a usable file name",
            cli=False, note="a NUL cannot be in a Linux file name, nor in a command line"),
        Case("name_255_bytes", "", long_name, "ok", size=size, colour=RED, tolerance=3.0),
        Case("name_not_utf8", "", odd, "ok", faces=1 if face is not None else 0,
             size=None if face is not None else size,
             note="bytes \\xe9\\xff\\xfe in the name; holds a face when a photo is given"),
    ]  # fmt: skip
