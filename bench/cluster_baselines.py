"""Baselines and metrics for bench/cluster_quality.py: pairwise and BCubed scores, Chinese
Whispers (dlib / face_recognition), Immich's incremental core-point method, DBSCAN, and
partition comparisons. Pure numpy; faces are rows of L2-normalised templates.
"""

from __future__ import annotations

from typing import Protocol

import numpy as np


class Labelled(Protocol):
    """What the metrics need of a library: labels ("" = unlabelled) and labelled indices."""

    @property
    def label(self) -> np.ndarray: ...

    @property
    def labelled(self) -> np.ndarray: ...


def clean(labels: np.ndarray) -> np.ndarray:
    """Clusters of one face become unassigned (-1), whatever the method."""
    lab = np.asarray(labels, dtype=np.int64).copy()
    ok = lab >= 0
    _, inv, cnt = np.unique(lab[ok], return_inverse=True, return_counts=True)
    single = np.zeros(len(lab), dtype=bool)
    single[np.flatnonzero(ok)[cnt[inv] == 1]] = True
    lab[single] = -1
    return lab


def metrics(pred: np.ndarray, lib: Labelled) -> dict[str, float]:
    """Pairwise and BCubed precision / recall / F1 over the labelled faces; unassigned faces
    count as clusters of their own. ``split``: true people (2+ labelled faces) spread over
    several groups; ``mixed``: groups holding labelled faces of several people."""
    full = clean(pred)
    idx = lib.labelled
    lab = full[idx].copy()
    truth = lib.label[idx]
    solo = lab < 0
    lab[solo] = lab.max(initial=0) + 1 + np.arange(int(solo.sum()))
    _, t = np.unique(truth, return_inverse=True)
    _, p = np.unique(lab, return_inverse=True)
    both = np.zeros((p.max() + 1, t.max() + 1), dtype=np.int64)
    np.add.at(both, (p, t), 1)
    ps, ts = both.sum(1), both.sum(0)
    tp = float((both * (both - 1)).sum() / 2)
    pred_pairs = float((ps * (ps - 1)).sum() / 2)
    true_pairs = float((ts * (ts - 1)).sum() / 2)
    cell = both[p, t]
    bp = float(np.mean(cell / ps[p]))
    br = float(np.mean(cell / ts[t]))
    pp = tp / pred_pairs if pred_pairs else 1.0
    pr = tp / true_pairs if true_pairs else 1.0
    true_single = ts[t] == 1
    clusters = np.unique(full[full >= 0])
    nonzero = both > 0
    split = int((nonzero[:, ts > 1].sum(0) > 1).sum())  # people spread over several groups
    mixed = int((nonzero[ps > 1].sum(1) > 1).sum())  # groups holding several people
    return {
        "pP": pp, "pR": pr, "pF1": 2 * pp * pr / (pp + pr) if pp + pr else 0.0,
        "bP": bp, "bR": br, "bF1": 2 * bp * br / (bp + br),
        "clusters": float(len(clusters)),
        "people": float((ts > 1).sum()),
        "single_unassigned": float(np.mean(solo[true_single])),
        "split": float(split), "mixed": float(mixed),
    }  # fmt: skip


def chinese_whispers(
    t: np.ndarray, threshold: float, seed: int = 0, rounds: int = 100
) -> np.ndarray:
    """dlib's chinese_whispers: edges (weight 1, self-loops included) between faces with
    similarity >= threshold; ``rounds`` x N times a random node takes the label with the
    highest edge weight among its neighbours (lowest label on ties)."""
    n = len(t)
    adj = [np.flatnonzero(row >= threshold) for row in (t @ t.T)]
    labels = np.arange(n)
    rng = np.random.default_rng(seed)
    for i in rng.integers(0, n, size=rounds * n).tolist():
        nb = labels[adj[i]]
        if len(nb) > 1:
            vals, cnt = np.unique(nb, return_counts=True)
            labels[i] = vals[np.argmax(cnt)]
    return labels


def immich(t: np.ndarray, score: np.ndarray, order: np.ndarray, threshold: float,
           min_faces: int = 3, min_score: float = 0.7) -> np.ndarray:  # fmt: skip
    """Immich's person.service (handleRecognizeFaces) on a library: faces with detector
    score >= min_score, in ``order``; each face's ``min_faces`` nearest faces (itself
    included) within the threshold; join the first match that has a person, else the
    nearest face with a person; create a person for a core face (min_faces matches); other
    faces are retried once at the end ("deferred") and can only join."""
    n = len(t)
    person = np.full(n, -1, dtype=np.int64)
    ok = score >= min_score
    sims = t @ t[ok].T
    ids = np.flatnonzero(ok)
    nxt = 0
    deferred: list[int] = []
    for phase in (0, 1):
        for i in order[ok[order]].tolist() if phase == 0 else deferred:
            s = sims[i]
            within = np.flatnonzero(s >= threshold)
            matches = ids[within[np.argsort(-s[within], kind="stable")[:min_faces]]]
            if min_faces > 1 and len(matches) <= 1:
                continue
            core = len(matches) >= min_faces
            if not core and phase == 0:
                deferred.append(i)
                continue
            have = [m for m in matches.tolist() if person[m] >= 0]
            pid = person[have[0]] if have else -1
            if pid < 0:
                named = within[person[ids[within]] >= 0]
                if len(named):
                    pid = person[ids[named[np.argmax(s[named])]]]
            if pid < 0 and core:
                pid, nxt = nxt, nxt + 1
            person[i] = pid
    return person


def dbscan(t: np.ndarray, threshold: float, min_pts: int = 3) -> np.ndarray:
    """DBSCAN with eps = 1 - threshold in cosine distance; min_pts counts the point itself;
    border points go to the first core cluster that reaches them (index order)."""
    n = len(t)
    adj = [np.flatnonzero(row >= threshold) for row in (t @ t.T)]
    core = np.array([len(a) >= min_pts for a in adj])
    labels = np.full(n, -1, dtype=np.int64)
    c = 0
    for i in range(n):
        if not core[i] or labels[i] >= 0:
            continue
        labels[i] = c
        stack = [i]
        while stack:
            j = stack.pop()
            for k in adj[j].tolist():
                if labels[k] < 0:
                    labels[k] = c
                    if core[k]:
                        stack.append(k)
        c += 1
    return labels


def partition(labels: np.ndarray) -> set[frozenset[int]]:
    lab = clean(labels)
    groups: dict[int, set[int]] = {}
    for i, c in enumerate(lab.tolist()):
        if c >= 0:
            groups.setdefault(c, set()).add(i)
    return {frozenset(g) for g in groups.values()}


def matched(before: np.ndarray, after: np.ndarray, singles: bool = False) -> np.ndarray:
    """For each face, whether its 'after' cluster is the one its 'before' cluster became
    (clusters matched by largest overlap; unassigned matches unassigned). Clusters of one
    face count as unassigned unless ``singles`` (faceprint keeps a named face alone)."""
    b, a = (before, after) if singles else (clean(before), clean(after))
    best: dict[int, int] = {}
    for c in np.unique(a[a >= 0]).tolist():
        vals, cnt = np.unique(b[a == c], return_counts=True)
        best[c] = int(vals[np.lexsort((vals, -cnt))][0])
    mapped = np.array([best.get(c, -1) if c >= 0 else -1 for c in a.tolist()])
    return mapped == b


def moved(before: np.ndarray, after: np.ndarray) -> int:
    return int((~matched(before, after)).sum())
