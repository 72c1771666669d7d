"""1:N search at scale: exact vs approximate (FAISS IVF-SQ8). Prints figures; asserts nothing.

    python bench/search_scale.py [--n 1000000] [--data synthetic|random] [--probes 1000]

``--data synthetic`` (default, 128-d): templates drawn from the real templates'
distribution (bench/synthetic.py: fitted on every face of ../shared/faces and lfw-dev, so
impostor cosines sit at 0.77-0.89 as real ones do, many people, a heavy tail of singletons);
probes are held-out faces of people who have at least two. This narrow cone is what makes
approximate search hard.

``--data random`` (the older model, any --dims): N/5 identities, each a random unit
centre c in D dims, and
5 templates per identity x = normalise(c + s * z) with z ~ N(0, I/D) and s = --spread
(default 0.27): two templates of one identity then have cosine about 1/(1+s^2) ~ 0.93
(genuine 0.9-0.97), and templates of different identities about N(0, 1/D) (impostor
0 +- 0.09 at 128-d, mostly 0-0.3). Probes are fresh samples of random enrolled
identities. Reported: build time, ms per probe (median of --runs runs; probes searched
in batches of 64 and one at a time), recall@1 of the approximate index against the exact
one (same top-1 person), the process's peak RSS and the index's own bytes.
"""

from __future__ import annotations

import argparse
import os
import resource
import time
from collections.abc import Callable

import numpy as np

from faceprint.match.ann import DEFAULT_NPROBE, AnnIndex, faiss_module
from faceprint.match.search import ExactIndex

PER_PERSON = 5


def unit(x: np.ndarray) -> np.ndarray:
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    return x


def generate(
    n: int, dim: int, n_probes: int, spread: float, seed: int = 0
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    n_people = n // PER_PERSON
    centres = unit(rng.standard_normal((n_people, dim), dtype=np.float32))
    emb = np.repeat(centres, PER_PERSON, axis=0)
    noise_scale = np.float32(spread / np.sqrt(dim))
    for lo in range(0, len(emb), 100_000):  # in chunks: no second N x D temporary
        part = emb[lo : lo + 100_000]
        part += noise_scale * rng.standard_normal(part.shape, dtype=np.float32)
        unit(part)
    people = np.arange(len(emb), dtype=np.int64) // PER_PERSON
    truth = rng.integers(0, n_people, n_probes)
    probes = centres[truth] + noise_scale * rng.standard_normal((n_probes, dim), dtype=np.float32)
    return emb, people, unit(probes), truth


def generate_synthetic(n: int, n_probes: int, seed: int = 0) -> tuple[np.ndarray, ...]:
    """Gallery and held-out probes drawn from the real templates' distribution."""
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import synthetic
    from cluster_quality import load_library

    yunet = Path(__file__).resolve().parents[2] / "shared" / "models" / "yunet"
    model = synthetic.cached_model(load_library(model_dir=str(yunet)))
    syn = synthetic.draw(model, n + n_probes, seed=seed)
    rng = np.random.default_rng(seed + 1)
    counts = np.bincount(syn.person)
    # one face each of n_probes people with 2+ faces is held out as their probe
    candidates = np.flatnonzero(counts[syn.person] >= 2)
    first = candidates[np.unique(syn.person[candidates], return_index=True)[1]]
    held = rng.choice(first, size=min(n_probes, len(first)), replace=False)
    keep = np.ones(len(syn.person), dtype=bool)
    keep[held] = False
    emb, people = syn.templates[keep][:n], syn.person[keep][:n]
    return emb, people.astype(np.int64), syn.templates[held], syn.person[held]


def rss_mb() -> float:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 1e6


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e3


def timed(runs: int, fn: Callable[..., object], *args: object) -> float:
    """Median seconds of ``fn(*args)`` over ``runs`` runs."""
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn(*args)
        times.append(time.perf_counter() - t0)
    return float(np.median(times))


def one_at_a_time(index: ExactIndex | AnnIndex, probes: np.ndarray) -> None:
    for p in probes:
        index.search(p[None], 1)


def batched(index: ExactIndex | AnnIndex, probes: np.ndarray, batch: int = 64) -> list[int]:
    top = []
    for lo in range(0, len(probes), batch):
        top.extend(h[0].person for h in index.search(probes[lo : lo + batch], 1))
    return top


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n", type=int, default=1_000_000, help="templates")
    parser.add_argument("--dims", default="128,512")
    parser.add_argument("--probes", type=int, default=1000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--spread", type=float, default=0.27)
    parser.add_argument("--nprobe", default=f"8,{DEFAULT_NPROBE},32,64")
    parser.add_argument("--data", choices=["synthetic", "random"], default="synthetic")
    parser.add_argument("--no-ann", action="store_true")
    args = parser.parse_args()
    print(f"cores: {os.cpu_count()}, FACEPRINT/OMP threads: {os.environ.get('OMP_NUM_THREADS')}")
    dims = [128] if args.data == "synthetic" else [int(d) for d in args.dims.split(",")]
    for dim in dims:
        t0 = time.perf_counter()
        if args.data == "synthetic":
            emb, people, probes, truth = generate_synthetic(args.n, args.probes)
        else:
            emb, people, probes, truth = generate(args.n, dim, args.probes, args.spread)
        rng = np.random.default_rng(1)
        order = np.argsort(people, kind="stable")
        sp = people[order]
        pairs = np.flatnonzero(sp[1:] == sp[:-1])[:2000]
        gen = np.einsum("ij,ij->i", emb[order[pairs]], emb[order[pairs + 1]])
        a, b = rng.integers(0, len(emb), (2, 4000))
        diff = people[a] != people[b]
        imp = np.einsum("ij,ij->i", emb[a[diff]], emb[b[diff]])
        print(
            f"\n{args.data} {dim}-d, {len(emb):,} templates, {len(np.unique(people)):,} people "
            f"(generated in {time.perf_counter() - t0:.1f} s): genuine cosine "
            f"{np.percentile(gen, 5):.3f}..{np.percentile(gen, 95):.3f} (5-95%), impostor "
            f"{np.percentile(imp, 5):.3f}..{np.percentile(imp, 95):.3f}; "
            f"templates {emb.nbytes / 1e6:.0f} MB"
        )
        t0 = time.perf_counter()
        exact = ExactIndex(emb, people)
        build = time.perf_counter() - t0
        exact_top = batched(exact, probes)
        t_batch = timed(args.runs, batched, exact, probes) / len(probes)
        few = probes[:20]
        t_single = timed(args.runs, one_at_a_time, exact, few) / len(few)
        acc = float(np.mean(np.array(exact_top) == truth))
        print(
            f"  exact: build {build:.1f} s; {1000 * t_batch:.1f} ms/probe in batches of 64, "
            f"{1000 * t_single:.1f} ms/probe one at a time; top-1 = true identity "
            f"{acc:.4f}; RSS {rss_mb():.0f} MB"
        )
        del exact
        if args.no_ann:
            continue
        if faiss_module() is None:
            print("  approximate: faiss-cpu not installed (pip install 'faceprint[scale]')")
            continue
        t0 = time.perf_counter()
        ann = AnnIndex.train(emb, np.arange(len(emb), dtype=np.int64), people)
        build = time.perf_counter() - t0
        print(
            f"  approximate IVF{ann._index.nlist},SQ8: build (train + add) {build:.1f} s; "
            f"index {ann.index_bytes / 1e6:.0f} MB (+ float32 templates for re-scoring "
            f"{emb.nbytes / 1e6:.0f} MB); RSS {rss_mb():.0f} MB, peak {peak_mb():.0f} MB"
        )
        for nprobe in (int(x) for x in args.nprobe.split(",")):
            ann.nprobe = nprobe
            top = batched(ann, probes)
            recall = float(np.mean(np.array(top) == np.array(exact_top)))
            t_batch = timed(args.runs, batched, ann, probes) / len(probes)
            t_single = timed(args.runs, one_at_a_time, ann, few) / len(few)
            print(
                f"  approximate nprobe {nprobe:3d}: {1000 * t_batch:.2f} ms/probe in batches "
                f"of 64, {1000 * t_single:.2f} ms/probe one at a time; recall@1 vs exact "
                f"{recall:.4f}"
            )
        del ann, emb


if __name__ == "__main__":
    main()
