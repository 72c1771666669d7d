"""The accuracy table of the README: faceprint eval on the development sets, clean and
degraded, for the offline default and for YuNet — for this tree and, with ``--tree``, for
another faceprint source tree (e.g. an older release checked out elsewhere).

    python bench/devsets.py /tmp/dev                       # the pairs files and trees
    python bench/accuracy_table.py --dev /tmp/dev --work /tmp/acc [--tree /path/to/old/src]

For each tree, detector and data set it runs ``faceprint eval pairs|identify`` (as a user
would, in a subprocess with that tree on PYTHONPATH) with ``--degrade
blur:3,downscale:4,jpeg:10,elastic:4/10`` and prints one markdown table per data set.

An older tree's ``best_threshold`` searched every candidate threshold in a Python loop
(hours for 120,000 pairs); with ``--tree`` the run replaces it by this tree's vectorised
one, which gives the same threshold, so only the templates differ between trees.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
SHARED = HERE.parent.parent / "shared"
DEGRADE = "blur:3,downscale:4,jpeg:10,elastic:4/10"
YUNET_DIR = SHARED / "models" / "yunet"

#: Run in the child: the older tree's k-fold threshold search, vectorised (same result).
SHIM = """
import sys
import numpy as np
import faceprint.eval.metrics as m

def best_threshold(scores, labels):
    s = np.asarray(scores, dtype=np.float64)
    y = np.asarray(labels, dtype=bool)
    finite = s[np.isfinite(s)]
    cand = np.unique(finite) if len(finite) else np.zeros(1)
    mids = np.r_[cand[0] - 1e-6, (cand[1:] + cand[:-1]) / 2, cand[-1] + 1e-6]
    gen, imp = np.sort(s[y]), np.sort(s[~y])
    acc = (len(gen) - np.searchsorted(gen, mids) + np.searchsorted(imp, mids)) / len(s)
    i = int(np.argmax(acc))
    return float(acc[i]), float(mids[i])

m.best_threshold = best_threshold
from faceprint.cli.main import main
sys.exit(main(sys.argv[1:]))
"""


def datasets(dev: Path) -> list[tuple[str, str, list[str]]]:
    return [
        ("master.csv (../shared/faces)", "pairs",
         ["--root", str(SHARED / "faces"), "--pairs", str(SHARED / "faces" / "master.csv")]),
        ("lfw-dev pairs", "pairs",
         ["--root", str(SHARED / "lfw-dev"), "--pairs", str(dev / "lfw-dev-pairs.csv")]),
        ("faces, 1:N", "identify", ["--root", str(dev / "faces-people")]),
        ("lfw-dev, 1:N", "identify", ["--root", str(dev / "lfw-dev-people")]),
    ]  # fmt: skip


def run(tree: Path | None, protocol: str, args: list[str], detector: str, out: Path,
        cache: Path) -> dict[str, Any]:  # fmt: skip
    out.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, FACEPRINT_CACHE_DIR=str(cache), FACEPRINT_OFFLINE="1")
    env.setdefault("FACEPRINT_THREADS", "1")
    argv = ["eval", protocol, *args, "--detector", detector, "--out", str(out),
            "--degrade", DEGRADE, "-q"]  # fmt: skip
    if detector == "yunet":
        argv += ["--model-dir", str(YUNET_DIR)]
    if tree is not None:
        env["PYTHONPATH"] = str(tree)
        cmd = [sys.executable, "-c", SHIM, *argv]
    else:
        cmd = [sys.executable, "-m", "faceprint.cli.main", *argv]
    if not (out / "results.json").is_file():
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
        if proc.returncode != 0 or not (out / "results.json").is_file():
            raise SystemExit(f"{' '.join(argv)} failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    results: dict[str, Any] = json.loads((out / "results.json").read_text())
    return results


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{100 * x:.2f}%"


def row(protocol: str, c: dict[str, Any]) -> list[str]:
    found = f"{len(c.get('no_face', []))}"
    if protocol == "pairs":
        tar = c["tar_at_fmr"]
        return [
            f"{_pct(c['accuracy'])} ± {100 * c['accuracy_std']:.2f}",
            _pct(tar["0.001"]["tar"]) if "0.001" in tar else "-",
            _pct(tar["0.0001"]["tar"]) if "0.0001" in tar else "-",
            _pct(c["eer"]), found,
        ]  # fmt: skip
    fnir = c["fnir_at_fpir"]
    return [
        _pct(c["rank1"]),
        _pct(fnir["0.1"]["fnir"]) if "0.1" in fnir else "-",
        _pct(fnir["0.01"]["fnir"]) if "0.01" in fnir else "-",
        found,
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--dev", type=Path, required=True, help="output of bench/devsets.py")
    parser.add_argument("--work", type=Path, required=True, help="eval outputs go here")
    parser.add_argument("--tree", type=Path, default=None, help="another tree's src/ (before)")
    parser.add_argument("--detectors", default="mmod,yunet")
    args = parser.parse_args()
    trees: list[tuple[str, Path | None]] = [("now", None)]
    if args.tree is not None:
        trees.insert(0, ("before", args.tree))
    for title, protocol, extra in datasets(args.dev):
        if protocol == "pairs":
            header = ["10-fold accuracy", "TAR@1e-3", "TAR@1e-4", "EER", "no face"]
        else:
            header = ["rank-1", "FNIR@FPIR 0.1", "FNIR@FPIR 0.01", "no face"]
        print(f"\n### {title}\n")
        print("| tree | detector | condition | " + " | ".join(header) + " |")
        print("|---" * (3 + len(header)) + "|")
        for name, tree in trees:
            for det in args.detectors.split(","):
                slug = f"{name}-{det}-{protocol}-{title.split()[0].strip(',')}"
                cache = args.work / f"cache-{name}"
                out = args.work / slug
                # identify runs reuse the pairs run's template cache (same images, same keys)
                twin = (
                    args.work
                    / f"{name}-{det}-pairs-{'lfw-dev' if 'lfw' in title else 'master.csv'}"
                )
                if protocol == "identify" and (twin / "templates.npz").is_file():
                    out.mkdir(parents=True, exist_ok=True)
                    if not (out / "templates.npz").exists():
                        shutil.copy(twin / "templates.npz", out / "templates.npz")
                res = run(tree, protocol, extra, det, out, cache)
                for c in res["conditions"]:
                    cells = row(protocol, c)
                    print(f"| {name} | {det} | {c['condition']} | " + " | ".join(cells) + " |")
        sys.stdout.flush()


if __name__ == "__main__":
    main()
