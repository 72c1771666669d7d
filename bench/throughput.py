"""Throughput of faceprint's pipelines next to the peer's (dlib), and of 1:N search.

    python bench/throughput.py [--faces DIR] [--limit N] [--model-dir DIR]
        [--pipelines offline,yunet,dlib-hog,dlib-cnn] [--cnn-photos N] [--no-search]

One run, the same photos (DIR/*.jpg, default ../shared/faces), each decoded once before
timing. Every pipeline goes from the RGB array to one template per face found:

* ``offline``: faceprint's offline default, ``faceprint.detect.detect(image,
  detector="mmod")`` (MMOD, fast mode) then ``faceprint.embed.embed``;
* ``yunet``: the same with YuNet (file from ``--model-dir`` / ``FACEPRINT_MODEL_DIR``,
  default ../shared/models/yunet);
* ``dlib-hog`` / ``dlib-cnn`` (only when ``import dlib`` works; ``pip install dlib-bin``,
  never a faceprint dependency): the face_recognition pipeline -- dlib's HOG detector or
  its MMOD CNN, both with one upsampling, then the 5-point shape predictor and
  ``compute_face_descriptor``, models from the ``face_recognition_models`` package.

The photos are taken in turn and every pipeline runs on each photo before the next (in an
order that rotates), so a machine whose load changes during the run slows every pipeline
alike. dlib's CNN takes minutes per photo on a CPU without BLAS, so it runs only on the
``--cnn-photos`` smallest photos (default 3; ``0`` skips it, ``-1`` all) and is compared
with the offline default on those photos. Prints photos/s, faces found and the ratio of
the offline default to dlib HOG; then embedding and exact 1:N search figures.
"""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from faceprint.detect import detect
from faceprint.embed import embed
from faceprint.embed.dlib_resnet import embed_chips
from faceprint.io import load_image
from faceprint.match.search import ExactIndex
from faceprint.types import Image

HERE = Path(__file__).resolve().parent
SHARED = HERE.parent.parent / "shared"

Pipeline = Callable[[Image], int]


def faceprint_pipeline(detector: str, model_dir: str | None) -> Pipeline:
    def run(image: Image) -> int:
        faces = detect(image, detector=detector, model_dir=model_dir)
        embed(image, faces, model_dir=model_dir)
        return len(faces)

    return run


def dlib_pipelines() -> dict[str, Pipeline]:
    """face_recognition's pipelines on dlib, or {} when dlib is not installed."""
    try:
        import dlib
        import face_recognition_models
    except ImportError:
        return {}
    models = Path(face_recognition_models.__file__).parent / "models"
    sp = dlib.shape_predictor(str(models / "shape_predictor_5_face_landmarks.dat"))
    rec = dlib.face_recognition_model_v1(str(models / "dlib_face_recognition_resnet_model_v1.dat"))
    hog = dlib.get_frontal_face_detector()
    cnn = dlib.cnn_face_detection_model_v1(str(models / "mmod_human_face_detector.dat"))

    def templates(image: Image, rects: Any) -> int:
        for rect in rects:
            np.asarray(rec.compute_face_descriptor(image, sp(image, rect), 1))
        return len(rects)

    def run_hog(image: Image) -> int:
        return templates(image, hog(image, 1))

    def run_cnn(image: Image) -> int:
        return templates(image, [d.rect for d in cnn(image, 1)])

    return {"dlib-hog": run_hog, "dlib-cnn": run_cnn}


def bench_pipelines(args: argparse.Namespace) -> None:
    paths = sorted(args.faces.glob("*.jpg"))[: args.limit]
    images = [np.ascontiguousarray(load_image(p)) for p in paths]
    wanted = args.pipelines.split(",")
    available: dict[str, Pipeline] = {
        "offline": faceprint_pipeline("mmod", None),
        "yunet": faceprint_pipeline("yunet", args.model_dir),
        **dlib_pipelines(),
    }
    for name in wanted:
        if name not in available:
            print(f"{name}: not available (dlib pipelines need `pip install dlib-bin`)")
    runs = {name: available[name] for name in wanted if name in available}
    by_size = sorted(range(len(images)), key=lambda i: images[i].shape[0] * images[i].shape[1])
    n_cnn = len(images) if args.cnn_photos < 0 else min(args.cnn_photos, len(images))
    cnn_set = set(by_size[:n_cnn])
    if "dlib-cnn" in runs and not cnn_set:
        del runs["dlib-cnn"]
    small = by_size[0]
    for run in runs.values():  # warm-up: sessions, model conversions, caches
        run(images[small])
    names = list(runs)
    seconds = {n: 0.0 for n in names}
    faces = {n: 0 for n in names}
    done = {n: 0 for n in names}
    offline_on_cnn_set = [0.0, 0]
    for i, image in enumerate(images):
        order = names[i % len(names) :] + names[: i % len(names)]
        for name in order:
            if name == "dlib-cnn" and i not in cnn_set:
                continue
            t0 = time.perf_counter()
            found = runs[name](image)
            dt = time.perf_counter() - t0
            seconds[name] += dt
            faces[name] += found
            done[name] += 1
            if name == "offline" and i in cnn_set:
                offline_on_cnn_set[0] += dt
                offline_on_cnn_set[1] += found
    mp = sum(im.shape[0] * im.shape[1] for im in images) / len(images) / 1e6
    print(f"{len(images)} photos of {args.faces} (mean {mp:.2f} MP), threads: "
          f"{os.environ.get('FACEPRINT_THREADS', os.cpu_count())}, load before: "
          f"{os.getloadavg()[0]:.1f}")  # fmt: skip
    rate = {n: done[n] / seconds[n] for n in names if seconds[n] > 0}
    for name in names:
        subset = " (smallest photos only, see below)" if name == "dlib-cnn" else ""
        print(
            f"{name:9s} {rate[name]:6.2f} photos/s  {1000 / rate[name]:7.0f} ms/photo  "
            f"{faces[name]:3d} faces in {done[name]} photos{subset}"
        )
    if "offline" in rate and "dlib-hog" in rate:
        print(f"offline default / dlib HOG: {rate['offline'] / rate['dlib-hog']:.2f}x photos/s")
    if "dlib-cnn" in rate and "offline" in rate:
        off = offline_on_cnn_set[1], done["dlib-cnn"] / offline_on_cnn_set[0]
        print(
            f"on the {n_cnn} smallest photos: offline default {off[1]:.2f} photos/s "
            f"({off[0]} faces), dlib CNN {rate['dlib-cnn']:.3f} photos/s "
            f"({faces['dlib-cnn']} faces): {off[1] / rate['dlib-cnn']:.0f}x"
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
    parser.add_argument("--faces", type=Path, default=SHARED / "faces")
    parser.add_argument("--pipelines", default="offline,yunet,dlib-hog,dlib-cnn")
    parser.add_argument("--model-dir", default=None, help="directory with the YuNet file")
    parser.add_argument("--limit", type=int, default=None)
    parser.add_argument("--cnn-photos", type=int, default=3)
    parser.add_argument("--no-search", action="store_true")
    args = parser.parse_args()
    yunet_dir = SHARED / "models" / "yunet"
    if args.model_dir is None and not os.environ.get("FACEPRINT_MODEL_DIR") and yunet_dir.is_dir():
        args.model_dir = str(yunet_dir)
    bench_pipelines(args)
    if not args.no_search:
        bench_batch_embed()
        bench_search()


if __name__ == "__main__":
    main()
