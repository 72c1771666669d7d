"""Run an evaluation end to end: templates (cached) for every condition, figures, report."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from faceprint.eval import identification, verification
from faceprint.eval.degrade import Degradation
from faceprint.eval.pairs import Pair
from faceprint.eval.templates import SUBJECT_RULE, TemplateCache, compute
from faceprint.models.packs import DEFAULT_PACK

CACHE_NAME = "templates.npz"


def _header(protocol: str, source: str, detector: str, on_no_face: str, seed: int) -> dict:
    from faceprint import __version__

    return {
        "protocol": protocol,
        "source": source,
        "pack": DEFAULT_PACK.id,
        "detector": detector,
        "on_no_face_policy": {
            "fail": "fail: a comparison with an image without a face is a rejection",
            "centre": "centre: an image without a face is aligned on a centre crop",
        }[on_no_face],
        "on_no_face": on_no_face,
        "subject_rule": SUBJECT_RULE,
        "seed": seed,
        "faceprint": __version__,
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
    }


def _conditions(
    files: list[Path],
    probe_files: list[Path],
    evaluate: Callable[[Any, Any], dict[str, Any]],
    degradations: Sequence[Degradation],
    out: Path,
    **kw: Any,
) -> tuple[list[dict[str, Any]], int]:
    """Templates for the clean condition, then for the probe side of each degradation;
    the figures of each condition and how many templates had to be computed."""
    kw["cache"] = TemplateCache(out / CACHE_NAME)
    clean = compute(files, **kw)
    conditions = [evaluate(clean, clean)]
    computed = clean.computed
    for d in degradations:
        probes = compute(probe_files, degradation=d, **kw)
        computed += probes.computed
        conditions.append(evaluate(clean, probes))
    return conditions, computed


def run_pairs(
    pairs: Sequence[Pair],
    root: Path,
    *,
    source: str,
    out: Path,
    degradations: Sequence[Degradation] = (),
    seed: int = 0,
    on_no_face: str = "fail",
    detector: str,
    model_dir: str | Path | None = None,
    quiet: bool = False,
) -> dict[str, Any]:
    """Verification on pairs; side b is the probe that degradations apply to."""
    t0 = time.perf_counter()
    out.mkdir(parents=True, exist_ok=True)
    b_side = [p.b for p in pairs]
    conditions, computed = _conditions(
        list(dict.fromkeys([p.a for p in pairs] + b_side)),
        b_side,
        lambda ref, probes: verification.evaluate(pairs, ref, probes, root),
        degradations,
        out,
        seed=seed,
        on_no_face=on_no_face,
        detector=detector,
        model_dir=model_dir,
        quiet=quiet,
    )
    results = _header("pairs", source, detector, on_no_face, seed)
    results["counts"] = {
        "pairs": len(pairs),
        "images": len({p.a for p in pairs} | set(b_side)),
        "templates computed (not cached)": computed,
        "seconds": round(time.perf_counter() - t0, 2),
    }
    results["conditions"] = conditions
    return results


def run_identify(
    people: Sequence[tuple[str, Sequence[Path]]],
    root: Path,
    *,
    out: Path,
    degradations: Sequence[Degradation] = (),
    seed: int = 0,
    gallery_per_person: int = 1,
    nonmated_fraction: float = 0.2,
    on_no_face: str = "fail",
    detector: str,
    model_dir: str | Path | None = None,
    quiet: bool = False,
) -> dict[str, Any]:
    """Identification on a folder-per-person tree; probes are what degradations apply to."""
    t0 = time.perf_counter()
    out.mkdir(parents=True, exist_ok=True)
    split = identification.split(
        people,
        gallery_per_person=gallery_per_person,
        nonmated_fraction=nonmated_fraction,
        seed=seed,
    )
    probe_files = [p for _, p in split.mated + split.nonmated]
    conditions, computed = _conditions(
        [p for _, p in split.gallery] + probe_files,
        probe_files,
        lambda ref, probes: identification.evaluate(split, ref, probes, root),
        degradations,
        out,
        seed=seed,
        on_no_face=on_no_face,
        detector=detector,
        model_dir=model_dir,
        quiet=quiet,
    )
    results = _header("identify", str(root), detector, on_no_face, seed)
    results["counts"] = {
        "images": len({p for _, p in split.gallery + split.mated + split.nonmated}),
        "people": len(people),
        "enrolled people": len(split.enrolled),
        "held out (non-mated) people": len(people) - len(split.enrolled),
        "gallery photos per person": gallery_per_person,
        "templates computed (not cached)": computed,
        "seconds": round(time.perf_counter() - t0, 2),
    }
    results["split"] = {
        "gallery": [[n, verification.relative(p, root)] for n, p in split.gallery],
        "mated": [[n, verification.relative(p, root)] for n, p in split.mated],
        "nonmated": [[n, verification.relative(p, root)] for n, p in split.nonmated],
    }
    results["conditions"] = conditions
    return results
