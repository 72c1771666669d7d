"""Score-leak attacks on a running faceprint service, measured through its HTTP API only.

Two attacks (issue 15), each against targets enrolled in a collection:

* *reconstruction*: a face is synthesised from similarity scores alone (NES in an
  eigenface space of other people's photos, :mod:`.attack_nes`, :mod:`.attack_pca`), each
  probe a full photo that goes through the service's own detection; success is the service
  naming the target. Reported per answer mode: the scores the key gets (4 decimals for an
  admin key, 2 for others) or decision-only (scores dropped by the harness);
* *dictionary*: N photos of other people per target in one batch (:mod:`.attack_dict`).

The attack code talks to the service over HTTP (:mod:`.attack_client`); faceprint's own
detection is used only to build the attacker's face space and carrier photo.
"""

from __future__ import annotations

import csv
import statistics
import time
import zlib
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from faceprint.errors import FaceprintError
from faceprint.eval import attack_dict
from faceprint.eval.attack_client import ANSWER_MODES, Answer, BudgetExhausted, ServiceClient
from faceprint.eval.attack_nes import NesSettings, Reconstruction, reconstruct
from faceprint.eval.attack_pca import Carrier, FaceSpace, folder_name, png

ENDPOINTS = ("identify", "verify")
Progress = Callable[[str], None]


def labelled_people(labels: Path) -> dict[str, list[str]]:
    """person -> photo files, from a CSV with ``file`` and ``person`` columns ('#' comments)."""
    try:
        with labels.open(newline="") as fh:
            rows = list(csv.DictReader(line for line in fh if not line.startswith("#")))
    except OSError as exc:
        raise FaceprintError(f"{labels}: cannot read the labels: {exc.strerror or exc}") from exc
    people: dict[str, list[str]] = {}
    for row in rows:
        if not row.get("file") or not row.get("person"):
            raise FaceprintError(f"{labels}: needs 'file' and 'person' columns")
        people.setdefault(row["person"], []).append(row["file"])
    return people


def enroll_targets(
    client: ServiceClient,
    collection: str,
    faces: Path,
    labels: Path,
    count: int,
    per_target: int = 2,
    progress: Progress | None = None,
) -> dict[str, list[str]]:
    """Create ``collection`` (if new) and enroll ``count`` people (the labels' first, by
    name) with ``per_target`` photos each; people already there are left as they are."""
    people = labelled_people(labels)
    if len(people) < count:
        raise FaceprintError(f"{labels}: {len(people)} people, fewer than the {count} asked for")
    client.create_collection(collection)
    present = set(client.people(collection))
    enrolled: dict[str, list[str]] = {}
    for person in sorted(people)[:count]:
        if person in present:
            enrolled[person] = []
            continue
        photos = people[person][:per_target]
        client.enroll(collection, person, [(p, (faces / p).read_bytes()) for p in photos])
        enrolled[person] = photos
        if progress:
            progress(f"enrolled {person}: {', '.join(photos)}")
    return enrolled


@dataclass(frozen=True)
class Reconstructor:
    """How probes are made and asked: face space, carrier photo, endpoint, answer mode."""

    client: ServiceClient
    collection: str
    space: FaceSpace
    carrier: Carrier
    answers: str = "scores"
    endpoint: str = "identify"
    fmr: float | None = None  # a false-match rate the attacker asks identify for
    round_to: int | None = None  # round scores further to this many decimals (simulated)
    concurrency: int = 2
    settings: NesSettings = field(default_factory=NesSettings)

    def __post_init__(self) -> None:
        if self.answers not in ANSWER_MODES:
            raise FaceprintError(f"answers must be one of {', '.join(ANSWER_MODES)}")
        if self.endpoint not in ENDPOINTS:
            raise FaceprintError(f"endpoint must be one of {', '.join(ENDPOINTS)}")

    def probe(self, z: np.ndarray) -> bytes:
        return png(self.carrier.compose(self.space.chip(z)))

    def ask_one(self, target: str, z: np.ndarray) -> Answer:
        photo = self.probe(z)
        if self.endpoint == "verify":
            a = self.client.verify(self.collection, photo, target)
            if self.answers == "decision":
                a = Answer(a.name, None, a.face)
        else:
            a = self.client.identify(self.collection, photo, target, self.answers, fmr=self.fmr)
        if self.round_to is not None and a.score is not None:
            return Answer(a.name, round(a.score, self.round_to), a.face, a.threshold)
        return a

    def run(
        self, target: str, budget: int, seed: int, pool: ThreadPoolExecutor, keep: bool = False
    ) -> Reconstruction:
        rng = np.random.default_rng([seed, zlib.crc32(target.encode())])

        reasons: list[str] = []

        def ask(points: Sequence[np.ndarray]) -> list[Answer | None]:
            futures = [pool.submit(self.ask_one, target, z) for z in points]
            out: list[Answer | None] = []
            for f in futures:
                try:
                    out.append(f.result())
                except BudgetExhausted as exc:
                    reasons.append(exc.reason)
                    out.append(None)
            return out

        run = reconstruct(
            ask, target, self.space.dim, budget, rng, settings=self.settings,
            decision_only=self.answers == "decision", chunk=self.concurrency, keep_points=keep,
        )  # fmt: skip
        if run.stopped == "refused" and reasons:
            run.stopped = reasons[0]
        return run


def reconstruct_all(
    rec: Reconstructor,
    targets: Sequence[str],
    budget: int,
    seed: int,
    progress: Progress | None = None,
    keep_points: bool = False,
) -> list[dict[str, Any]]:
    """One reconstruction per target (stopping all when the key's daily budget runs out)."""
    results: list[dict[str, Any]] = []
    stopped = False
    with ThreadPoolExecutor(rec.concurrency) as pool:
        for target in targets:
            if stopped:
                why = rec.client.stop_reason or "budget exhausted"
                results.append({"target": target, "stopped": f"not attempted: {why}"})
                continue
            start = time.monotonic()
            run = rec.run(target, budget, seed, pool, keep_points)
            row = run.to_dict()
            row["seconds"] = round(time.monotonic() - start, 2)
            row["_run"] = run
            results.append(row)
            stopped = rec.client.accounting.budget_exhausted is not None
            if progress:
                progress(
                    f"{target}: {'named' if run.success else 'not named'} after {run.queries} "
                    f"queries (score {run.start_score} -> {run.best_score}, {row['seconds']} s)"
                )
    return results


def _quartiles(values: Sequence[float]) -> list[float] | None:
    if not values:
        return None
    if len(values) == 1:
        return [float(values[0])] * 3
    q = statistics.quantiles(values, n=4, method="inclusive")
    return [float(q[0]), float(statistics.median(values)), float(q[2])]


def summarise_reconstruction(results: Sequence[dict[str, Any]], budget: int) -> dict[str, Any]:
    """Success rate (with an exact CI) and queries to success (quartiles over successes)."""
    tried = [r for r in results if "queries" in r]
    wins = [r for r in tried if r["success"]]
    lo, hi = attack_dict.clopper_pearson(len(wins), len(tried)) if tried else (None, None)
    starts = [r["start_score"] for r in tried if r.get("start_score") is not None]
    bests = [r["best_score"] for r in tried if r.get("best_score") is not None]
    return {
        "targets": len(tried),
        "named": len(wins),
        "success_rate": len(wins) / len(tried) if tried else None,
        "success_ci95": [lo, hi],
        "queries_to_success_q1_median_q3": _quartiles([r["queries"] for r in wins]),
        "queries_spent": sum(r["queries"] for r in tried),
        "budget_per_target": budget,
        "median_start_score": statistics.median(starts) if starts else None,
        "median_best_score": statistics.median(bests) if bests else None,
        "no_face": sum(r["no_face"] for r in tried),
        "not_attempted": len(results) - len(tried),
        "seconds": round(sum(r["seconds"] for r in tried), 1),
    }


def _fmt(v: Any, digits: int = 3) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.{digits}g}" if abs(v) < 1e-2 and v else f"{v:.{digits}f}"
    return str(v)


def reconstruction_table(rows: Sequence[tuple[str, dict[str, Any]]]) -> str:
    """Markdown: one line per (setting, summary)."""
    out = [
        "| setting | targets | named | success (95% CI) | queries to success q1 / median / q3 "
        "| queries spent | start -> best score (median) | no face |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, s in rows:
        ci = s["success_ci95"]
        rate = "-" if s["success_rate"] is None else f"{s['success_rate']:.2f}"
        q = s["queries_to_success_q1_median_q3"]
        qs = " / ".join(str(round(v)) for v in q) if q else f"none within {s['budget_per_target']}"
        out.append(
            f"| {name} | {s['targets']} | {s['named']} | {rate} ({_fmt(ci[0], 2)}-"
            f"{_fmt(ci[1], 2)}) | {qs} | {s['queries_spent']} | {_fmt(s['median_start_score'])}"
            f" -> {_fmt(s['median_best_score'])} | {s['no_face']} |"
        )
    return "\n".join(out)


def dictionary_table(rows: Sequence[dict[str, Any]], n: int) -> str:
    out = [
        f"| FMR | threshold | targets matched (N={n}) | share (95% CI) | predicted "
        "1-(1-FMR)^N | comparisons over threshold | per-comparison FMR (95% CI) |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        t, c = r["targets"], r["comparisons"]
        out.append(
            f"| {r['fmr']:g} | {r['threshold']:.4f} | {t['k']}/{t['n']} | {t['rate']:.2f} "
            f"({t['ci95'][0]:.2f}-{t['ci95'][1]:.2f}) | {r['predicted']:.3f} | "
            f"{c['k']}/{c['n']} | {_fmt(c['rate'])} ({_fmt(c['ci95'][0])}-{_fmt(c['ci95'][1])}) |"
        )
    return "\n".join(out)


def decimals(values: Sequence[float | None]) -> int | None:
    """How many decimals the service gave (the most seen; None without any score)."""
    seen = [f"{v:.6f}".rstrip("0") for v in values if v is not None]
    return max((len(v.split(".")[1]) for v in seen), default=None)


def scores_of(scores: dict[str, list[float | None]]) -> list[float]:
    return [s for v in scores.values() for s in v if s is not None]


def dictionary_attack(
    client: ServiceClient,
    collection: str,
    photos: Sequence[Path],
    targets: Sequence[str],
    n: int,
    seed: int,
    *,
    scored: bool,
    concurrency: int = 2,
    fmr: float | None = None,
    real: bool = True,
) -> dict[str, Any]:
    """The dictionary attack with one key: scored (per calibrated FMR, from the returned
    similarities: needs a key that sees scores) and/or real (the service's own decision)."""
    excluded = {folder_name(t) for t in targets}
    pool = [p for p in photos if folder_name(p.parent.name) not in excluded]
    sets = attack_dict.disjoint_sets(pool, targets, n, seed)
    out: dict[str, Any] = {"n": n, "targets": list(targets), "seed": seed}
    before = client.accounting.answered
    if scored:
        scores, stopped = attack_dict.scored(client, collection, sets, concurrency)
        out["scored"] = attack_dict.summarise_scored(scores, n, attack_dict.pack_thresholds())
        out["scores"] = scores
        out["score_decimals"] = decimals(scores_of(scores))
        out["scored_stopped"] = stopped
    if real:
        names, stopped = attack_dict.real(client, collection, sets, concurrency, fmr)
        out["real"] = attack_dict.summarise_real(names)
        out["real"]["fmr_asked"] = fmr
        out["real_stopped"] = stopped
    out["queries"] = client.accounting.answered - before
    return out
