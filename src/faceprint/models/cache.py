"""The one cache of converted models: dlib networks and Keras files turned into ONNX, the
dynamic-size YuNet graph, the shape predictor's parsed arrays.

A conversion is keyed by the source file's sha256, the converter's name and the
converter's version (bump it when its output changes), and lives in
``<cache>/converted/<name>-v<version>-<source sha256>.<suffix>`` next to a small JSON
record of the same key and the sha256 of the converted bytes. Then:

* a cached file that is not the one recorded (damaged, truncated, half-copied) is rebuilt,
  never used: a file with the recorded size and mtime is the one written (files are only
  ever replaced whole), any other one is hashed and compared with the recorded sha256;
* conversions are written through a temporary file and ``os.replace``, and the record
  after the file, so no reader ever sees half a file;
* a build holds an exclusive ``fcntl`` lock on ``<file>.lock``: two processes converting
  the same model at once build it once, the second waits and reads the first's result;
* files are created 0600 and directories 0700 (a model may be private);
* a cache directory that cannot be written (read-only, not a directory) is not fatal:
  conversions go to a private temporary directory for this process, with a note once.
"""

from __future__ import annotations

import atexit
import contextlib
import hashlib
import json
import os
import shutil
import stat
import tempfile
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from faceprint.errors import ModelError
from faceprint.log import note
from faceprint.models import store

try:
    import fcntl
except ImportError:  # pragma: no cover - not POSIX: only the in-process lock
    fcntl = None  # type: ignore[assignment]


@dataclass(frozen=True)
class Converter:
    """A conversion of a source model file into bytes worth caching."""

    name: str
    version: int
    build: Callable[[Path], bytes]
    suffix: str = ".onnx"

    def file_name(self, source_sha256: str) -> str:
        return f"{self.name}-v{self.version}-{source_sha256}{self.suffix}"


_thread_lock = threading.RLock()
_verified: dict[str, tuple[int, int]] = {}  # path -> (size, mtime_ns) checked this process
_fallback: Path | None = None


def _private_dir(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077 and path.stat().st_uid == os.getuid():
        with contextlib.suppress(OSError):
            path.chmod(0o700)
    return path


def directory() -> Path:
    """``<cache>/converted``; ModelError if it cannot be had (see :func:`converted`)."""
    base = store.cache_dir() / "converted"
    try:
        return _private_dir(base)
    except OSError as exc:
        raise ModelError(f"cannot create {base}: {exc.strerror or exc}") from exc


def _fallback_dir(reason: str) -> Path:
    global _fallback
    if _fallback is None:
        try:
            _fallback = Path(tempfile.mkdtemp(prefix="faceprint-converted-"))
        except OSError as exc:
            raise ModelError(
                f"cannot keep converted models anywhere ({reason}; no temporary directory "
                f"either: {exc.strerror or exc}); set FACEPRINT_CACHE_DIR to a writable directory"
            ) from exc
        atexit.register(shutil.rmtree, _fallback, True)
        note(
            f"{reason}; converted models are kept in {_fallback} for this "
            f"run only (set FACEPRINT_CACHE_DIR to a writable directory to keep them)"
        )
    return _fallback


def _digest(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _record(target: Path) -> Path:
    return target.with_name(target.name + ".json")


def _valid(target: Path, key: dict[str, object]) -> bool:
    """Does target hold the conversion its record describes, for this key?

    A file whose size and mtime are those recorded when it was written is the file that
    was written (it is only ever replaced whole); any other is hashed against the record.
    """
    try:
        st = target.stat()
        if _verified.get(str(target)) == (st.st_size, st.st_mtime_ns):
            return True
        record = json.loads(_record(target).read_bytes())
        if not isinstance(record, dict) or any(record.get(k) != v for k, v in key.items()):
            return False
        if record.get("size") != st.st_size:
            return False
        if record.get("mtime_ns") != st.st_mtime_ns:
            if record.get("sha256") != _digest(target):
                return False
            with contextlib.suppress(OSError):  # e.g. restored from a backup: note the new stat
                _write_record(target, {**record, "mtime_ns": st.st_mtime_ns})
    except (OSError, ValueError):
        return False
    _verified[str(target)] = (st.st_size, st.st_mtime_ns)
    return True


@contextlib.contextmanager
def _exclusive(target: Path) -> Iterator[None]:
    """Hold the inter-process lock of one cached file (and the in-process lock)."""
    with _thread_lock:
        fd = os.open(target.with_name(target.name + ".lock"), os.O_RDWR | os.O_CREAT, 0o600)
        try:
            if fcntl is not None:
                fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # closing releases the flock


def _build(source: Path, converter: Converter) -> bytes:
    try:
        return converter.build(source)
    except ModelError:
        raise
    except (OSError, ValueError) as exc:
        raise ModelError(f"cannot convert {source} ({converter.name}): {exc}") from exc


def _write_record(target: Path, record: dict[str, object]) -> None:
    store.atomic_write(_record(target), json.dumps(record).encode())


def _write(target: Path, data: bytes, key: dict[str, object]) -> None:
    store.atomic_write(target, data)
    st = target.stat()
    digest = hashlib.sha256(data).hexdigest()
    _write_record(target, {**key, "size": len(data), "mtime_ns": st.st_mtime_ns, "sha256": digest})
    _verified[str(target)] = (st.st_size, st.st_mtime_ns)


def converted(source: Path, converter: Converter, source_sha256: str | None = None) -> Path:
    """The path of ``converter``'s output for ``source``, building and caching it once.

    ``source_sha256`` may be given when already known (e.g. a pinned, verified file).
    """
    sha = source_sha256 or store.sha256_of(source)
    key: dict[str, object] = {
        "converter": converter.name,
        "version": converter.version,
        "source_sha256": sha,
    }
    name = converter.file_name(sha)
    try:
        folder = directory()
    except ModelError as exc:
        folder = _fallback_dir(str(exc))
    target = folder / name
    if _valid(target, key):
        return target
    try:
        with _exclusive(target):
            if not _valid(target, key):  # another process may have built it meanwhile
                _write(target, _build(source, converter), key)
        return target
    except OSError as exc:  # a read-only cache: build for this process only
        reason = f"cannot write to the cache directory {folder}: {exc.strerror or exc}"
    target = _fallback_dir(reason) / name
    try:
        with _thread_lock:
            if not _valid(target, key):
                _write(target, _build(source, converter), key)
    except OSError as exc:
        raise ModelError(
            f"cannot keep the converted {source.name} anywhere ({reason}; "
            f"{target.parent}: {exc.strerror or exc}); set FACEPRINT_CACHE_DIR to a writable "
            f"directory"
        ) from exc
    return target
