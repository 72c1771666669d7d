"""Measure the cosine thresholds of the default pack at target false-match rates.

    python bench/calibrate_threshold.py [--detector yunet|mmod]

Every pair of the labelled photos in ../shared/faces (tests/data/identities.csv, 62
photos of 13 people: 148 genuine and 1743 impostor pairs) is scored with the largest face
of each photo. Prints the threshold for FMR 1e-1, 1e-2 and 1e-3 (the smallest cosine at
which at most that fraction of impostor pairs match) with the TMR there, the EER, and the
accuracy on master.csv. These are the figures in faceprint.models.packs.DLIB_PACK.
"""

from __future__ import annotations

import argparse
import csv
import itertools
import time
from pathlib import Path

import numpy as np

import faceprint
import faceprint.models.packs
from faceprint.eval import metrics

HERE = Path(__file__).resolve().parent
FACES = HERE.parent.parent / "shared" / "faces"
LABELS = HERE.parent / "tests" / "data" / "identities.csv"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--detector", default=None)
    args = parser.parse_args()
    with LABELS.open() as fh:
        rows = list(csv.DictReader(line for line in fh if not line.startswith("#")))
    t0 = time.perf_counter()
    emb = {}
    for row in rows:
        faces = faceprint.embed_faces(FACES / row["file"], detector=args.detector)
        if not faces or faces[0].embedding is None:
            raise SystemExit(f"no face in {row['file']}")
        emb[row["file"]] = faces[0].embedding
    print(f"embedded {len(emb)} photos in {time.perf_counter() - t0:.1f} s")
    scores, same = [], []
    for a, b in itertools.combinations(rows, 2):
        scores.append(float(emb[a["file"]] @ emb[b["file"]]))
        same.append(a["person"] == b["person"])
    s, y = np.array(scores), np.array(same)
    print(f"{int(y.sum())} genuine, {int((~y).sum())} impostor pairs")
    print(f"genuine min {s[y].min():.4f}, impostor max {s[~y].max():.4f}")
    for fmr in (1e-1, 1e-2, 1e-3):
        tmr, thr = metrics.tar_at_fmr(s, y, fmr)
        print(f"FMR {fmr:g}: threshold {thr:.4f}, TMR {tmr:.4f}")
    print(f"EER {metrics.eer(s, y):.4f}, AUC {metrics.auc(metrics.roc(s, y)):.5f}")
    with (FACES / "master.csv").open() as fh:
        pairs = list(csv.DictReader(fh))
    ms = np.array([float(emb[p["file_x"]] @ emb[p["file_y"]]) for p in pairs])
    my = np.array([p["Decision"] == "Yes" for p in pairs])
    for fmr in (1e-2, 1e-3):
        thr = faceprint.models.packs.DEFAULT_PACK.threshold(fmr)
        acc = float(np.mean((ms >= thr) == my))
        print(
            f"master.csv ({len(pairs)} pairs) accuracy at the pack's FMR {fmr:g} threshold "
            f"{thr:.4f}: {acc:.4f}"
        )
    mean, std, _ = metrics.kfold_accuracy(ms, my, metrics.assign_folds(len(ms)))
    print(f"master.csv 10-fold accuracy {mean:.4f} +- {std:.4f}")


if __name__ == "__main__":
    main()
