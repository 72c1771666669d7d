"""The records of the store contract (what a store takes and gives back) and the checks
every write goes through, whatever the engine."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from faceprint.errors import GalleryError
from faceprint.match.search import F32

#: Longest person name accepted.
MAX_NAME = 200


@dataclass(frozen=True)
class Person:
    """A person in the gallery, with how many templates they have."""

    name: str
    templates: int
    metadata: dict[str, Any] = field(default_factory=dict)
    created: float = 0.0


@dataclass(frozen=True)
class Template:
    id: int
    name: str
    embedding: F32
    pack: str
    image_sha256: str | None
    quality: float | None
    created: float


@dataclass(frozen=True)
class Candidate:
    """A gallery person proposed for a probe, with the best template's cosine similarity."""

    name: str
    similarity: float


@dataclass(frozen=True)
class NewTemplate:
    """A template to store: the vector, the content hash of what it was made from (the
    photo file, for enrollment) and its quality."""

    embedding: F32
    image_sha256: str | None = None
    quality: float | None = None


@dataclass
class Added:
    """What a write stored: new template ids, and the photos already there (skipped)."""

    ids: list[int] = field(default_factory=list)
    already: list[str] = field(default_factory=list)


def check_templates(templates: Sequence[NewTemplate]) -> list[NewTemplate]:
    """Templates fit for storage: finite, non-zero, one dimension, L2-normalised float32."""
    if not templates:
        raise GalleryError("nothing to enroll: no face templates given")
    out = []
    for t in templates:
        vec = np.asarray(t.embedding, dtype=np.float32).reshape(-1)
        norm = float(np.linalg.norm(vec)) if vec.size else 0.0
        if vec.size == 0 or not np.all(np.isfinite(vec)) or norm == 0.0:
            raise GalleryError("refusing a template that is empty, zero or not finite")
        if len(vec) != len(np.asarray(templates[0].embedding).reshape(-1)):
            raise GalleryError("templates of one call must have the same length")
        q = t.quality
        if q is not None and not (np.isfinite(q) and 0.0 <= q <= 1.0):
            raise GalleryError(f"template quality {q} is not in [0, 1]")
        digest = t.image_sha256
        if digest is not None and (len(digest) > 128 or not digest.isprintable()):
            raise GalleryError("invalid image hash")
        out.append(NewTemplate((vec / norm).astype(np.float32), digest, q))
    return out


#: Characters no name may hold besides controls: bidi overrides and isolates (a name
#: that reads differently from what it is), U+FFFD (text that was not valid UTF-8), line
#: and paragraph separators. Zero-width joiners stay (Persian and Indic names use them).
_REFUSED = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069\ufffd\u2028\u2029")


def _bad_char(c: str) -> bool:
    o = ord(c)
    return o < 32 or 127 <= o < 160 or 0xD800 <= o < 0xE000 or c in _REFUSED


def check_name(name: str) -> str:
    if not isinstance(name, str):
        raise GalleryError("a person name must be text")
    name = name.strip()
    if not name or len(name) > MAX_NAME or any(_bad_char(c) for c in name):
        raise GalleryError(
            f"invalid person name {name[:40]!r}: 1 to {MAX_NAME} characters, no control "
            "characters, bidi overrides or U+FFFD (text that was not UTF-8)"
        )
    return name


def _json(metadata: dict[str, Any] | None) -> str:
    try:
        return json.dumps(metadata or {}, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise GalleryError(f"person metadata must be JSON: {exc}") from None


def _metadata(value: Any, where: str) -> dict[str, Any]:
    if isinstance(value, dict):
        return value
    try:
        data = json.loads(value)
    except (TypeError, ValueError):
        raise GalleryError(f"{where}: a person's stored metadata is damaged") from None
    if not isinstance(data, dict):
        raise GalleryError(f"{where}: a person's stored metadata is damaged")
    return data


@contextlib.contextmanager
def _stored(where: str) -> Iterator[None]:
    """Values read back from storage: one of the wrong type (a tampered SQLite file, whose
    columns hold anything) is a damaged gallery, never a crash."""
    try:
        yield
    except (TypeError, ValueError, OverflowError) as exc:
        raise GalleryError(f"{where}: damaged gallery (a stored value: {exc})") from None


def _text(value: Any) -> str:
    if not isinstance(value, str):
        raise TypeError(f"{value!r} is not text")
    return value
