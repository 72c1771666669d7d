"""Run an evaluation end to end: templates (cached) for every condition, figures, report."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from faceprint.eval import face_slices, identification, verification
from faceprint.eval.degrade import Degradation
from faceprint.eval.groups import Labels, coverage
from faceprint.eval.pairs import Pair
from faceprint.eval.templates import SUBJECT_RULE, TemplateCache, Templates, compute
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


def _probe_faces(probes: Templates, paths: Sequence[Path], root: Path) -> dict[str, Any]:
    """The automatic slices' values of each probe photo (None: no face detected)."""
    return {
        verification.relative(p, root): face_slices.face_values(probes.faces.get(p))
        for p in dict.fromkeys(paths)
    }


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
    groups: Labels | None = None,
) -> dict[str, Any]:
    """Verification on pairs; side b is the probe that degradations apply to. Every
    condition is sliced by the automatic attributes and by ``groups`` (if given)."""
    t0 = time.perf_counter()
    out.mkdir(parents=True, exist_ok=True)
    b_side = [p.b for p in pairs]
    images = list(dict.fromkeys([p.a for p in pairs] + b_side))

    def evaluate(ref: Templates, probes: Templates) -> dict[str, Any]:
        figures = verification.evaluate(pairs, ref, probes, root)
        figures["slices"] = face_slices.pair_slices(pairs, probes, figures, groups)
        figures["slices"]["probe_faces"] = _probe_faces(probes, b_side, root)
        return figures

    conditions, computed = _conditions(
        images,
        b_side,
        evaluate,
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
    if groups is not None:
        results["groups"] = coverage(groups, images, root)
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
    groups: Labels | None = None,
) -> dict[str, Any]:
    """Identification on a folder-per-person tree; probes are what degradations apply to.
    Every condition is sliced by the probe's automatic attributes and ``groups``."""
    t0 = time.perf_counter()
    out.mkdir(parents=True, exist_ok=True)
    split = identification.split(
        people,
        gallery_per_person=gallery_per_person,
        nonmated_fraction=nonmated_fraction,
        seed=seed,
    )
    probe_files = [p for _, p in split.mated + split.nonmated]
    images = list(dict.fromkeys([p for _, p in split.gallery] + probe_files))

    def evaluate(ref: Templates, probes: Templates) -> dict[str, Any]:
        figures = identification.evaluate(split, ref, probes, root)
        figures["slices"] = face_slices.search_slices(probe_files, probes, figures, groups)
        figures["slices"]["probe_faces"] = _probe_faces(probes, probe_files, root)
        return figures

    conditions, computed = _conditions(
        images,
        probe_files,
        evaluate,
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
    if groups is not None:
        results["groups"] = coverage(groups, images, root)
    results["conditions"] = conditions
    return results
