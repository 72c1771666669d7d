"""Constrained agglomerative merging on a sparse graph, in rounds (reciprocal best pairs).

Nodes are groups of faces (a single face, or faces a human joined) with the sum of their
templates, their size and their constraint tokens. A pair of nodes is a candidate when some
face of one has some face of the other among its nearest neighbours. The linkage of two
clusters is computed from the template sums, exactly and over *all* their face pairs:

* ``average``: the mean cosine over every pair of faces, ``S_a . S_b / (n_a n_b)``;
* ``centroid``: the cosine of the two mean templates, ``S_a . S_b / (|S_a| |S_b|)``.

Each round every cluster finds its best candidate (highest linkage, ties to the lower node
number); pairs that are each other's best are merged, all at once, unless their tokens
conflict (the pair is then never considered again; constraints only grow as clusters
grow, so that is final). For a reducible linkage like average linkage this is the result
of ordinary one-pair-at-a-time agglomeration (reciprocal-nearest-neighbour merging), at a
cost of a few vectorised passes over the edges. So that a large cluster does not take one
round per face it gathers, a cluster that is in no pair this round also absorbs, in the
same round, every smaller cluster whose best candidate it is (and which absorbs nothing
itself): no chains form, since neither side of such a merge moves elsewhere in that
round. Nodes marked ``frozen`` (existing clusters in incremental mode) never merge with
each other, and absorb free clusters of any size this way.

Node numbers follow the faces' key order and a merged cluster keeps the lower number, so
the result depends only on the faces, never on the order they were given in.
"""

from __future__ import annotations

import numpy as np

from faceprint.library.decisions import Tokens, merge_tokens

LINKAGES = ("average", "centroid")
#: Edges scored per block (bounds the scratch memory of one round).
_BLOCK = 1 << 18


def linkage_scores(
    sums: np.ndarray, counts: np.ndarray, a: np.ndarray, b: np.ndarray, linkage: str
) -> np.ndarray:
    """Linkage of node pairs (a[i], b[i])."""
    out = np.empty(len(a), dtype=np.float64)
    if linkage == "centroid":
        norm = np.sqrt(np.einsum("ij,ij->i", sums, sums))
        denom = np.maximum(norm, 1e-12)
    else:
        denom = counts.astype(np.float64)
    for s in range(0, len(a), _BLOCK):
        aa, bb = a[s : s + _BLOCK], b[s : s + _BLOCK]
        dots = np.einsum("ij,ij->i", sums[aa], sums[bb])
        out[s : s + _BLOCK] = dots / (denom[aa] * denom[bb])
    return out


def _best(a: np.ndarray, b: np.ndarray, score: np.ndarray, size: int) -> np.ndarray:
    """For every node its best neighbour over undirected edges (-1 if none)."""
    src = np.concatenate([a, b])
    dst = np.concatenate([b, a])
    sc = np.concatenate([score, score])
    order = np.lexsort((dst, -sc, src))
    src, dst = src[order], dst[order]
    first = np.ones(len(src), dtype=bool)
    first[1:] = src[1:] != src[:-1]
    best = np.full(size, -1, dtype=np.int64)
    best[src[first]] = dst[first]
    return best


def agglomerate(
    sums: np.ndarray,
    counts: np.ndarray,
    tokens: list[Tokens],
    edges: np.ndarray,
    threshold: float,
    linkage: str = "average",
    frozen: np.ndarray | None = None,
    pair_threshold: float | None = None,
) -> np.ndarray:
    """Merge nodes; returns ``root``: for each node, the node number of its cluster.

    ``sums`` (C x D, float64) and ``counts`` (C,) are updated in place for the roots;
    ``tokens`` too. ``edges``: (E, 2) candidate node pairs. ``pair_threshold`` (>=
    ``threshold``), if given, is what two single faces need to merge.
    """
    if linkage not in LINKAGES:
        raise ValueError(f"unknown linkage {linkage!r}; choose one of {', '.join(LINKAGES)}")
    size = len(counts)
    root = np.arange(size, dtype=np.int64)
    frz = np.zeros(size, dtype=bool) if frozen is None else frozen.astype(bool).copy()
    a = np.minimum(edges[:, 0], edges[:, 1]).astype(np.int64)
    b = np.maximum(edges[:, 0], edges[:, 1]).astype(np.int64)
    score = np.zeros(len(a))
    dirty = np.ones(len(a), dtype=bool)
    while True:
        a, b = root[a], root[b]
        lo, hi = np.minimum(a, b), np.maximum(a, b)
        keep = lo != hi
        lo, hi, score, dirty = lo[keep], hi[keep], score[keep], dirty[keep]
        _, first = np.unique(lo * size + hi, return_index=True)
        a, b, score, dirty = lo[first], hi[first], score[first], dirty[first]
        score[dirty] = linkage_scores(sums, counts, a[dirty], b[dirty], linkage)
        good = (score >= threshold) & ~(frz[a] & frz[b])
        a, b, score = a[good], b[good], score[good]
        ready = np.ones(len(a), dtype=bool)
        if pair_threshold is not None:
            ready = (score >= pair_threshold) | (counts[a] > 1) | (counts[b] > 1)
        if not ready.any():
            break
        best = _best(a[ready], b[ready], score[ready], size)
        nodes = np.flatnonzero(best >= 0)
        partner = best[nodes]
        mutual = (best[partner] == nodes) & (nodes < partner)
        pairs = list(zip(nodes[mutual].tolist(), partner[mutual].tolist(), strict=True))
        # a cluster not in a pair absorbs the smaller clusters whose best it is, best first
        # (frozen clusters absorb any free one): one round instead of one per face
        lone = ~np.isin(nodes, nodes[mutual]) & ~np.isin(nodes, partner[mutual])
        lone_target = ~np.isin(partner, nodes[mutual]) & ~np.isin(partner, partner[mutual])
        star = lone & lone_target & (best[partner] != nodes) & ~frz[nodes]
        star &= frz[partner] | (counts[nodes] <= counts[partner])
        fz, fr = partner[star], nodes[star]
        fs = linkage_scores(sums, counts, fz, fr, linkage)
        order = np.lexsort((fr, -fs, fz))
        absorb = list(zip(fz[order].tolist(), fr[order].tolist(), strict=True))
        targets = set(fz.tolist())
        absorb = [(x, y) for x, y in absorb if y not in targets]
        banned: list[int] = []
        touched = np.zeros(size, dtype=bool)
        for x, y in pairs + absorb:
            if root[x] != x or root[y] != y:
                continue
            joined = merge_tokens(tokens[x], tokens[y])
            if joined is None:
                banned.append(min(x, y) * size + max(x, y))
                continue
            keep_id, gone = (x, y) if x < y else (y, x)
            if frz[gone] and not frz[keep_id]:
                keep_id, gone = gone, keep_id
            tokens[keep_id] = joined
            tokens[gone] = {}
            sums[keep_id] += sums[gone]
            counts[keep_id] += counts[gone]
            frz[keep_id] |= frz[gone]
            root[gone] = keep_id
            touched[keep_id] = touched[gone] = True
        if not banned and not touched.any():
            break
        if banned:
            keep = ~np.isin(a * size + b, np.array(banned, dtype=np.int64))
            a, b, score = a[keep], b[keep], score[keep]
        root = root[root]
        dirty = touched[a] | touched[b]
    # final roots (every merge pointed straight at a root that was a root then)
    while True:
        nxt = root[root]
        if np.array_equal(nxt, root):
            return root
        root = nxt
