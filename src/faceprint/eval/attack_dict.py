"""Dictionary impersonation: one non-adaptive batch of N photos of other people per target.

For each enrolled target, N photos of people who are not the target (disjoint sets, so
targets are independent trials) are sent once. A target is *matched* at a threshold when at
least one of its N photos reaches it. If each comparison false-matches with probability
FMR, the share of matched targets should be ``1 - (1 - FMR) ** N``; the observed share
comes with an exact (Clopper-Pearson) binomial interval, and so does the per-comparison
false-match rate the batch itself measures.

Two passes: *scored* (``/verify`` against the target with a key that sees scores; the
decision at each of the pack's calibrated thresholds is made from the returned score) and
*real* (``/collections/{c}/identify`` with the attacking key: a target is matched when the
service itself says its name).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from faceprint.errors import FaceprintError
from faceprint.eval.attack_client import Answer, BudgetExhausted, ServiceClient, TargetExhausted


def binom_cdf(k: int, n: int, p: float) -> float:
    """P(X <= k) for X ~ Binomial(n, p)."""
    if k < 0:
        return 0.0
    if k >= n or p <= 0.0:
        return 1.0
    if p >= 1.0:
        return 0.0
    lp, lq, top = math.log(p), math.log1p(-p), math.lgamma(n + 1)
    terms = [top - math.lgamma(i + 1) - math.lgamma(n - i + 1) + i * lp + (n - i) * lq
             for i in range(k + 1)]  # fmt: skip
    peak = max(terms)
    return min(1.0, math.exp(peak) * sum(math.exp(t - peak) for t in terms))


def clopper_pearson(k: int, n: int, level: float = 0.95) -> tuple[float, float]:
    """Exact two-sided binomial confidence interval for k successes in n trials."""
    if n <= 0 or not 0 <= k <= n:
        raise ValueError("need 0 <= k <= n and n > 0")
    alpha = (1 - level) / 2

    def solve(f: Callable[[float], float]) -> float:  # f increasing in p, root in [0, 1]
        lo, hi = 0.0, 1.0
        for _ in range(100):
            mid = (lo + hi) / 2
            lo, hi = (mid, hi) if f(mid) < 0 else (lo, mid)
        return (lo + hi) / 2

    lower = 0.0 if k == 0 else solve(lambda p: (1 - binom_cdf(k - 1, n, p)) - alpha)
    upper = 1.0 if k == n else solve(lambda p: alpha - binom_cdf(k, n, p))
    return lower, upper


def predicted_share(fmr: float, n: int) -> float:
    """Share of targets matched by at least one of n independent impostors at FMR."""
    return 1.0 - (1.0 - fmr) ** n


def disjoint_sets(
    photos: Sequence[Path], targets: Sequence[str], n: int, seed: int
) -> dict[str, list[Path]]:
    """N different photos per target, no photo used twice (seeded shuffle)."""
    if n < 1:
        raise FaceprintError("the dictionary needs at least one photo per target")
    if n * len(targets) > len(photos):
        raise FaceprintError(
            f"{len(targets)} targets x {n} photos need {n * len(targets)} different photos; "
            f"only {len(photos)} are available"
        )
    order = np.random.default_rng(seed).permutation(len(photos))
    return {t: [photos[j] for j in order[i * n : (i + 1) * n]] for i, t in enumerate(targets)}


@dataclass(frozen=True)
class Thresholds:
    """A calibrated operating point: similarity measured for a target FMR."""

    fmr: float
    similarity: float


def pack_thresholds() -> list[Thresholds]:
    """The default pack's calibrated points (whatever the pack holds at run time)."""
    from faceprint.models.packs import DEFAULT_PACK

    return sorted(
        (Thresholds(c.fmr, c.similarity) for c in DEFAULT_PACK.thresholds), key=lambda t: t.fmr
    )


def _send(
    pool: ThreadPoolExecutor,
    ask: Callable[[str, Path], Answer],
    sets: dict[str, list[Path]],
) -> tuple[dict[str, list[Answer | None]], str | None]:
    """Every photo of every set through ``ask`` (None once a daily budget ran out)."""
    out: dict[str, list[Answer | None]] = {}
    stopped = None
    for target, photos in sets.items():
        if stopped is not None:
            out[target] = [None] * len(photos)
            continue
        futures = [pool.submit(ask, target, p) for p in photos]
        answers: list[Answer | None] = []
        for fut in futures:
            try:
                answers.append(fut.result())
            except TargetExhausted:
                answers.append(None)  # this target's budget: the other targets go on
            except BudgetExhausted as exc:
                stopped = str(exc)
                answers.append(None)
        out[target] = answers
    return out, stopped


def scored(
    client: ServiceClient, collection: str, sets: dict[str, list[Path]], concurrency: int = 2
) -> tuple[dict[str, list[float | None]], str | None]:
    """Each photo's similarity to its target via /verify (None: no face, or not sent)."""
    with ThreadPoolExecutor(concurrency) as pool:
        answers, stopped = _send(
            pool, lambda t, p: client.verify(collection, p.read_bytes(), t), sets
        )
    return {t: [a.score if a and a.face else None for a in v] for t, v in answers.items()}, stopped


def real(
    client: ServiceClient,
    collection: str,
    sets: dict[str, list[Path]],
    concurrency: int = 2,
    fmr: float | None = None,
) -> tuple[dict[str, list[str | None]], str | None]:
    """What the service named each photo via identify, at its own threshold (or ``fmr``)."""

    def ask(target: str, photo: Path) -> Answer:
        return client.identify(collection, photo.read_bytes(), target, "decision", top_k=1, fmr=fmr)

    with ThreadPoolExecutor(concurrency) as pool:
        answers, stopped = _send(pool, ask, sets)
    return {t: [a.name if a else None for a in v] for t, v in answers.items()}, stopped


def _rate(k: int, n: int) -> dict[str, Any]:
    lo, hi = clopper_pearson(k, n) if n else (math.nan, math.nan)
    return {"k": k, "n": n, "rate": k / n if n else math.nan, "ci95": [lo, hi]}


def summarise_scored(
    scores: dict[str, list[float | None]], n: int, points: Sequence[Thresholds]
) -> list[dict[str, Any]]:
    """Per calibrated point: targets matched (share, CI) against 1 - (1 - FMR)^N, and the
    per-comparison false-match rate the batch measured."""
    rows = []
    usable = {t: [s for s in v if s is not None] for t, v in scores.items()}
    comparisons = sum(len(v) for v in usable.values())
    for pt in points:
        matched = sum(any(s >= pt.similarity for s in v) for v in usable.values())
        hits = sum(sum(s >= pt.similarity for s in v) for v in usable.values())
        rows.append(
            {
                "fmr": pt.fmr,
                "threshold": pt.similarity,
                "targets": _rate(matched, len(usable)),
                "predicted": predicted_share(pt.fmr, n),
                "comparisons": _rate(hits, comparisons),
            }
        )
    return rows


def summarise_real(names: dict[str, list[str | None]]) -> dict[str, Any]:
    """Targets the service named for at least one of their photos (and other names said)."""
    matched = sum(any(nm == t for nm in v) for t, v in names.items())
    others = sum(sum(nm is not None and nm != t for nm in v) for t, v in names.items())
    first = [next((i + 1 for i, nm in enumerate(v) if nm == t), None) for t, v in names.items()]
    return {
        "targets": _rate(matched, len(names)),
        "named_someone_else": others,
        "photos_to_first_match": [f for f in first if f is not None],
    }
