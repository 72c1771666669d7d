"""Exact 1:N cosine search over L2-normalised templates, and the one rule for a person's
score when they have several templates.

**Person score** (:func:`person_score`, used by every index, by 1:1 verification against a
person, by the encrypted search and by the evaluation harness): the mean of

* the best template's cosine similarity, and
* the cosine similarity to the person's quality-weighted mean template (the weighted sum
  of their templates, renormalised; a template's weight is its quality, at least 0.05,
  1 when unknown).

With one template both are the same cosine. Chosen by measurement (bench/person_templates.py,
25 people of ../shared/faces and lfw-dev with 3+ photos, 2 enrolled each, 1,415 never
enrolled people as non-mated searches, 10 splits): rank-1 98.8 % best-of, 99.5 % mean,
99.5 % both; FNIR at FPIR 1e-2 1.5 % best-of, 0.6 % mean, 0.5 % both.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

F32 = npt.NDArray[np.float32]
I64 = npt.NDArray[np.int64]

#: Upper bound on the probe-by-template score matrix held at once (bytes).
SCORE_BYTES = 256 * 1024 * 1024


@dataclass(frozen=True)
class Hit:
    """One candidate for a probe: a person (by index into the index's people) and a score."""

    person: int
    score: float


#: Lowest weight of a template in its person's mean template.
MIN_WEIGHT = 0.05


def weights_of(quality: npt.ArrayLike | None, n: int) -> F32:
    """Template weights from their qualities (None or NaN: 1)."""
    if quality is None:
        return np.ones(n, dtype=np.float32)
    q = np.asarray(quality, dtype=np.float32).reshape(-1)
    return np.where(np.isfinite(q), np.maximum(q, MIN_WEIGHT), 1.0).astype(np.float32)


def mean_templates(embeddings: F32, starts: I64, weights: F32) -> F32:
    """One renormalised weighted-mean template per person (rows grouped, ``starts``)."""
    if len(starts) == 0:
        return np.zeros((0, embeddings.shape[1] if embeddings.ndim == 2 else 1), np.float32)
    sums = np.add.reduceat(embeddings * weights[:, None], starts, axis=0)
    norms = np.linalg.norm(sums, axis=1, keepdims=True)
    return (sums / np.maximum(norms, 1e-12)).astype(np.float32)


def combine(best: npt.ArrayLike, mean: npt.ArrayLike) -> npt.NDArray[np.float32]:
    """The person score from best-template and mean-template similarities."""
    return np.asarray(0.5 * (np.asarray(best) + np.asarray(mean)), dtype=np.float32)


def person_score(templates: F32, probe: F32, quality: npt.ArrayLike | None = None) -> float:
    """The person score of one probe against one person's templates (module docstring)."""
    t = np.atleast_2d(np.asarray(templates, dtype=np.float32))
    p = np.asarray(probe, dtype=np.float32).reshape(-1)
    mean = mean_templates(t, np.zeros(1, np.int64), weights_of(quality, len(t)))[0]
    return float(combine(np.max(t @ p), mean @ p))


class ExactIndex:
    """Brute-force cosine search with BLAS; exact, so it is the reference for any other index.

    Templates are grouped by person; a probe's score for a person is the person score
    (:func:`person_score`: best and quality-weighted mean template).
    """

    def __init__(self, embeddings: F32, people: I64, quality: npt.ArrayLike | None = None) -> None:
        if embeddings.ndim != 2 or len(embeddings) != len(people):
            raise ValueError("embeddings must be (N, D) with one person id per row")
        order = np.argsort(people, kind="stable")
        self._emb = np.ascontiguousarray(embeddings[order], dtype=np.float32)
        self._people = np.asarray(people, dtype=np.int64)[order]
        if len(self._people):
            starts = np.flatnonzero(np.r_[True, self._people[1:] != self._people[:-1]])
        else:
            starts = np.zeros(0, dtype=np.int64)
        self._starts = starts
        self._person_ids = self._people[starts] if len(starts) else np.zeros(0, np.int64)
        self._means = mean_templates(self._emb, starts, weights_of(quality, len(people))[order])

    def __len__(self) -> int:
        return len(self._emb)

    @property
    def dim(self) -> int:
        return int(self._emb.shape[1])

    def search(self, probes: F32, k: int = 1) -> list[list[Hit]]:
        """Top-k people for each probe (rows of ``probes``), best first."""
        probes = np.atleast_2d(np.asarray(probes, dtype=np.float32))
        if len(self._emb) == 0:
            return [[] for _ in range(len(probes))]
        if probes.shape[1] != self._emb.shape[1]:
            raise ValueError(
                f"probe has {probes.shape[1]} dimensions, gallery templates have {self.dim}"
            )
        # Probes in chunks: one sgemm per chunk, and the (chunk, N) score matrix stays
        # below SCORE_BYTES however many probes come at once.
        step = max(1, min(len(probes), SCORE_BYTES // (4 * len(self._emb))))
        out: list[list[Hit]] = []
        for lo in range(0, len(probes), step):
            out.extend(self._search_chunk(probes[lo : lo + step], k))
        return out

    @property
    def person_ids(self) -> I64:
        """The people, in the column order of :meth:`person_scores`."""
        return self._person_ids

    def person_scores(self, probes: F32) -> npt.NDArray[np.float32]:
        """(probes x people) person scores, columns in :attr:`person_ids` order."""
        probes = np.atleast_2d(np.asarray(probes, dtype=np.float32))
        scores = probes @ self._emb.T  # (Q, N), BLAS sgemm
        best = np.maximum.reduceat(scores, self._starts, axis=1)  # (Q, P)
        del scores
        return combine(best, probes @ self._means.T)

    def _search_chunk(self, probes: F32, k: int) -> list[list[Hit]]:
        per_person = self.person_scores(probes)
        n_people = per_person.shape[1]
        k = min(k, n_people)
        if k < n_people:
            top = np.argpartition(per_person, n_people - k, axis=1)[:, n_people - k :]
        else:
            top = np.tile(np.arange(n_people), (len(probes), 1))
        out: list[list[Hit]] = []
        for row, cols in enumerate(top):
            vals = per_person[row, cols]
            best = cols[np.argsort(-vals, kind="stable")]
            out.append([Hit(int(self._person_ids[c]), float(per_person[row, c])) for c in best])
        return out


def cosine(a: F32, b: F32) -> float:
    """Cosine similarity of two vectors (normalises both)."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    denom = float(np.linalg.norm(a) * np.linalg.norm(b))
    return float(a @ b / denom) if denom > 0 else 0.0
