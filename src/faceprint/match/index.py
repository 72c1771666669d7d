"""Choosing the search index: exact below a measured size, approximate (FAISS) above it.

Both kinds answer ``search(probes, k) -> list[list[Hit]]`` with the best template per
person, so the gallery does not care which one it has. The approximate index is kept
next to the gallery file (``<gallery>.faiss`` and ``<gallery>.faiss.json``) and brought
in line with the store's templates by adding and removing ids, not by rebuilding.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from faceprint.errors import GalleryError
from faceprint.log import note
from faceprint.match.search import F32, I64, ExactIndex, Hit

#: Templates from which the approximate index is used. Measured with bench/search_scale.py
#: (2 cores): exact search costs about 1 ms per probe per 100k templates in batches
#: (5 ms at 100k, 10-55 ms at 1M depending on load) and the approximate one 1-2 ms, but
#: that needs training (3 s at 100k, 35-45 s at 1M) and a second file; below 200k
#: templates exact search stays near 10 ms per probe, so it is not worth it.
ANN_MIN_TEMPLATES = 200_000

#: ``pgvector`` (PostgreSQL only) searches in the database; in-process it acts as ``auto``.
KINDS = ("auto", "exact", "ann", "pgvector")

_warned: set[str] = set()


class SearchIndex(Protocol):
    def __len__(self) -> int: ...

    @property
    def dim(self) -> int: ...

    def search(self, probes: F32, k: int = 1) -> list[list[Hit]]: ...


def index_kind() -> str:
    """$FACEPRINT_INDEX (auto, exact or ann), default auto."""
    kind = os.environ.get("FACEPRINT_INDEX", "auto") or "auto"
    if kind not in KINDS:
        raise GalleryError(f"unknown index {kind!r} in FACEPRINT_INDEX; choose {', '.join(KINDS)}")
    return kind


def index_path(gallery: str | Path) -> Path:
    """Where the approximate index of a gallery file is kept."""
    gallery = Path(gallery)
    return gallery.with_name(gallery.name + ".faiss")


def build_index(
    embeddings: F32,
    people: I64,
    *,
    ids: I64 | None = None,
    path: str | Path | None = None,
    generation: int | None = None,
    previous: SearchIndex | None = None,
    kind: str | None = None,
    quality: Any = None,
) -> SearchIndex:
    """An index over templates (rows of ``embeddings``, person index per row).

    ``kind`` "exact", "ann" or "auto" (default: $FACEPRINT_INDEX, else auto: approximate
    from ANN_MIN_TEMPLATES templates when faiss is installed). For the approximate index,
    ``ids`` are the templates' stable ids (default 0..N-1); ``previous`` (the index this
    one replaces) and the persisted index at ``path`` are updated incrementally; the
    result is saved to ``path`` with ``generation`` when its templates changed.
    """
    from faceprint.match import ann

    kind = kind or index_kind()
    if kind not in KINDS:
        raise GalleryError(f"unknown index {kind!r}; choose {', '.join(KINDS)}")
    if kind == "pgvector":
        kind = "auto"
    n = len(embeddings)
    if kind == "exact" or n == 0 or (kind == "auto" and n < ANN_MIN_TEMPLATES):
        return ExactIndex(embeddings, people, quality)
    if ann.faiss_module() is None:
        if "faiss" not in _warned:
            _warned.add("faiss")
            note(
                f"faiss-cpu is not installed, so {n:,} templates are searched "
                "exactly (slower); pip install 'faceprint[scale]' for the approximate index"
            )
        return ExactIndex(embeddings, people, quality)
    ids = np.arange(n, dtype=np.int64) if ids is None else np.asarray(ids, dtype=np.int64)
    if len(ids) != n or len(people) != n:
        raise ValueError("embeddings, ids and people must have one row per template")
    index: ann.AnnIndex | None = None
    if isinstance(previous, ann.AnnIndex):
        index = previous.sync(embeddings, ids, people)
    elif path is not None:
        loaded = ann.AnnIndex.load(path, embeddings, ids, people)
        if loaded is not None:
            index = loaded[0]
    if index is None:
        index = ann.AnnIndex.train(embeddings, ids, people)
    index.set_quality(quality)  # the person score's mean templates (ids in ascending order)
    if path is not None and generation is not None and index.changed:
        try:
            index.save(path, generation)
        except OSError as exc:  # a read-only folder: search still works, from memory
            if "save" not in _warned:
                _warned.add("save")
                note(f"cannot save {path} ({exc})")
    return index
