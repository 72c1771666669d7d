"""1:N identification figures: closed-set CMC and open-set FNIR at FPIR.

The split is deterministic for a seed: a fraction of the people is held out as never
enrolled (their photos are the non-mated searches); each enrolled person has
``gallery_per_person`` photos in the gallery and the rest are mated searches.
A person's score for a probe is their best template's cosine similarity.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from faceprint.errors import FaceprintError
from faceprint.eval import metrics
from faceprint.eval.templates import Templates
from faceprint.eval.verification import json_score, relative
from faceprint.match.search import ExactIndex

FPIRS = (1e-1, 1e-2)
MAX_CMC_RANK = 20

Photo = tuple[str, Path]


@dataclass(frozen=True)
class Split:
    gallery: list[Photo]
    mated: list[Photo]
    nonmated: list[Photo]

    @property
    def enrolled(self) -> list[str]:
        return sorted({name for name, _ in self.gallery})


def split(
    people: Sequence[tuple[str, Sequence[Path]]],
    *,
    gallery_per_person: int = 1,
    nonmated_fraction: float = 0.2,
    seed: int = 0,
) -> Split:
    """Gallery / mated probes / non-mated probes, the same for the same seed."""
    if gallery_per_person < 1:
        raise FaceprintError("--gallery-per-person must be at least 1")
    if not 0 <= nonmated_fraction < 1:
        raise FaceprintError("--nonmated-fraction must be in [0, 1)")
    rng = np.random.default_rng(seed)
    people = sorted((name, sorted(photos)) for name, photos in people)
    n_out = round(nonmated_fraction * len(people))
    if nonmated_fraction > 0 and len(people) >= 3:
        n_out = max(1, n_out)
    n_out = min(n_out, len(people) - 1)
    held_out = {people[int(i)][0] for i in rng.permutation(len(people))[:n_out]}
    gallery: list[Photo] = []
    mated: list[Photo] = []
    nonmated: list[Photo] = []
    for name, photos in people:
        if name in held_out:
            nonmated.extend((name, p) for p in photos)
            continue
        order = [photos[int(i)] for i in rng.permutation(len(photos))]
        gallery.extend((name, p) for p in order[:gallery_per_person])
        mated.extend((name, p) for p in order[gallery_per_person:])
    if not mated:
        raise FaceprintError(
            f"no mated searches: every enrolled person needs more than {gallery_per_person} "
            f"photo(s) for some to be left as probes"
        )
    return Split(gallery, mated, nonmated)


def person_scores(
    probes: Sequence[Photo], split_: Split, gallery: Templates, probe_t: Templates
) -> tuple[np.ndarray, list[str]]:
    """(probes x enrolled people) person scores, by the gallery's own rule
    (:func:`faceprint.match.search.person_score`, with the templates' qualities); -inf
    where a side has no face."""
    names = split_.enrolled
    col = {n: i for i, n in enumerate(names)}
    out = np.full((len(probes), len(names)), -math.inf)
    g_rows = [(col[n], v, p) for n, p in split_.gallery if (v := gallery.get(p)) is not None]
    p_rows = [(i, v) for i, (_, p) in enumerate(probes) if (v := probe_t.get(p)) is not None]
    if not g_rows or not p_rows:
        return out, names
    quality = [np.nan if (f := gallery.faces.get(p)) is None else f.quality for _, _, p in g_rows]
    index = ExactIndex(
        np.stack([v for _, v, _ in g_rows]).astype(np.float32),
        np.array([c for c, _, _ in g_rows], dtype=np.int64),
        np.array(quality, dtype=np.float32),
    )
    block = np.full((len(p_rows), len(names)), -math.inf)
    block[:, index.person_ids] = index.person_scores(np.stack([v for _, v in p_rows]))
    out[np.array([i for i, _ in p_rows])] = block
    return out, names


def evaluate(split_: Split, gallery: Templates, probes: Templates, root: Path) -> dict[str, Any]:
    mated_s, names = person_scores(split_.mated, split_, gallery, probes)
    col = {n: i for i, n in enumerate(names)}
    truth = np.array([col[n] for n, _ in split_.mated])
    true_s = mated_s[np.arange(len(truth)), truth]
    ranks = np.where(np.isfinite(true_s), 1 + np.sum(mated_s > true_s[:, None], axis=1), math.inf)
    top = np.argmax(mated_s, axis=1)
    top_s = mated_s[np.arange(len(top)), top]
    hit = (top == truth) & np.isfinite(top_s)
    max_rank = min(MAX_CMC_RANK, len(names))
    curve = metrics.cmc(ranks, max_rank)
    out: dict[str, Any] = {
        "condition": probes.condition,
        "enrolled": len(names),
        "gallery_templates": len(split_.gallery),
        "mated": len(split_.mated),
        "nonmated": len(split_.nonmated),
        "rank1": float(curve[0]),
        "rank5": float(curve[min(5, max_rank) - 1]),
        "cmc": curve.tolist(),
        "fnir_at_fpir": {},
        "notes": [],
    }
    non_s = np.array([-math.inf])
    if split_.nonmated:
        non_all, _ = person_scores(split_.nonmated, split_, gallery, probes)
        non_s = non_all.max(axis=1)
        for fpir in FPIRS:
            ok = metrics.resolvable(len(non_s), fpir)
            fnir, thr = metrics.fnir_at_fpir(top_s, hit, non_s, fpir)
            out["fnir_at_fpir"][f"{fpir:g}"] = {
                "fnir": fnir,
                "threshold": json_score(thr),
                "resolved": ok,
            }
            if not ok:
                out["notes"].append(
                    f"FPIR {fpir:g} needs at least {math.ceil(1 / fpir)} non-mated searches, "
                    f"there are {len(non_s)}: its FNIR is measured at FPIR 0"
                )
    else:
        out["notes"].append("no non-mated searches (nobody held out): no open-set figures")
    no_face = {p for _, p in split_.gallery if p in gallery.no_face}
    no_face |= {p for _, p in split_.mated + split_.nonmated if p in probes.no_face}
    out["no_face"] = sorted(relative(p, root) for p in no_face)
    several = {p for _, p in split_.gallery if p in gallery.several}
    several |= {p for _, p in split_.mated + split_.nonmated if p in probes.several}
    out["several_faces"] = sorted(relative(p, root) for p in several)
    out["data"] = {
        "mated_scores": [json_score(s) for s in top_s],
        "mated_hit": hit.astype(int).tolist(),
        "mated_ranks": [int(r) if math.isfinite(r) else None for r in ranks],
        "nonmated_scores": [json_score(s) for s in non_s] if split_.nonmated else [],
    }
    return out
