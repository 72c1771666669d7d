"""Reading and hashing files that may be hostile: FIFOs, devices, loops, huge or sparse files.

A path is ``stat``-ed first: anything but a regular file (directory, FIFO, device, socket) is
refused without being opened for reading, so a FIFO named ``photo.jpg`` cannot hang a
command and a device cannot be read. The file is then opened with ``O_NONBLOCK`` and checked
again with ``fstat`` (the path may have been swapped in between; ``O_NONBLOCK`` makes even
that open return at once). A file over the size limit is refused before reading, and at
most ``limit + 1`` bytes are ever read (a file that grows while it is read is caught too).

Every refusal is an :class:`~faceprint.errors.ImageError` (or the error class the caller
names) whose message says what the path is and why it cannot be used.
"""

from __future__ import annotations

import errno
import hashlib
import os
import stat

from faceprint.errors import FaceprintError, ImageError
from faceprint.io.limits import human_bytes, max_file_bytes

PathLike = str | os.PathLike[str]
_CHUNK = 1 << 20
_OPEN_FLAGS = os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | getattr(os, "O_CLOEXEC", 0)

_KINDS = (
    (stat.S_ISDIR, "is a directory, not an image"),
    (stat.S_ISFIFO, "is a named pipe (FIFO), not a regular file; refused without reading it"),
    (stat.S_ISCHR, "is a character device, not a regular file; refused without reading it"),
    (stat.S_ISBLK, "is a block device, not a regular file; refused without reading it"),
    (stat.S_ISSOCK, "is a socket, not a regular file; refused without reading it"),
)


def _why_not(path: PathLike, exc: OSError) -> str:
    """A person's explanation of why ``stat``/``open`` failed on ``path``."""
    code = exc.errno
    if code == errno.ENOENT:
        if os.path.lexists(path):
            return "is a broken symbolic link (its target does not exist)"
        return "no such file"
    if code == errno.ELOOP:
        return "is a symbolic link loop (too many levels of symbolic links)"
    if code == errno.ENOTDIR:
        return "no such file (a part of the path is not a directory)"
    if code in (errno.EACCES, errno.EPERM):
        return "permission denied (the file or a folder on its path is not readable)"
    if code == errno.ENAMETOOLONG:
        return "file name too long"
    return f"cannot read file ({exc.strerror or exc})"


def _check_kind(path: PathLike, st: os.stat_result, error: type[FaceprintError]) -> None:
    if stat.S_ISREG(st.st_mode):
        return
    for test, what in _KINDS:
        if test(st.st_mode):
            raise error(f"{path}: {what}")
    raise error(f"{path}: not a regular file; refused without reading it")


_HINT = " (set FACEPRINT_MAX_FILE_BYTES to raise it)"


def _check_size(
    path: PathLike, size: int, limit: int | None, error: type[FaceprintError], hint: str
) -> None:
    if limit is not None and size > limit:
        raise error(
            f"{path}: file is {human_bytes(size)}, larger than the {human_bytes(limit)} limit{hint}"
        )


def open_regular(
    path: PathLike,
    limit: int | None = None,
    error: type[FaceprintError] = ImageError,
    hint: str = "",
) -> tuple[int, os.stat_result]:
    """Open a regular file for reading: (file descriptor, its fstat). The caller closes it.

    Refuses (``error``) missing files, broken links, link loops, unreadable files, anything
    that is not a regular file, and files larger than ``limit`` bytes (None: no limit).
    """
    try:
        before = os.stat(path)
    except OSError as exc:
        raise error(f"{path}: {_why_not(path, exc)}") from exc
    except ValueError as exc:  # an embedded NUL byte
        raise error(f"{os.fsdecode(path)!r}: not a usable file name ({exc})") from exc
    _check_kind(path, before, error)
    _check_size(path, before.st_size, limit, error, hint)
    try:
        fd = os.open(path, _OPEN_FLAGS)
    except OSError as exc:
        raise error(f"{path}: {_why_not(path, exc)}") from exc
    try:
        st = os.fstat(fd)
        _check_kind(path, st, error)  # swapped for something else since the stat
        _check_size(path, st.st_size, limit, error, hint)
    except BaseException:
        os.close(fd)
        raise
    return fd, st


def _read_fd(fd: int, first: int, limit: int) -> bytes:
    """Everything in ``fd`` up to ``limit + 1`` bytes: one read of ``first`` bytes (the size
    ``fstat`` gave, plus one), then more only if the file held more than it said (it grew,
    or it is a /proc file whose size reads as 0)."""
    parts: list[bytes] = []
    total = 0
    want = first
    while total <= limit:
        chunk = os.read(fd, min(want, limit + 1 - total))
        if not chunk:
            break
        parts.append(chunk)
        total += len(chunk)
        want = _CHUNK
    return parts[0] if len(parts) == 1 else b"".join(parts)


def read_file(
    path: PathLike, limit: int | None = None, error: type[FaceprintError] = ImageError
) -> bytes:
    """The whole content of a regular, non-empty file of at most ``limit`` bytes.

    ``limit`` defaults to :func:`~faceprint.io.limits.max_file_bytes` (the decode budget
    unless ``FACEPRINT_MAX_FILE_BYTES`` is set). Never reads more than ``limit + 1`` bytes.
    """
    hint = _HINT if limit is None else ""
    limit = max_file_bytes() if limit is None else limit
    fd, st = open_regular(path, limit, error, hint)
    try:
        try:
            data = _read_fd(fd, min(st.st_size, limit) + 1, limit)
        except OSError as exc:
            raise error(f"{path}: {_why_not(path, exc)}") from exc
    finally:
        os.close(fd)
    if len(data) > limit:
        raise error(
            f"{path}: file is larger than the {human_bytes(limit)} limit{hint} (it grew while "
            "it was read, or its size was not known in advance)"
        )
    if not data:
        what = ", not an image" if error is ImageError else ""
        raise error(f"{path}: empty file (0 bytes){what}")
    return data


def file_sha256(
    path: PathLike, limit: int | None = None, error: type[FaceprintError] = ImageError
) -> str:
    """sha256 (hex) of a regular file's content, streamed in 1 MiB chunks.

    The same checks as :func:`read_file` (no FIFOs, devices, loops; at most ``limit`` bytes,
    default :func:`~faceprint.io.limits.max_file_bytes`; give a larger one for big files such
    as models, e.g. ``limit=2**40``). An empty file is hashed (the hash is well defined).
    """
    hint = _HINT if limit is None else ""
    limit = max_file_bytes() if limit is None else limit
    fd, _ = open_regular(path, limit, error, hint)
    digest = hashlib.sha256()
    total = 0
    try:
        while True:
            try:
                chunk = os.read(fd, min(_CHUNK, limit + 1 - total))
            except OSError as exc:
                raise error(f"{path}: {_why_not(path, exc)}") from exc
            if not chunk:
                break
            total += len(chunk)
            if total > limit:
                raise error(
                    f"{path}: file is larger than the {human_bytes(limit)} limit{hint} (it "
                    "grew while it was read, or its size was not known in advance)"
                )
            digest.update(chunk)
    finally:
        os.close(fd)
    return digest.hexdigest()
