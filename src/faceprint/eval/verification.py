"""1:1 verification figures for a list of pairs, one block per condition.

A pair with an image without a template (no face, ``--on-no-face fail``) scores -inf: it
is rejected at every threshold, so it counts against genuine pairs and for impostors.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from faceprint.eval import metrics
from faceprint.eval.pairs import Pair
from faceprint.eval.templates import Templates

#: Target false-match rates reported; 1e-4 only when there are enough impostor pairs.
FMRS = (1e-1, 1e-2, 1e-3)
OPTIONAL_FMRS = (1e-4,)


def _matrix(templates: Templates, paths: Sequence[Path]) -> tuple[np.ndarray, np.ndarray]:
    """Rows of the templates of ``paths`` (zeros where none) and which rows exist."""
    dim = next((len(v) for v in templates.vectors.values() if v is not None), 1)
    rows = np.zeros((len(paths), dim), dtype=np.float32)
    ok = np.zeros(len(paths), dtype=bool)
    for i, path in enumerate(paths):
        vec = templates.get(path)
        if vec is not None:
            rows[i], ok[i] = vec, True
    return rows, ok


def pair_scores(pairs: Sequence[Pair], gallery: Templates, probes: Templates) -> np.ndarray:
    """Cosine similarity of each pair (side a from ``gallery``, side b from ``probes``),
    vectorised: one template matrix per side, row-wise dot products."""
    a_paths = list(dict.fromkeys(p.a for p in pairs))
    b_paths = list(dict.fromkeys(p.b for p in pairs))
    a_rows, a_ok = _matrix(gallery, a_paths)
    b_rows, b_ok = _matrix(probes, b_paths)
    a_idx = {path: i for i, path in enumerate(a_paths)}
    b_idx = {path: i for i, path in enumerate(b_paths)}
    ia = np.fromiter((a_idx[p.a] for p in pairs), dtype=np.int64, count=len(pairs))
    ib = np.fromiter((b_idx[p.b] for p in pairs), dtype=np.int64, count=len(pairs))
    dots = np.einsum("ij,ij->i", a_rows[ia], b_rows[ib], dtype=np.float64)
    return np.where(a_ok[ia] & b_ok[ib], dots, -math.inf)


def figures(scores: np.ndarray, labels: np.ndarray, folds: np.ndarray) -> dict[str, Any]:
    """Accuracy (k-fold), AUC, EER and TAR at the target FMRs of one set of scored pairs."""
    n_imp = int((~labels).sum())
    mean, std, thresholds = metrics.kfold_accuracy(scores, labels, folds)
    tar: dict[str, Any] = {}
    notes: list[str] = []
    for fmr in FMRS + OPTIONAL_FMRS:
        ok = metrics.resolvable(n_imp, fmr)
        if not ok and fmr in OPTIONAL_FMRS:
            notes.append(
                f"TAR at FMR {fmr:g} not reported: needs at least {math.ceil(1 / fmr)} "
                f"impostor pairs, there are {n_imp}"
            )
            continue
        rate, thr = metrics.tar_at_fmr(scores, labels, fmr)
        tar[f"{fmr:g}"] = {"tar": rate, "threshold": json_score(thr), "resolved": ok}
        if not ok:
            notes.append(
                f"FMR {fmr:g} is below 1/{n_imp} impostor pairs: its TAR is measured at FMR 0 "
                f"(threshold above every impostor score), a rough estimate"
            )
    return {
        "pairs": len(scores),
        "genuine": int(labels.sum()),
        "impostor": n_imp,
        "folds": len(np.unique(folds)),
        "accuracy": mean,
        "accuracy_std": std,
        "fold_thresholds": [json_score(t) for t in thresholds],
        "auc": metrics.auc(metrics.roc(scores, labels)),
        "eer": metrics.eer(scores, labels),
        "tar_at_fmr": tar,
        "notes": notes,
    }


def evaluate(
    pairs: Sequence[Pair], gallery: Templates, probes: Templates, root: Path
) -> dict[str, Any]:
    """Figures and raw scores for one condition (probes = side b, maybe degraded)."""
    scores = pair_scores(pairs, gallery, probes)
    labels = np.array([p.same for p in pairs], dtype=bool)
    folds = np.array([p.fold for p in pairs], dtype=np.int64)
    a_side, b_side = {q.a for q in pairs}, {q.b for q in pairs}
    no_face = sorted(
        {relative(p, root) for p in gallery.no_face if p in a_side}
        | {relative(p, root) for p in probes.no_face if p in b_side}
    )
    out = {"condition": probes.condition, **figures(scores, labels, folds)}
    out["no_face"] = no_face
    out["several_faces"] = sorted(
        {relative(p, root) for p in gallery.several if p in a_side}
        | {relative(p, root) for p in probes.several if p in b_side}
    )
    out["failed_pairs"] = int(np.sum(~np.isfinite(scores)))
    out["data"] = {
        "scores": [json_score(s) for s in scores],
        "labels": labels.astype(int).tolist(),
        "folds": folds.tolist(),
    }
    return out


def json_score(x: float) -> float | None:
    """JSON has no infinities: -inf (a failed comparison) is written as null."""
    return float(x) if math.isfinite(x) else None


def relative(path: Path, root: Path) -> str:
    try:
        return str(path.relative_to(root))
    except ValueError:
        return str(path)
