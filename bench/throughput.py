"""Throughput of the pipeline and of 1:N search. Prints figures; asserts nothing.

    python bench/throughput.py [--faces DIR] [--detectors mmod,yunet] [--limit N]

Detect+align+embed: every photo in DIR (default ../shared/faces), after one warm-up,
reported as photos/s, faces/s and ms per stage. Search: exact cosine search over 10k and
100k random unit templates (128-d), single probes and batches of 64.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import numpy as np

from faceprint.align.chip import extract_chips
from faceprint.detect import detect
from faceprint.embed.dlib_resnet import embed_chips
from faceprint.io import load_image
from faceprint.match.search import ExactIndex

HERE = Path(__file__).resolve().parent
DEFAULT_FACES = HERE.parent.parent / "shared" / "faces"


def bench_pipeline(folder: Path, detector: str, limit: int | None) -> None:
    paths = sorted(p for p in folder.glob("*.jpg"))[:limit]
    images = [load_image(p) for p in paths]
    detect(images[0], detector=detector)  # warm-up: sessions, conversions
    t_det = t_emb = 0.0
    n_faces = 0
    for image in images:
        t0 = time.perf_counter()
        faces = detect(image, detector=detector)
        t1 = time.perf_counter()
        if faces:
            chips = extract_chips(image, [f.landmarks for f in faces])
            embed_chips(chips)
        t2 = time.perf_counter()
        t_det += t1 - t0
        t_emb += t2 - t1
        n_faces += len(faces)
    total = t_det + t_emb
    mp = sum(i.shape[0] * i.shape[1] for i in images) / len(images) / 1e6
    print(
        f"{detector:6s} {len(images)} photos (mean {mp:.1f} MP), {n_faces} faces: "
        f"{len(images) / total:.2f} photos/s, {n_faces / total:.2f} faces/s; "
        f"detect+landmarks {1000 * t_det / len(images):.0f} ms/photo, "
        f"align+embed {1000 * t_emb / max(n_faces, 1):.1f} ms/face"
    )


def bench_batch_embed() -> None:
    rng = np.random.default_rng(0)
    for batch in (1, 8, 32):
        chips = rng.integers(0, 255, (batch, 150, 150, 3), dtype=np.uint8)
        embed_chips(chips)
        t0 = time.perf_counter()
        reps = max(1, 64 // batch)
        for _ in range(reps):
            embed_chips(chips)
        dt = (time.perf_counter() - t0) / (reps * batch)
        print(f"embed batch {batch:2d}: {1000 * dt:.1f} ms/face, {1 / dt:.0f} faces/s")


def bench_search() -> None:
    rng = np.random.default_rng(0)
    for n in (10_000, 100_000):
        emb = rng.standard_normal((n, 128)).astype(np.float32)
        emb /= np.linalg.norm(emb, axis=1, keepdims=True)
        index = ExactIndex(emb, np.arange(n) // 5)  # 5 templates per person
        probes = emb[rng.integers(0, n, 64)] + 0.01
        index.search(probes[:1])
        t0 = time.perf_counter()
        for p in probes:
            index.search(p[None])
        single = (time.perf_counter() - t0) / len(probes)
        t0 = time.perf_counter()
        index.search(probes)
        batched = (time.perf_counter() - t0) / len(probes)
        print(
            f"search {n:>7,} templates ({n // 5:,} people): {1000 * single:.2f} ms/probe "
            f"single, {1000 * batched:.2f} ms/probe in batches of 64"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--faces", type=Path, default=DEFAULT_FACES)
    parser.add_argument("--detectors", default="mmod,yunet")
    parser.add_argument("--limit", type=int, default=None)
    args = parser.parse_args()
    if "yunet" in args.detectors and not os.environ.get("FACEPRINT_MODEL_DIR"):
        yunet = HERE.parent.parent / "shared" / "models" / "yunet"
        if yunet.is_dir():
            os.environ["FACEPRINT_MODEL_DIR"] = str(yunet)
    print(f"threads: {os.environ.get('FACEPRINT_THREADS', os.cpu_count())}")
    for det in args.detectors.split(","):
        bench_pipeline(args.faces, det, args.limit)
    bench_batch_embed()
    bench_search()


if __name__ == "__main__":
    main()
