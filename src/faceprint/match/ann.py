"""Approximate 1:N search for large galleries: FAISS IVF with 8-bit storage, refined exactly.

Templates live in an inverted-file index (``IndexIVFScalarQuantizer``, inner product,
one byte per dimension) keyed by their gallery template ids, so enrolling adds rows and
forgetting removes them without retraining. A search over-fetches templates, re-scores
them exactly against the float32 templates, and reduces them to the best template per
person, so the scores it reports are the exact cosine similarities of the candidates.

FAISS is optional (``pip install 'faceprint[scale]'``); :func:`faiss_module` says
whether it is there.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

from faceprint.errors import GalleryError
from faceprint.match.search import F32, I64, Hit, combine, mean_templates, weights_of

#: Templates fetched per wanted person before reducing to people (then refined exactly).
FETCH_PER_PERSON = 16
#: Fewest templates fetched per probe.
MIN_FETCH = 64
#: Inverted lists probed per search (of 1024 at 1M templates). bench/search_scale.py, 1M
#: synthetic templates drawn from the real templates' distribution (impostor cosines
#: 0.78-0.90, as real ones): recall@1 vs exact 0.926 at 8, 0.965 at 16, 0.992 at 32, 1.000
#: at 64, for 0.34 / 0.66 / 0.98 / 1.81 ms per probe (exact: 6.6 ms batched, 54 ms one at
#: a time). Random unit vectors (faceprint 0.1's bench) had given 1.0 at 16.
DEFAULT_NPROBE = 64
#: Training vectors per inverted list (FAISS wants at least 39).
TRAIN_PER_LIST = 40
#: Retrain instead of adding incrementally once this share of the index is new.
RETRAIN_SHARE = 0.5


def faiss_module() -> ModuleType | None:
    """The ``faiss`` module, or None when faiss-cpu is not installed."""
    try:
        import faiss
    except ImportError:
        return None
    return faiss


def _faiss() -> Any:
    faiss = faiss_module()
    if faiss is None:
        raise GalleryError(
            "approximate search needs faiss-cpu: pip install 'faceprint[scale]' "
            "(or use the exact index)"
        )
    return faiss


def default_nlist(n: int) -> int:
    """Inverted lists for n templates: about sqrt(n), a power of two, 64..16384."""
    target = max(64.0, min(16384.0, float(np.sqrt(max(n, 1)))))
    return int(2 ** round(np.log2(target)))


class AnnIndex:
    """IVF-SQ8 index over gallery templates, best template per person, exact re-scoring.

    ``embeddings`` (N, D) float32 L2-normalised, ``ids`` the N gallery template ids,
    ``people`` the N person indices (as :class:`~faceprint.match.search.ExactIndex`).
    """

    def __init__(self, index: Any, embeddings: F32, ids: I64, people: I64) -> None:
        self._index = index
        self.nprobe = DEFAULT_NPROBE
        #: True when the index differs from what was last saved (or was never saved).
        self.changed = True
        self._means: F32 = np.zeros((0, 1), np.float32)
        self._set(embeddings, ids, people)
        self.set_quality(None)

    def set_quality(self, quality: Any) -> None:
        """Template qualities (in ``ids`` order) for the people's mean templates."""
        order = np.argsort(self._people, kind="stable")
        grouped = self._people[order]
        starts = np.zeros(0, np.int64)
        if len(grouped):
            starts = np.flatnonzero(np.r_[True, grouped[1:] != grouped[:-1]])
        weights = weights_of(quality, len(self._ids))[order]
        means = mean_templates(self._emb[order], starts, weights)
        self._means = np.zeros((int(grouped.max(initial=-1)) + 1, self.dim), np.float32)
        self._means[grouped[starts]] = means

    def _set(self, embeddings: F32, ids: I64, people: I64) -> None:
        ids = np.asarray(ids, dtype=np.int64)
        emb = np.asarray(embeddings, dtype=np.float32)
        people = np.asarray(people, dtype=np.int64)
        if len(ids) > 1 and not bool(np.all(ids[:-1] < ids[1:])):  # the store's are sorted
            order = np.argsort(ids, kind="stable")
            ids, emb, people = ids[order], emb[order], people[order]
        self._ids = ids
        self._emb = np.ascontiguousarray(emb)  # kept for exact re-scoring (no copy if sorted)
        self._people = people

    # -- building -------------------------------------------------------------------------
    @classmethod
    def train(
        cls, embeddings: F32, ids: I64, people: I64, *, nlist: int | None = None, seed: int = 0
    ) -> AnnIndex:
        """Train the coarse quantiser on a sample of the templates and add all of them."""
        faiss = _faiss()
        emb = np.ascontiguousarray(embeddings, dtype=np.float32)
        if emb.ndim != 2 or len(emb) != len(ids) or len(ids) != len(people):
            raise ValueError("embeddings must be (N, D) with one id and one person per row")
        n, dim = emb.shape
        nlist = nlist or default_nlist(n)
        nlist = max(1, min(nlist, n // TRAIN_PER_LIST or 1))
        quantizer = faiss.IndexFlatIP(dim)
        index = faiss.IndexIVFScalarQuantizer(
            quantizer, dim, nlist, faiss.ScalarQuantizer.QT_8bit, faiss.METRIC_INNER_PRODUCT
        )
        rng = np.random.default_rng(seed)
        sample = emb[rng.choice(n, min(n, nlist * TRAIN_PER_LIST * 2), replace=False)]
        index.train(sample)
        index.add_with_ids(emb, np.asarray(ids, dtype=np.int64))
        return cls(index, emb, ids, people)

    def sync(self, embeddings: F32, ids: I64, people: I64) -> AnnIndex:
        """Bring the index to exactly these templates: add new ids, remove missing ones.

        Retrains from scratch when most of the index would be new (the coarse centroids
        were learnt on too little of it). Returns the index to use (self or a new one).
        """
        ids = np.asarray(ids, dtype=np.int64)
        emb = np.asarray(embeddings, dtype=np.float32)
        gone = np.setdiff1d(self._ids, ids, assume_unique=True)
        new_mask = ~np.isin(ids, self._ids, assume_unique=True)
        n_new = int(new_mask.sum())
        if len(ids) == 0 or n_new > RETRAIN_SHARE * len(ids) or emb.shape[1] != self.dim:
            return AnnIndex.train(emb, ids, people)
        self.changed = self.changed or bool(len(gone) or n_new)
        if len(gone):
            self._index.remove_ids(gone)
        if n_new:
            self._index.add_with_ids(np.ascontiguousarray(emb[new_mask]), ids[new_mask])
        self._set(emb, ids, people)
        return self

    # -- persistence ----------------------------------------------------------------------
    def save(self, path: str | Path, generation: int) -> None:
        """Write ``path`` (the FAISS index) and ``path.json`` (its manifest), atomically."""
        faiss = _faiss()
        path = Path(path)
        tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")  # one per writer
        faiss.write_index(self._index, str(tmp))
        os.replace(tmp, path)
        manifest = {
            "format": 1,
            "generation": generation,
            "dim": self.dim,
            "templates": len(self),
            "nlist": int(self._index.nlist),
            "ids": self._ids.tolist(),
        }
        mtmp = path.with_name(f"{path.name}.json.{os.getpid()}.tmp")
        mtmp.write_text(json.dumps(manifest))
        os.replace(mtmp, manifest_path(path))
        self.changed = False

    @classmethod
    def load(
        cls, path: str | Path, embeddings: F32, ids: I64, people: I64
    ) -> tuple[AnnIndex, int] | None:
        """A persisted index synced to these templates, and its stored generation; or None
        when there is no usable file (missing, unreadable, or not matching its manifest)."""
        faiss = _faiss()
        path = Path(path)
        try:
            manifest = json.loads(manifest_path(path).read_text())
            index = faiss.read_index(str(path))
        except (OSError, ValueError, RuntimeError):
            return None
        stored = np.asarray(manifest.get("ids", []), dtype=np.int64)
        if index.ntotal != len(stored) or manifest.get("dim") != embeddings.shape[1]:
            return None
        ann = cls.__new__(cls)
        ann._index = index
        ann.nprobe = DEFAULT_NPROBE
        ann.changed = False
        ann._ids = np.sort(stored)
        ann._emb = np.zeros((0, embeddings.shape[1]), np.float32)
        ann._people = np.zeros(0, np.int64)
        return ann.sync(embeddings, ids, people), int(manifest.get("generation", -1))

    # -- searching ------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self._ids)

    @property
    def dim(self) -> int:
        return int(self._index.d)

    @property
    def index_bytes(self) -> int:
        """Bytes of the FAISS index itself (codes, ids, centroids)."""
        return (
            int(self._index.ntotal) * (int(self._index.code_size) + 8)
            + int(self._index.nlist) * self.dim * 4
        )

    def search(self, probes: F32, k: int = 1) -> list[list[Hit]]:
        """Top-k people for each probe, best first (approximate candidates, exact scores)."""
        probes = np.ascontiguousarray(np.atleast_2d(np.asarray(probes, dtype=np.float32)))
        if len(self._ids) == 0:
            return [[] for _ in range(len(probes))]
        if probes.shape[1] != self.dim:
            raise ValueError(
                f"probe has {probes.shape[1]} dimensions, gallery templates have {self.dim}"
            )
        fetch = min(len(self._ids), max(MIN_FETCH, FETCH_PER_PERSON * k))
        self._index.nprobe = self.nprobe
        _, found = self._index.search(probes, fetch)
        out: list[list[Hit]] = []
        for probe, row in zip(probes, found, strict=True):
            row = row[row >= 0]
            rows = np.searchsorted(self._ids, row)
            scores = self._emb[rows] @ probe  # exact re-scoring
            best: dict[int, float] = {}
            for person, score in zip(self._people[rows].tolist(), scores.tolist(), strict=True):
                if score > best.get(person, -2.0):
                    best[person] = score
            people = np.fromiter(best, dtype=np.int64, count=len(best))
            bests = np.fromiter(best.values(), dtype=np.float32, count=len(best))
            combined = combine(bests, self._means[people] @ probe)
            order = np.argsort(-combined, kind="stable")[:k]
            out.append([Hit(int(people[i]), float(combined[i])) for i in order])
        return out


def manifest_path(path: str | Path) -> Path:
    path = Path(path)
    return path.with_name(path.name + ".json")
