"""Error rates per group at one global threshold, the way NIST's demographic evaluation
(FRVT Part 3, NISTIR 8280) reports them.

Every comparison (a verification pair, or a search in identification) is put in a *cell*:
a group ``(g, g)`` or a pair of groups ``(g1, g2)`` (for a pair whose photos are in two
groups; identification and per-photo automatic slices use the probe's group only, so all
their cells are groups). For each cell and each operating threshold (the pack's calibrated
thresholds and the evaluation's own, see :class:`Operating`):

- the false-positive rate (FMR for pairs, FPIR for searches) over the cell's negative
  comparisons (impostor pairs, non-mated searches) and the false-negative rate (FNMR,
  FNIR) over its positive ones (genuine pairs, mated searches), each with a 95% Wilson
  score interval. A false-positive rate is "cannot be measured" (``rate`` None, never 0)
  when the cell has no negatives, or fewer than 1/target of them and none passed; the
  count and the interval are still given. With fewer than 1/target negatives of which
  some passed, the rate is given and flagged ``resolved`` False.
- for a group, the threshold that would give each target rate inside the group (and its
  false-negative rate there), when the group has enough negatives; and a DET curve.
- across groups, the ratio of the highest to the lowest rate, over the groups whose rate
  can be measured (NIST's max/min; for a false-negative rate, groups with at least
  :data:`RATIO_MIN_POSITIVES` positives); unbounded (None, with a note) when the lowest is 0.

All functions take plain arrays; nothing here knows about models or files.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from faceprint.eval import metrics

#: Two-sided 95% normal quantile.
Z95 = 1.959963984540054
#: At most this many points are kept of a DET curve (on a log grid of the FMR).
DET_POINTS = 80
#: A group's false-negative rate enters the max/min ratio only over this many positives
#: (as a false-positive rate of 0.1 needs 10 negatives).
RATIO_MIN_POSITIVES = 10

Cell = tuple[str, str]


@dataclass(frozen=True)
class Operating:
    """A threshold the rates are measured at: the pack's calibrated threshold for a target
    FMR (``source`` "pack": what faceprint decides with), or the evaluation's own threshold
    giving ``target`` over all its negatives (``source`` "eval")."""

    name: str
    similarity: float
    target: float
    source: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "similarity": self.similarity,
            "target": self.target,
            "source": self.source,
        }


@dataclass(frozen=True)
class Names:
    """What the rates are called for one protocol."""

    fp: str  # false-positive rate key: fmr / fpir
    fn: str  # false-negative rate key: fnmr / fnir
    positive: str  # genuine / mated
    negative: str  # impostor / nonmated
    positives: str  # "genuine pairs" / "mated searches"
    negatives: str  # "impostor pairs" / "non-mated searches"


PAIRS = Names("fmr", "fnmr", "genuine", "impostor", "genuine pairs", "impostor pairs")
SEARCHES = Names("fpir", "fnir", "mated", "nonmated", "mated searches", "non-mated searches")


def wilson(errors: int, n: int, z: float = Z95) -> tuple[float, float]:
    """Wilson score interval of a binomial proportion ``errors / n``."""
    if n <= 0 or not 0 <= errors <= n:
        raise ValueError(f"need 0 <= errors <= n and n > 0, got {errors} of {n}")
    p = errors / n
    z2 = z * z
    denom = 1 + z2 / n
    centre = (p + z2 / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n)) / denom
    lo = 0.0 if errors == 0 else max(0.0, centre - half)
    hi = 1.0 if errors == n else min(1.0, centre + half)
    return lo, hi


def rate(errors: int, n: int, *, of: str, target: float | None = None) -> dict[str, Any]:
    """A rate with its interval. With a ``target``, fewer than 1/target comparisons cannot
    measure a rate of 0 (``rate`` None, "cannot be measured"); a rate above 0 is still
    given, flagged ``resolved`` False (it is above what the comparisons can resolve)."""
    out: dict[str, Any] = {"errors": int(errors), "n": int(n), "rate": None, "ci95": None}
    if n == 0:
        return {
            **out,
            "measurable": False,
            "resolved": False,
            "note": f"cannot be measured: no {of}",
        }
    out["ci95"] = list(wilson(int(errors), int(n)))
    if target is None or metrics.resolvable(n, target):
        return {**out, "rate": errors / n, "measurable": True, "resolved": True, "note": None}
    need = math.ceil(1 / target - 1e-9)
    if errors == 0:
        note = f"cannot be measured: {n} {of}, a rate of {target:g} needs at least {need}"
        return {**out, "measurable": False, "resolved": False, "note": note}
    note = f"{n} {of}, fewer than the {need} a rate of {target:g} needs: above what they resolve"
    return {**out, "rate": errors / n, "measurable": True, "resolved": False, "note": note}


def det_points(positive: np.ndarray, negative: np.ndarray) -> dict[str, Any] | None:
    """The DET curve (lowest false-negative rate at each false-positive rate), kept at up
    to :data:`DET_POINTS` operating points on a log grid; None without both kinds."""
    if len(positive) == 0 or len(negative) == 0:
        return None
    s = np.r_[positive, negative]
    y = np.r_[np.ones(len(positive), bool), np.zeros(len(negative), bool)]
    curve = metrics.roc(s, y)
    grid = np.r_[0.0, np.geomspace(1 / len(negative), 1.0, DET_POINTS - 1)]
    # the last ROC point (lowest threshold) whose false-positive rate is within each grid value
    idx = np.unique(np.searchsorted(curve.fmr, grid * (1 + 1e-9), side="right") - 1)
    return {
        "fp": [float(curve.fmr[i]) for i in idx],
        "fn": [float(1 - curve.tmr[i]) for i in idx],
        "negatives": len(negative),
        "positives": len(positive),
    }


def _cells(cells: Sequence[Cell | None]) -> dict[Cell, npt.NDArray[np.int64]]:
    found: dict[Cell, list[int]] = defaultdict(list)
    for i, c in enumerate(cells):
        if c is not None:
            found[(min(c), max(c))].append(i)
    return {c: np.array(v, dtype=np.int64) for c, v in found.items()}


def _cell(
    pos: np.ndarray, neg: np.ndarray, ops: Sequence[Operating], names: Names
) -> dict[str, Any]:
    rates = {
        op.name: {
            names.fp: rate(
                int(np.sum(neg >= op.similarity)), len(neg), of=names.negatives, target=op.target
            ),
            names.fn: rate(int(np.sum(pos < op.similarity)), len(pos), of=names.positives),
        }
        for op in ops
    }
    return {names.positive: len(pos), names.negative: len(neg), "rates": rates}


def _in_group(
    pos: np.ndarray, neg: np.ndarray, targets: Sequence[float], names: Names
) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for t in targets:
        if not len(neg) or not metrics.resolvable(len(neg), t):
            need = math.ceil(1 / t - 1e-9)
            out[f"{t:g}"] = {
                "similarity": None,
                names.fn: None,
                "note": f"cannot be measured: {len(neg)} {names.negatives}, needs {need}",
            }
            continue
        thr = metrics.threshold_at_fmr(neg, t)
        fn = float(np.mean(pos < thr)) if len(pos) else None
        out[f"{t:g}"] = {"similarity": thr, names.fn: fn, "note": None}
    return out


def ratio(groups: dict[str, dict[str, Any]], what: str, min_n: int = 0) -> dict[str, Any]:
    """max/min of ``what`` ("fmr", ...) at one threshold over groups whose rate is measured
    (over at least ``min_n`` comparisons).

    ``groups`` maps a group to its rate record (:func:`rate`)."""
    measured = {g: r["rate"] for g, r in groups.items() if r["measurable"] and r["n"] >= min_n}
    out: dict[str, Any] = {
        "ratio": None,
        "max": None,
        "min": None,
        "over": sorted(measured),
        "left_out": sorted(set(groups) - set(measured)),
        "note": None,
    }
    if len(measured) < 2:
        over = f" over at least {min_n} comparisons" if min_n else ""
        out["note"] = f"fewer than two groups with a measurable {what.upper()}{over}"
        return out
    hi = max(measured, key=lambda g: measured[g])
    lo = min(measured, key=lambda g: measured[g])
    out["max"] = {"group": hi, "rate": measured[hi]}
    out["min"] = {"group": lo, "rate": measured[lo]}
    if measured[lo] == 0:
        if measured[hi] == 0:
            out["ratio"], out["note"] = 1.0, f"no errors in any group ({what.upper()} 0)"
        else:
            out["note"] = f"{lo} has {what.upper()} 0: the ratio is unbounded"
        return out
    out["ratio"] = measured[hi] / measured[lo]
    return out


def table(
    scores: npt.ArrayLike,
    positive: npt.ArrayLike,
    cells: Sequence[Cell | None],
    ops: Sequence[Operating],
    targets: Sequence[float],
    names: Names = PAIRS,
    order: Sequence[str] = (),
) -> dict[str, Any]:
    """The slice table of one attribute.

    ``scores``/``positive``: one score per comparison and whether it is positive (genuine
    pair / mated search; a mated search whose top candidate is wrong scores -inf, so it is
    a miss at every threshold). ``cells[i]`` is comparison i's cell, None to leave it out.
    ``order``: how to list the groups (others follow, sorted).
    """
    s = np.asarray(scores, dtype=np.float64)
    y = np.asarray(positive, dtype=bool)
    by_cell = _cells(cells)
    present = {g for c in by_cell for g in c}
    groups = [g for g in order if g in present] + sorted(present - set(order))
    within: list[dict[str, Any]] = []
    cross: list[dict[str, Any]] = []
    for cell in sorted(by_cell, key=lambda c: (groups.index(c[0]), groups.index(c[1]))):
        idx = by_cell[cell]
        pos, neg = s[idx][y[idx]], s[idx][~y[idx]]
        block = _cell(pos, neg, ops, names)
        if cell[0] == cell[1]:
            block = {"group": cell[0], **block}
            block["in_group_threshold"] = _in_group(pos, neg, targets, names)
            block["det"] = det_points(pos, neg)
            within.append(block)
        else:
            cross.append({"groups": list(cell), **block})
    ratios = {
        op.name: {
            k: ratio({w["group"]: w["rates"][op.name][k] for w in within}, k, n)
            for k, n in ((names.fp, 0), (names.fn, RATIO_MIN_POSITIVES))
        }
        for op in ops
    }
    return {
        "groups": within,
        "cross": cross,
        f"{names.fp}_matrix": _matrix(groups, within, cross, ops, names.fp) if cross else None,
        "ratios": ratios,
        "left_out": int(sum(c is None for c in cells)),
    }


def _matrix(
    groups: list[str],
    within: list[dict[str, Any]],
    cross: list[dict[str, Any]],
    ops: Sequence[Operating],
    key: str,
) -> dict[str, Any]:
    """Group x group false-positive rates (None: cannot be measured or no comparisons)."""
    at: dict[str, list[list[float | None]]] = {}
    for op in ops:
        m: list[list[float | None]] = [[None] * len(groups) for _ in groups]
        for w in within:
            i = groups.index(w["group"])
            m[i][i] = w["rates"][op.name][key]["rate"]
        for c in cross:
            i, j = groups.index(c["groups"][0]), groups.index(c["groups"][1])
            m[i][j] = m[j][i] = c["rates"][op.name][key]["rate"]
        at[op.name] = m
    return {"groups": groups, "at": at}
