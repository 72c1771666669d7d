"""Nearest neighbours by cosine similarity without an N x N matrix.

``neighbours(base, queries, k, floor)`` returns, for each query row, the indices and
similarities of its ``k`` most similar base rows with similarity >= ``floor`` (-1 where
there are fewer). Exact by default: blocked matrix products (BLAS), memory bounded by
:data:`BLOCK_BYTES` per block whatever the size. With ``approximate=True`` and faiss-cpu
installed (the ``scale`` extra), an inverted-file index (exact inner products inside the
probed lists), for libraries of hundreds of thousands of faces and more. Large exact
searches use faiss's flat index when it is installed (the same neighbours, faster).
"""

from __future__ import annotations

import numpy as np

from faceprint.errors import FaceprintError

#: Scratch memory for one block of the similarity matrix.
BLOCK_BYTES = 64 << 20
#: Searches of more than this many pairs use faiss's exact flat index when installed.
FLAT_ABOVE = 1 << 24
#: Lists probed by the approximate index, and base vectors per list.
PROBES = 24
PER_LIST = 256


def _exact(
    base: np.ndarray, queries: np.ndarray, k: int, floor: float, skip_self: bool
) -> tuple[np.ndarray, np.ndarray]:
    n, m = len(base), len(queries)
    idx = np.full((m, k), -1, dtype=np.int64)
    sim = np.full((m, k), -np.inf, dtype=np.float32)
    rows = max(1, min(m, BLOCK_BYTES // max(1, 4 * n)))
    kk = min(k + (1 if skip_self else 0), n)
    for start in range(0, m, rows):
        block = queries[start : start + rows] @ base.T
        if skip_self:
            r = np.arange(len(block))
            block[r, start + r] = -np.inf
        part = np.argpartition(-block, kk - 1, axis=1)[:, :kk] if kk < n else None
        cand = part if part is not None else np.broadcast_to(np.arange(n), (len(block), n))
        vals = np.take_along_axis(block, cand, axis=1)
        # most similar first; ties by the smaller index (deterministic)
        order = np.lexsort((cand, -vals), axis=1)[:, :k]
        top = np.take_along_axis(cand, order, axis=1)
        top_vals = np.take_along_axis(vals, order, axis=1)
        w = top.shape[1]
        idx[start : start + len(block), :w] = top
        sim[start : start + len(block), :w] = top_vals
    idx[sim < floor] = -1
    sim[idx < 0] = -np.inf
    return idx, sim


def _flat(
    base: np.ndarray, queries: np.ndarray, k: int, floor: float, skip_self: bool
) -> tuple[np.ndarray, np.ndarray] | None:
    """Exact search with faiss's flat index (same results as _exact, faster), or None."""
    try:
        import faiss
    except ImportError:
        return None
    index = faiss.IndexFlatIP(base.shape[1])
    index.add(np.ascontiguousarray(base, dtype=np.float32))
    return _finish(index, queries, k, floor, skip_self, len(base))


def _finish(
    index: object, queries: np.ndarray, k: int, floor: float, skip_self: bool, n: int
) -> tuple[np.ndarray, np.ndarray]:
    kk = min(k + (1 if skip_self else 0), n)
    sim, idx = index.search(np.ascontiguousarray(queries, dtype=np.float32), kk)  # type: ignore[attr-defined]
    if skip_self:
        own = idx == np.arange(len(queries))[:, None]
        sim = np.where(own, -np.inf, sim)
    order = np.lexsort((idx, -sim), axis=1)[:, :k]
    idx, sim = np.take_along_axis(idx, order, 1), np.take_along_axis(sim, order, 1)
    idx = idx.astype(np.int64)
    if idx.shape[1] < k:
        pad = k - idx.shape[1]
        idx = np.pad(idx, ((0, 0), (0, pad)), constant_values=-1)
        sim = np.pad(sim, ((0, 0), (0, pad)), constant_values=-np.inf)
    idx[(sim < floor) | ~np.isfinite(sim)] = -1
    sim = np.where(idx < 0, -np.inf, sim).astype(np.float32)
    return idx, sim


def _approximate(
    base: np.ndarray, queries: np.ndarray, k: int, floor: float, skip_self: bool
) -> tuple[np.ndarray, np.ndarray]:
    try:
        import faiss
    except ImportError as exc:
        raise FaceprintError(
            "approximate neighbour search needs faiss-cpu (pip install 'faceprint[scale]')"
        ) from exc
    n, d = base.shape
    lists = max(1, min(65536, n // PER_LIST))
    quantizer = faiss.IndexFlatIP(d)
    index = faiss.IndexIVFFlat(quantizer, d, lists, faiss.METRIC_INNER_PRODUCT)
    train = base[np.linspace(0, n - 1, min(n, lists * 64)).astype(np.int64)]
    index.train(np.ascontiguousarray(train, dtype=np.float32))
    index.add(np.ascontiguousarray(base, dtype=np.float32))
    index.nprobe = min(PROBES, lists)
    return _finish(index, queries, k, floor, skip_self, n)


def neighbours(
    base: np.ndarray,
    queries: np.ndarray | None = None,
    k: int = 16,
    floor: float = -1.0,
    *,
    approximate: bool = False,
) -> tuple[np.ndarray, np.ndarray]:
    """(indices, similarities), each queries x k; without ``queries`` every base row is a
    query and is not its own neighbour."""
    if k < 1:
        raise FaceprintError("the number of neighbours must be at least 1")
    skip_self = queries is None
    q = base if queries is None else queries
    if len(base) == 0 or len(q) == 0:
        return np.full((len(q), k), -1, dtype=np.int64), np.full((len(q), k), -np.inf, "f4")
    if approximate:
        return _approximate(base, q, k, floor, skip_self)
    if len(base) * len(q) >= FLAT_ABOVE:
        found = _flat(base, q, k, floor, skip_self)
        if found is not None:
            return found
    return _exact(base, q, k, floor, skip_self)
