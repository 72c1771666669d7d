"""Exact 1:N cosine search over L2-normalised templates, best template per person."""

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


class ExactIndex:
    """Brute-force cosine search with BLAS; exact, so it is the reference for any other index.

    Templates are grouped by person; a probe's score for a person is the best of that
    person's templates ("best template per person").
    """

    def __init__(self, embeddings: F32, people: I64) -> None:
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

    def _search_chunk(self, probes: F32, k: int) -> list[list[Hit]]:
        scores = probes @ self._emb.T  # (Q, N), BLAS sgemm
        per_person = np.maximum.reduceat(scores, self._starts, axis=1)  # (Q, P)
        del scores
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
