"""Verification and identification figures the way the field reports them.

All functions take plain arrays of scores (higher = more similar) and labels
(True = same person, "genuine"); nothing here knows about models.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

Scores = npt.NDArray[np.float64]


@dataclass(frozen=True)
class Roc:
    """False-match and true-match rates for every distinct threshold, thresholds descending.

    At ``thresholds[i]`` a pair is declared "same" when its score >= the threshold.
    """

    thresholds: Scores
    fmr: Scores
    tmr: Scores


def roc(scores: npt.ArrayLike, labels: npt.ArrayLike) -> Roc:
    s = np.asarray(scores, dtype=np.float64)
    y = np.asarray(labels, dtype=bool)
    n_gen, n_imp = int(y.sum()), int((~y).sum())
    if n_gen == 0 or n_imp == 0:
        raise ValueError("need both genuine and impostor pairs")
    order = np.argsort(-s, kind="stable")
    s, y = s[order], y[order]
    last = np.r_[np.flatnonzero(s[1:] != s[:-1]), len(s) - 1]  # last index of each score
    tp = np.cumsum(y)[last]
    fp = np.cumsum(~y)[last]
    thresholds = np.r_[np.inf, s[last]]
    return Roc(thresholds, np.r_[0.0, fp / n_imp], np.r_[0.0, tp / n_gen])


def auc(curve: Roc) -> float:
    return float(np.trapezoid(curve.tmr, curve.fmr))


def threshold_at_fmr(impostor_scores: npt.ArrayLike, fmr: float) -> float:
    """The smallest threshold whose false-match rate on these impostors is <= ``fmr``.

    A pair matches when score >= threshold, so the threshold sits just above the
    k-th highest impostor score, k = floor(fmr * n).
    """
    imp = np.sort(np.asarray(impostor_scores, dtype=np.float64))[::-1]
    if len(imp) == 0:
        raise ValueError("no impostor scores")
    allowed = int(np.floor(fmr * len(imp)))
    if allowed >= len(imp):
        return float(imp[-1])
    return float(np.nextafter(imp[allowed], np.inf))


def tar_at_fmr(scores: npt.ArrayLike, labels: npt.ArrayLike, fmr: float) -> tuple[float, float]:
    """(true-accept rate, threshold) at a target false-match rate."""
    s = np.asarray(scores, dtype=np.float64)
    y = np.asarray(labels, dtype=bool)
    thr = threshold_at_fmr(s[~y], fmr)
    return float(np.mean(s[y] >= thr)), thr


def eer(scores: npt.ArrayLike, labels: npt.ArrayLike) -> float:
    """Equal error rate: where false-match rate equals false-non-match rate."""
    curve = roc(scores, labels)
    fnmr = 1.0 - curve.tmr
    i = int(np.argmin(np.abs(fnmr - curve.fmr)))
    return float((fnmr[i] + curve.fmr[i]) / 2)


def best_threshold(scores: npt.ArrayLike, labels: npt.ArrayLike) -> tuple[float, float]:
    """(accuracy, threshold) maximising accuracy on these pairs (the LFW training step)."""
    s = np.asarray(scores, dtype=np.float64)
    y = np.asarray(labels, dtype=bool)
    finite = s[np.isfinite(s)]
    cand = np.unique(finite) if len(finite) else np.zeros(1)
    mids = np.r_[cand[0] - 1e-6, (cand[1:] + cand[:-1]) / 2, cand[-1] + 1e-6]
    # correct(t) = genuine pairs with s >= t + impostor pairs with s < t, for every
    # candidate at once from sorted scores (O(n log n), not one pass per candidate)
    gen = np.sort(s[y])
    imp = np.sort(s[~y])
    accepted_gen = len(gen) - np.searchsorted(gen, mids, side="left")
    rejected_imp = np.searchsorted(imp, mids, side="left")
    acc: Scores = np.asarray((accepted_gen + rejected_imp) / len(s), dtype=np.float64)
    i = int(np.argmax(acc))
    return float(acc[i]), float(mids[i])


def kfold_accuracy(
    scores: npt.ArrayLike, labels: npt.ArrayLike, folds: npt.ArrayLike
) -> tuple[float, float, list[float]]:
    """LFW protocol: for each fold, pick the threshold on the other folds, test on this one.

    Returns (mean accuracy, standard deviation, per-fold thresholds).
    """
    s = np.asarray(scores, dtype=np.float64)
    y = np.asarray(labels, dtype=bool)
    f = np.asarray(folds)
    accs, thrs = [], []
    for k in np.unique(f):
        train, test = f != k, f == k
        _, thr = best_threshold(s[train], y[train])
        accs.append(float(np.mean((s[test] >= thr) == y[test])))
        thrs.append(thr)
    return float(np.mean(accs)), float(np.std(accs)), thrs


def assign_folds(n: int, k: int = 10, seed: int = 0) -> npt.NDArray[np.int64]:
    """Fold numbers 0..k-1 for n pairs, shuffled with a fixed seed (for non-LFW pair lists)."""
    rng = np.random.default_rng(seed)
    return rng.permutation(np.arange(n) % k).astype(np.int64)


def cmc(ranks: npt.ArrayLike, max_rank: int) -> Scores:
    """Cumulative match characteristic: ``out[r-1]`` = fraction of mated searches whose
    true identity is at rank <= r (ranks start at 1; a failed search has rank inf)."""
    r = np.asarray(ranks, dtype=np.float64)
    if len(r) == 0:
        raise ValueError("no mated searches")
    ks = np.arange(1, max_rank + 1)
    return np.searchsorted(np.sort(r), ks, side="right") / len(r)


def fnir_at_fpir(
    mated_scores: npt.ArrayLike,
    mated_hit: npt.ArrayLike,
    nonmated_scores: npt.ArrayLike,
    fpir: float,
) -> tuple[float, float]:
    """Open-set identification (ISO/IEC 19795-1, NIST FRVT 1:N): (FNIR, threshold) at a
    target false-positive identification rate.

    ``mated_scores``/``mated_hit``: the top candidate's score for each mated search, and
    whether that candidate is the right person. ``nonmated_scores``: the top score of each
    search for someone not enrolled. The threshold is the smallest with FPIR <= target; a
    mated search is a miss unless its top candidate is right and scores >= the threshold.
    """
    thr = threshold_at_fmr(nonmated_scores, fpir)
    s = np.asarray(mated_scores, dtype=np.float64)
    hit = np.asarray(mated_hit, dtype=bool)
    return float(np.mean(~(hit & (s >= thr)))), thr


def resolvable(n_impostors: int, rate: float) -> bool:
    """Whether ``n_impostors`` comparisons can measure a false-match rate this small
    (at least one impostor may pass: n * rate >= 1)."""
    return n_impostors * rate >= 1.0 - 1e-9
