"""Cluster quality of faceprint's people discovery against the baselines.

    python bench/cluster_quality.py [--model-dir /work/shared/models/yunet] [--detector D]
                                    [--seeds 5] [--only-templates]

The library: every face of every photo of ../shared/faces (13 labelled people,
tests/data/identities.csv) and ../shared/lfw-dev (1,467 people; the named person is the
photo's subject face). Unlabelled faces (bystanders) are clustered too, but only labelled
faces count in the metrics. Templates come from the public API (detect + embed + quality)
and are cached in /tmp keyed by the pack id, the detector and a hash of the file list.

Methods, all on the same templates: faceprint (``faceprint.library.cluster``), Chinese
Whispers on a distance graph (face_recognition's example), Immich's incremental
core-point method in index order and shuffled, and DBSCAN. Then simulated human
corrections and a full re-cluster: how many faces change person.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from cluster_baselines import (
    chinese_whispers,
    clean,
    dbscan,
    immich,
    matched,
    metrics,
    moved,
    partition,
)
from faceprint.errors import FaceprintError
from faceprint.library.cluster import (
    DEFAULT_FMR,
    DEFAULT_PAIR_FMR,
    Faces,
    Params,
    cluster_all,
    similarity_for_fmr,
)
from faceprint.library.decisions import Decisions

HERE = Path(__file__).resolve().parent
SHARED = HERE.parent.parent / "shared"
FACES = SHARED / "faces"
LFW_DEV = SHARED / "lfw-dev"
LABELS = HERE.parent / "tests" / "data" / "identities.csv"
CACHE = Path("/tmp/faceprint-cluster-bench")
_IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png"}


@dataclass(frozen=True)
class Library:
    """Every face of the library photos. ``label`` is "" for faces nobody labelled."""

    keys: list[str]
    templates: np.ndarray  # N x D float32, L2-normalised
    quality: np.ndarray  # N float (faceprint.quality score)
    score: np.ndarray  # N float (detector probability)
    photo: np.ndarray  # N int: index into photos
    label: np.ndarray  # N str
    photos: list[str]

    @property
    def labelled(self) -> np.ndarray:
        return np.flatnonzero(self.label != "")


def library_photos() -> tuple[list[Path], dict[Path, str]]:
    """All photos (faces/ then lfw-dev/, sorted) and the label of each labelled photo."""
    with LABELS.open() as fh:
        rows = list(csv.DictReader(line for line in fh if not line.startswith("#")))
    labels = {FACES / r["file"]: r["person"] for r in rows}
    faces = sorted(p for p in FACES.iterdir() if p.suffix.lower() in _IMAGE_SUFFIXES)
    lfw = sorted(p for d in sorted(LFW_DEV.iterdir()) if d.is_dir() for p in d.glob("*.jpg"))
    labels.update({p: p.parent.name for p in lfw})
    return faces + lfw, labels


def _cache_path(photos: list[Path], detector: str | None, model_dir: str | None) -> Path:
    import faceprint
    from faceprint.models.packs import DEFAULT_PACK

    h = hashlib.sha256()
    for p in photos:
        st = p.stat()
        h.update(f"{p}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    h.update(f"{faceprint.__version__}|{detector}|{model_dir}".encode())
    return CACHE / f"{DEFAULT_PACK.id}-{detector or 'default'}-{h.hexdigest()[:16]}.npz"


def load_library(
    detector: str | None = None, model_dir: str | None = None, verbose: bool = True
) -> Library:
    """The library's faces, from the cache when the photos and the pipeline are unchanged."""
    photos, labels = library_photos()
    path = _cache_path(photos, detector, model_dir)
    if path.exists():
        z = np.load(path, allow_pickle=False)
        return Library(
            list(z["keys"]), z["templates"], z["quality"], z["score"], z["photo"],
            z["label"], list(z["photos"]),
        )  # fmt: skip
    import faceprint
    from faceprint.quality import assess

    keys, temps, qual, score, photo, label = [], [], [], [], [], []
    t0 = time.perf_counter()
    for i, p in enumerate(photos):
        data = p.read_bytes()
        digest = hashlib.sha256(data).hexdigest()[:16]
        image = faceprint.load_image(p)
        faces = faceprint.embed_faces(image, detector=detector, model_dir=model_dir)
        for rank, f in enumerate(faces):
            if f.embedding is None:
                continue
            b = f.box
            keys.append(f"{digest}:{b.left:.0f},{b.top:.0f},{b.right:.0f},{b.bottom:.0f}")
            temps.append(f.embedding)
            qual.append(assess(image, f).score)
            score.append(f.score)
            photo.append(i)
            label.append(labels.get(p, "").lower() if rank == 0 else "")
        if verbose and (i + 1) % 200 == 0:
            rate = (i + 1) / (time.perf_counter() - t0)
            print(f"  embedded {i + 1}/{len(photos)} photos ({rate:.1f}/s)", file=sys.stderr)
    lib = Library(
        keys, np.asarray(temps, dtype=np.float32), np.asarray(qual), np.asarray(score),
        np.asarray(photo), np.asarray(label), [str(p) for p in photos],
    )  # fmt: skip
    CACHE.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp.npz")
    np.savez(
        tmp, keys=np.asarray(keys), templates=lib.templates, quality=lib.quality,
        score=lib.score, photo=lib.photo, label=lib.label, photos=np.asarray(lib.photos),
    )  # fmt: skip
    tmp.replace(path)
    if verbose:
        print(f"  {len(keys)} faces of {len(photos)} photos in {time.perf_counter() - t0:.0f} s "
              f"(cached in {path})", file=sys.stderr)  # fmt: skip
    return lib


# ---------------------------------------------------------------- runs


def faceprint_labels(lib: Library, params: Params, order: np.ndarray | None = None,
                     decisions: Decisions | None = None) -> np.ndarray:  # fmt: skip
    """faceprint's clustering, faces given in ``order`` (labels back in library order)."""
    o = np.arange(len(lib.keys)) if order is None else order
    faces = Faces([lib.keys[i] for i in o], lib.templates[o], lib.photo[o].tolist(),
                  lib.quality[o])  # fmt: skip
    res = cluster_all(faces, decisions, params)
    out = np.empty(len(o), dtype=np.int64)
    out[o] = res.labels
    return out


def fmr_of(lib: Library, similarity: float) -> float:
    """The FMR of a similarity on this library's labelled impostor pairs."""
    idx = lib.labelled
    s = lib.templates[idx] @ lib.templates[idx].T
    i, j = np.triu_indices(len(idx), 1)
    imp = lib.label[idx][i] != lib.label[idx][j]
    return float(np.mean(s[i, j][imp] >= similarity))


def threshold_at(lib: Library, fmr: float) -> tuple[float, str]:
    """The pack's threshold for an FMR, or (when the pack has no such calibrated point) the
    one measured on this library's labelled impostor pairs."""
    try:
        return similarity_for_fmr(fmr), "pack"
    except FaceprintError:
        idx = lib.labelled
        s = lib.templates[idx] @ lib.templates[idx].T
        i, j = np.triu_indices(len(idx), 1)
        imp = np.sort(s[i, j][lib.label[idx][i] != lib.label[idx][j]])[::-1]
        return float(imp[int(fmr * len(imp))]), "bench"


def row(name: str, m: dict[str, float], seconds: float) -> str:
    return (
        f"| {name} | {m['pP']:.3f} | {m['pR']:.3f} | {m['pF1']:.3f} | {m['bP']:.3f} | "
        f"{m['bR']:.3f} | {m['bF1']:.3f} | {m['clusters']:.0f} / {m['people']:.0f} | "
        f"{m['single_unassigned']:.3f} | {m['split']:.0f} / {m['mixed']:.0f} | {seconds:.2f} |"
    )


HEADER = (
    "| method | pair P | pair R | pair F1 | BCubed P | BCubed R | BCubed F1 | clusters / "
    "people | singletons unassigned | people split / clusters mixed | s |\n"
    "|---|---|---|---|---|---|---|---|---|---|---|"
)


def timed(fn: Callable[[], np.ndarray]) -> tuple[np.ndarray, float]:
    t0 = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t0


def sweep(lib: Library, fmrs: list[float]) -> None:
    """faceprint's variants: linkage, thresholds (as FMRs), seed quality, min faces."""
    print("\n## faceprint variants (choose by BCubed F1; pair P is the cost of false merges)\n")
    print(HEADER)
    for linkage in ("average", "centroid"):
        for fmr in fmrs:
            t, src = threshold_at(lib, fmr)
            for pair_fmr in [None] + [f for f in fmrs if f < fmr]:
                pt = None if pair_fmr is None else threshold_at(lib, pair_fmr)[0]
                for q in (0.0, 0.05, 0.1, 0.2, 0.4):
                    for mf in (2, 3):
                        p = Params(t, pair_similarity=pt, min_seed_quality=q, min_faces=mf,
                                   linkage=linkage)  # fmt: skip
                        lab, sec = timed(lambda p=p: faceprint_labels(lib, p))
                        pair = "" if pair_fmr is None else f" pair {pair_fmr:g}"
                        name = f"{linkage} FMR {fmr:g} ({src} {t:.4f}){pair} q>={q} min {mf}"
                        print(row(name, metrics(lab, lib), sec))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model-dir", default=None)
    parser.add_argument("--detector", default=None)
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--only-templates", action="store_true")
    parser.add_argument("--sweep", action="store_true", help="also print faceprint's variants")
    args = parser.parse_args()
    lib = load_library(args.detector, args.model_dir)
    people = len(set(lib.label[lib.labelled].tolist()))
    print(f"library: {len(lib.keys)} faces in {len(lib.photos)} photos, "
          f"{len(lib.labelled)} labelled faces of {people} people")  # fmt: skip
    if args.only_templates:
        return
    fmrs = [1e-3, 1e-4, 1e-5]
    for f in fmrs:
        t, src = threshold_at(lib, f)
        print(f"FMR {f:g}: similarity {t:.4f} ({src}); measured here {fmr_of(lib, t):.2e}")
    if args.sweep:
        sweep(lib, fmrs)
    calibrated = _pack_has(DEFAULT_FMR) and _pack_has(DEFAULT_PAIR_FMR)
    params = Params.at_fmr() if calibrated else _bench_default(lib)
    cw = CW_SIMILARITY
    print(f"\nfaceprint default: {params}")
    print(f"Chinese Whispers at dlib distance 0.5 = cosine {cw} (FMR here {fmr_of(lib, cw):.1e})")
    print(f"Immich at its maxDistance 0.5 = cosine 0.5 (FMR here {fmr_of(lib, 0.5):.2f}) and at "
          f"faceprint's threshold {params.merge_similarity:.4f}\n")  # fmt: skip
    print(HEADER)
    t = lib.templates
    lab, sec = timed(lambda: faceprint_labels(lib, params))
    print(row("faceprint (default)", metrics(lab, lib), sec))
    rng = np.random.default_rng(0)
    same = all(
        np.array_equal(partition(faceprint_labels(lib, params, rng.permutation(len(t)))),
                       partition(lab))
        for _ in range(args.seeds)
    )  # fmt: skip
    print(f"| faceprint, {args.seeds} shuffled insertion orders: identical partition: {same} |")
    for sim, what in ((cw, "dlib 0.5"), (params.merge_similarity, "faceprint's threshold")):
        lab_cw, sec = timed(lambda sim=sim: chinese_whispers(t, sim))
        print(row(f"Chinese Whispers at {sim:.4f} ({what})", metrics(lab_cw, lib), sec))
    for sim, what in ((0.5, "maxDistance 0.5"), (params.merge_similarity, "faceprint's threshold")):
        base, sec = timed(lambda sim=sim: immich(t, lib.score, np.arange(len(t)), sim))
        print(row(f"Immich at {sim:.4f} ({what}), index order", metrics(base, lib), sec))
        for seed in range(args.seeds):
            order = np.random.default_rng(seed).permutation(len(t))
            other, sec = timed(lambda o=order, sim=sim: immich(t, lib.score, o, sim))
            n_moved = moved(base, other)
            print(row(f"Immich at {sim:.4f}, shuffled (seed {seed}): {n_moved} faces change "
                      "person vs index order", metrics(other, lib), sec))  # fmt: skip
    for mp in (2, 3):
        lab_db, sec = timed(lambda mp=mp: dbscan(t, params.merge_similarity, mp))
        print(row(f"DBSCAN eps {1 - params.merge_similarity:.4f} min_pts {mp}",
                  metrics(lab_db, lib), sec))  # fmt: skip
    corrections(lib, params, lab)


#: dlib's euclidean 0.5 as a cosine of L2-normalised templates: fitted on dlib's own raw
#: descriptors of ../shared/fixtures/dlib_reference.json (norms 1.35-1.64, mean 1.51), the
#: cosine that reproduces "distance < 0.5" best (1,890 of 1,891 pairs agree); 1 - 0.5^2 /
#: (2 * 1.51^2) = 0.9454 from the mean norm.
CW_SIMILARITY = 0.9455


def _pack_has(fmr: float) -> bool:
    try:
        similarity_for_fmr(fmr)
    except FaceprintError:
        return False
    return True


def _bench_default(lib: Library) -> Params:
    """The default parameters with thresholds measured here (the pack lacks the FMR)."""
    d = Params.__dataclass_fields__
    pair = None if DEFAULT_PAIR_FMR is None else threshold_at(lib, DEFAULT_PAIR_FMR)[0]
    return Params(threshold_at(lib, DEFAULT_FMR)[0], pair_similarity=pair,
                  min_seed_quality=d["min_seed_quality"].default,
                  linkage=d["linkage"].default, fmr=DEFAULT_FMR)  # fmt: skip


def corrections(lib: Library, params: Params, lab: np.ndarray) -> None:
    """Name the 10 largest clusters, fix 10 faces (5 wrongly placed, 5 of named people left
    out), re-cluster fully (in index order and shuffled): which faces change person?"""
    lab = clean(lab)
    keys = [str(k) for k in lib.keys]
    sizes = {c: int((lab == c).sum()) for c in np.unique(lab[lab >= 0]).tolist()}
    major: dict[int, str] = {}
    for c in sizes:
        names = [x for x in lib.label[lab == c].tolist() if x]
        if names:
            vals, cnt = np.unique(names, return_counts=True)
            major[c] = str(vals[np.lexsort((vals, -cnt))][0])
    top = sorted(major, key=lambda c: (-sizes[c], c))[:10]
    named = {keys[i]: major[c] for c in top for i in np.flatnonzero(lab == c).tolist()
             if lib.label[i] == major[c]}  # fmt: skip
    home = {major[c]: c for c in top} | {n: c for c, n in major.items() if n not in
                                         {major[t] for t in top}}  # fmt: skip
    wrong = sorted(
        (i for i in lib.labelled.tolist() if lab[i] >= 0 and lib.label[i] != major[lab[i]]),
        key=lambda i: (lab[i] not in top, keys[i]),
    )[:5]
    missed = sorted((i for i in lib.labelled.tolist() if lab[i] < 0 and lib.label[i] in home),
                    key=lambda i: (home[str(lib.label[i])] not in top, keys[i]))  # fmt: skip
    fixed = wrong + missed[: 10 - len(wrong)]
    not_named: list[tuple[str, str]] = []
    apart: list[tuple[list[str], list[str]]] = []
    together: list[list[str]] = []
    checks: dict[int, list[Callable[[np.ndarray], bool]]] = {}
    touched_clusters: set[int] = set()
    for i in fixed:
        key, truth, c = keys[i], str(lib.label[i]), int(lab[i])
        checks[i] = []
        target = home.get(truth)
        if target is not None:  # move it to its person
            mates = [j for j in np.flatnonzero(lab == target).tolist()
                     if lib.label[j] == truth and j != i]  # fmt: skip
            if target in top:
                named[key] = truth
            else:
                together.append([key] + [keys[j] for j in mates])
            checks[i].append(lambda out, i=i, m=mates: bool(out[i] >= 0 and out[i] == out[m[0]]))
            touched_clusters.add(target)
        if c >= 0:  # and out of the cluster it was wrongly in
            others = [j for j in np.flatnonzero(lab == c).tolist() if j != i]
            if c in top:  # "not X": away from X's named faces (not from other strays)
                not_named.append((key, major[c]))
                others = [j for j in others if named.get(keys[j]) == major[c]]
            else:
                apart.append(([key], [keys[j] for j in others]))
            checks[i].append(lambda out, i=i, o=others: bool(out[i] < 0 or out[i] not in out[o]))
            touched_clusters.add(c)
    decisions = Decisions(named=named, not_named=not_named, together=together, apart=apart)
    print(f"\n## Corrections: named {len(top)} clusters ({len(named)} faces), fixed "
          f"{len(fixed)} faces ({len(wrong)} wrongly placed: {len(not_named)} 'not X' + "
          f"{len(apart)} splits; {len(fixed) - len(wrong)} left out, moved in)\n")  # fmt: skip
    near = {j for c in touched_clusters for j in np.flatnonzero(lab == c).tolist()}
    for run, order in (("index order", None),
                       ("shuffled", np.random.default_rng(7).permutation(len(lab)))):  # fmt: skip
        out, sec = timed(lambda o=order: faceprint_labels(lib, params, o, decisions))
        # faceprint's own labels: a named person may be a single face
        ok = sum(1 for i in fixed if all(f(out) for f in checks[i]))
        stay = matched(lab, out, singles=True)
        named_idx = {keys.index(k) for k in named} - set(fixed)
        moved_named = sum(1 for i in named_idx if not stay[i])
        by_name: dict[str, set[int]] = {}
        for k, n in named.items():
            by_name.setdefault(n, set()).add(int(out[keys.index(k)]))
        one = all(len(v) == 1 and -1 not in v for v in by_name.values())
        rest = [i for i in range(len(lab)) if i not in named_idx and i not in fixed]
        changed_near = sum(1 for i in rest if i in near and not stay[i])
        changed_far = sum(1 for i in rest if i not in near and not stay[i])
        print(f"{run}: corrected faces as decided {ok}/{len(fixed)}; each named person one "
              f"cluster: {one}; named faces that changed person: {moved_named}/{len(named_idx)}; "
              f"other faces that changed person: {changed_near} in clusters a correction "
              f"touched, {changed_far} elsewhere (of {len(rest)}); {sec:.2f} s")  # fmt: skip
        print(row(f"after corrections ({run})", metrics(out, lib), sec))


if __name__ == "__main__":
    main()
