"""Calibrate a pack's thresholds on the development sets, down to FMR 1e-5.

    python bench/calibrate_threshold.py [--detector mmod|yunet] [--pack ID] [--model-dir DIR]

Every photo of ../shared/faces (62 labelled photos, 13 people) and ../shared/lfw-dev (1,548
photos, 1,467 people) gives the template of its subject face (the pipeline users get:
faceprint.detect.detect, subject first, faceprint.embed with the pack). Every pair of them
is scored: about 1.3 million impostor pairs and 288 genuine pairs. For each target FMR the
threshold is the smallest similarity at which at most that share of impostor pairs match
(faceprint.eval.metrics.threshold_at_fmr, vectorised); FNMR there is measured on the
genuine pairs. Prints the rows for ``thresholds=`` of the pack in faceprint/models/packs.py.
Templates are cached in /tmp (keyed by pack, detector and file), so a rerun is quick.
"""

from __future__ import annotations

import argparse
import hashlib
import sys
import time
from pathlib import Path

import numpy as np

from faceprint.detect import detect
from faceprint.embed import embed
from faceprint.eval import metrics
from faceprint.io import file_sha256, load_image
from faceprint.models.packs import pack as pack_of

sys.path.insert(0, str(Path(__file__).resolve().parent))
import devsets  # noqa: E402

FMRS = (1e-1, 1e-2, 1e-3, 1e-4, 1e-5)
CACHE = Path("/tmp/faceprint-calibration")


def templates(photos: list[devsets.Photo], pack_id: str | None, detector: str | None,
              model_dir: str | None) -> tuple[np.ndarray, list[int]]:  # fmt: skip
    """Subject-face templates (NaN rows where no face was found) and multi-face counts."""
    use = pack_of(pack_id)
    key = hashlib.sha256(
        "|".join([use.id, str(detector), *(file_sha256(p.path) for p in photos)]).encode()
    ).hexdigest()[:16]
    cache = CACHE / f"{key}.npz"
    if cache.is_file():
        data = np.load(cache)
        return data["vectors"], list(data["faces"])
    vectors = np.full((len(photos), use.dim), np.nan, np.float32)
    faces: list[int] = []
    t0 = time.perf_counter()
    for i, p in enumerate(photos):
        image = load_image(p.path)
        found = detect(image, detector=detector, model_dir=model_dir)
        faces.append(len(found))
        if found:
            embed(image, found[:1], pack=use, model_dir=model_dir)
            vectors[i] = found[0].embedding
        if i % 200 == 0:
            print(f"  {i}/{len(photos)} photos, {time.perf_counter() - t0:.0f} s", file=sys.stderr)
    CACHE.mkdir(exist_ok=True)
    np.savez(cache, vectors=vectors, faces=np.array(faces))
    return vectors, faces


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--detector", default=None)
    parser.add_argument("--pack", default=None, help="pack id (default: the default pack)")
    parser.add_argument("--model-dir", default=None)
    args = parser.parse_args()
    photos = devsets.faces_photos() + devsets.lfw_photos()
    t0 = time.perf_counter()
    vecs, faces = templates(photos, args.pack, args.detector, args.model_dir)
    found = ~np.isnan(vecs[:, 0])
    print(f"{len(photos)} photos, a face in {found.sum()} ({found.mean():.2%}), several in "
          f"{sum(n > 1 for n in faces)}; {time.perf_counter() - t0:.0f} s")  # fmt: skip
    i, j, same = devsets.all_pairs(photos)
    ok = found[i] & found[j]
    scores = np.full(len(i), -np.inf)
    for lo in range(0, len(i), 2_000_000):
        a, b = i[lo : lo + 2_000_000], j[lo : lo + 2_000_000]
        scores[lo : lo + 2_000_000] = np.einsum("ij,ij->i", vecs[a], vecs[b], dtype=np.float64)
    scores[~ok] = -np.inf  # a photo without a face: rejected at every threshold
    gen, imp = scores[same], scores[~same]
    print(f"{len(gen)} genuine, {len(imp)} impostor pairs (pairs with no face: {(~ok).sum()})")
    print(f"EER {metrics.eer(scores, same):.4f}")
    rows = []
    for fmr in FMRS:
        thr = metrics.threshold_at_fmr(imp, fmr)
        fnmr = float(np.mean(gen < thr))
        rows.append((fmr, round(thr, 4), len(imp), len(gen), round(fnmr, 4)))
        print(f"FMR {fmr:g}: threshold {thr:.4f}  FNMR {fnmr:.4f} "
              f"({int((imp >= thr).sum())} impostor pairs at or above)")  # fmt: skip
    print("thresholds rows for packs.py:")
    for r in rows:
        print(f"            ({r[0]:g}, {r[1]}, {r[2]}, {r[3]}, {r[4]}),")


if __name__ == "__main__":
    main()
