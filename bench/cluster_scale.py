"""Clustering time and peak memory at 10k, 100k and 1M faces, and incremental vs full.

    python bench/cluster_scale.py [--sizes 10000 100000 1000000] [--library 100000]
                                  [--new 1000] [--model-dir /work/shared/models/yunet]

Faces are synthetic (bench/synthetic.py: fitted on the real templates of ../shared/faces +
../shared/lfw-dev, genuine and impostor cosines matching the real ones). Each size runs in a
fresh process so its peak RSS is its own; "data" is the RSS after the templates are drawn,
"peak" the maximum during clustering. The neighbour search is exact (blocked BLAS) up to
200,000 faces and approximate (faiss IVF) above, when faiss-cpu is installed. Thresholds:
faceprint's defaults (merge at FMR 1e-4, two single faces at 1e-5; the bench's measured
thresholds when the pack has no such calibrated points). Then: a library of --library
faces plus --new new faces, added incrementally (assign_new) versus a full re-cluster.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from cluster_baselines import matched
from cluster_quality import _bench_default, _pack_has, load_library
from faceprint.library.cluster import (
    DEFAULT_FMR,
    DEFAULT_PAIR_FMR,
    Faces,
    Params,
    assign_new,
    cluster_all,
)
from faceprint.library.knn import neighbours
from synthetic import Synthetic, cached_model, draw

HERE = Path(__file__).resolve().parent


def rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def pair_scores(pred: np.ndarray, truth: np.ndarray) -> tuple[float, float]:
    """Pairwise precision and recall without listing pairs (unassigned = alone)."""
    lab = pred.copy()
    solo = lab < 0
    lab[solo] = lab.max(initial=0) + 1 + np.arange(int(solo.sum()))

    def pairs(counts: np.ndarray) -> float:
        c = counts.astype(np.float64)
        return float((c * (c - 1) / 2).sum())

    _, both = np.unique(lab * (truth.max() + 1) + truth, return_counts=True)
    tp = pairs(both)
    pp = pairs(np.unique(lab, return_counts=True)[1])
    tt = pairs(np.unique(truth, return_counts=True)[1])
    return (tp / pp if pp else 1.0), (tp / tt if tt else 1.0)


def components(t: np.ndarray, threshold: float, k: int) -> np.ndarray:
    """Baseline: connected components of the same neighbour graph (single linkage; DBSCAN
    with min_pts 2), clusters of one face unassigned."""
    idx, _ = neighbours(t, None, k, threshold)
    a = np.repeat(np.arange(len(t)), idx.shape[1])
    b = idx.ravel()
    a, b = a[b >= 0], b[b >= 0]
    lab = np.arange(len(t))
    while True:
        new = lab.copy()
        np.minimum.at(new, a, lab[b])
        np.minimum.at(new, b, lab[a])
        new = new[new]
        if np.array_equal(new, lab):
            break
        lab = new
    size = np.bincount(lab, minlength=len(t))
    return np.where(size[lab] > 1, lab, -1)


def faces_of(s: Synthetic, idx: np.ndarray) -> Faces:
    return Faces([s.keys[i] for i in idx], s.templates[idx], s.photos[idx].tolist(),
                 s.quality[idx])  # fmt: skip


def params(model_dir: str) -> Params:
    if _pack_has(DEFAULT_FMR) and _pack_has(DEFAULT_PAIR_FMR):
        return Params.at_fmr()
    return _bench_default(load_library(model_dir=model_dir, verbose=False))


def one(n: int, model_dir: str) -> dict[str, float]:
    lib = load_library(model_dir=model_dir, verbose=False)
    p = params(model_dir)
    t0 = time.perf_counter()
    s = draw(cached_model(lib), n, seed=n)
    gen = time.perf_counter() - t0
    all_idx = np.arange(n)
    faces = faces_of(s, all_idx)
    del lib
    data = rss_mb()
    t0 = time.perf_counter()
    res = cluster_all(faces, params=p)
    sec = time.perf_counter() - t0
    prec, rec = pair_scores(res.labels, s.person)
    clusters = len(np.unique(res.labels[res.labels >= 0]))
    cc_p = cc_r = float("nan")
    if n <= 200_000:
        t0 = time.perf_counter()
        cc_p, cc_r = pair_scores(components(s.templates, p.merge_similarity, p.neighbours),
                                 s.person)  # fmt: skip
        cc_s = time.perf_counter() - t0
    else:
        cc_s = float("nan")
    return {"faces": n, "people": int(s.person.max() + 1), "generate_s": gen, "cluster_s": sec,
            "data_mb": data, "peak_mb": rss_mb(), "clusters": clusters,
            "pair_precision": prec, "pair_recall": rec, "cc_precision": cc_p,
            "cc_recall": cc_r, "cc_s": cc_s,
            "unassigned": float(np.mean(res.labels < 0))}  # fmt: skip


def incremental(n: int, new: int, model_dir: str) -> dict[str, float]:
    lib = load_library(model_dir=model_dir, verbose=False)
    p = params(model_dir)
    s = draw(cached_model(lib), n + new, seed=7)
    order = np.random.default_rng(7).permutation(n + new)
    old_idx, new_idx = order[:n], order[n:]
    old = faces_of(s, old_idx)
    t0 = time.perf_counter()
    base = cluster_all(old, params=p)
    first = time.perf_counter() - t0
    t0 = time.perf_counter()
    inc = assign_new(old, base.labels, faces_of(s, new_idx), params=p)
    inc_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    full = cluster_all(faces_of(s, np.concatenate([old_idx, new_idx])), params=p)
    full_s = time.perf_counter() - t0
    held = base.labels >= 0
    moved = int((inc.labels[:n][held] != base.labels[held]).sum())
    agree = matched(full.labels, inc.labels)[n:]
    pi, ri = pair_scores(inc.labels, s.person[np.concatenate([old_idx, new_idx])])
    pf, rf = pair_scores(full.labels, s.person[np.concatenate([old_idx, new_idx])])
    return {"library": n, "new": new, "first_cluster_s": first, "assign_new_s": inc_s,
            "full_recluster_s": full_s, "existing_moved": moved,
            "new_same_as_full": float(agree.mean()), "inc_precision": pi, "inc_recall": ri,
            "full_precision": pf, "full_recall": rf, "peak_mb": rss_mb()}  # fmt: skip


def child(args: list[str]) -> dict[str, float]:
    out = subprocess.run([sys.executable, str(Path(__file__)), *args], capture_output=True,
                         text=True, check=True)  # fmt: skip
    result: dict[str, float] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", type=int, nargs="*", default=[10_000, 100_000, 1_000_000])
    parser.add_argument("--library", type=int, default=100_000)
    parser.add_argument("--new", type=int, default=1000)
    parser.add_argument("--model-dir", default="/work/shared/models/yunet")
    parser.add_argument("--one", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--incremental", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(one(args.one, args.model_dir)))
        return
    if args.incremental:
        print(json.dumps(incremental(args.library, args.new, args.model_dir)))
        return
    load_library(model_dir=args.model_dir)  # fill the caches once, in this process
    print(f"thresholds: {params(args.model_dir)}\n")
    print("| faces | people | cluster time | data RSS | peak RSS | clusters | pair P | pair R "
          "| unassigned | connected components P / R |")  # fmt: skip
    print("|---|---|---|---|---|---|---|---|---|---|")
    for n in args.sizes:
        r = child(["--one", str(n), "--model-dir", args.model_dir])
        print(f"| {n:,} | {r['people']:,} | {r['cluster_s']:.1f} s | {r['data_mb']:,.0f} MB | "
              f"{r['peak_mb']:,.0f} MB | {r['clusters']:,} | {r['pair_precision']:.3f} | "
              f"{r['pair_recall']:.3f} | {r['unassigned']:.3f} | {r['cc_precision']:.3f} / "
              f"{r['cc_recall']:.3f} |", flush=True)  # fmt: skip
    r = child(["--incremental", "--library", str(args.library), "--new", str(args.new),
               "--model-dir", args.model_dir])  # fmt: skip
    print(f"\n{args.new:,} new faces into a {args.library:,}-face library: assign_new "
          f"{r['assign_new_s']:.2f} s vs full re-cluster {r['full_recluster_s']:.1f} s "
          f"(first clustering {r['first_cluster_s']:.1f} s); existing faces moved: "
          f"{r['existing_moved']}; new faces placed as the full re-cluster places them: "
          f"{r['new_same_as_full']:.1%}; pair P/R incremental {r['inc_precision']:.3f} / "
          f"{r['inc_recall']:.3f}, full {r['full_precision']:.3f} / {r['full_recall']:.3f}; "
          f"peak RSS {r['peak_mb']:,.0f} MB")  # fmt: skip


if __name__ == "__main__":
    main()
