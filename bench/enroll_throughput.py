"""Batch enrollment throughput: per photo (the CLI without --ray), batched in-process, and
on a local Ray cluster. Prints figures; asserts nothing.

    python bench/enroll_throughput.py [--faces DIR] [--runs 3] [--batch-size 16]

A folder-per-person tree of symlinks is built from tests/data/identities.csv over DIR
(default ../shared/faces); every run enrolls it into a fresh gallery. Ray figures are
given without the cluster start (started once, before the runs) and its start time.
"""

from __future__ import annotations

import argparse
import csv
import os
import tempfile
import time
from pathlib import Path

import numpy as np

from faceprint.cli.main import main as cli
from faceprint.gallery import Gallery, batch
from faceprint.gallery import enroll as enrollment

HERE = Path(__file__).resolve().parent
DEFAULT_FACES = HERE.parent.parent / "shared" / "faces"
IDENTITIES = HERE.parent / "tests" / "data" / "identities.csv"


def build_tree(faces: Path, root: Path) -> list[tuple[str, Path]]:
    with IDENTITIES.open() as fh:
        rows = list(csv.DictReader(line for line in fh if not line.startswith("#")))
    jobs = []
    for row in rows:
        folder = root / row["person"]
        folder.mkdir(parents=True, exist_ok=True)
        link = folder / row["file"]
        if not link.exists():
            link.symlink_to(faces / row["file"])
        jobs.append((row["person"], link))
    return jobs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--faces", type=Path, default=DEFAULT_FACES)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=enrollment.BATCH_SIZE)
    parser.add_argument("--no-ray", action="store_true")
    args = parser.parse_args()
    yunet = HERE.parent.parent / "shared" / "models" / "yunet"
    if yunet.is_dir() and not os.environ.get("FACEPRINT_MODEL_DIR"):
        os.environ["FACEPRINT_MODEL_DIR"] = str(yunet)
    work = Path(tempfile.mkdtemp(prefix="faceprint-enroll-bench-"))
    jobs = build_tree(args.faces, work / "people")
    n = len(jobs)
    print(f"{n} photos of {len({j[0] for j in jobs})} people; {os.cpu_count()} cores")
    # Warm-up: model conversion and sessions.
    with Gallery.open(work / "warm.db", create=True) as g:
        g.enroll_jobs(jobs[:1])

    def fresh(tag: str, i: int) -> Path:
        return work / f"{tag}{i}.db"

    modes: dict[str, list[float]] = {"CLI (enroll --from-folders)": [], "batched in-process": []}
    for i in range(args.runs):
        t0 = time.perf_counter()
        cli(
            [
                "enroll",
                "--from-folders",
                str(work / "people"),
                "-q",
                "--gallery",
                str(fresh("c", i)),
            ]
        )
        modes["CLI (enroll --from-folders)"].append(time.perf_counter() - t0)
        with Gallery.open(fresh("l", i), create=True) as g:
            t0 = time.perf_counter()
            g.enroll_jobs(jobs, batch_size=args.batch_size)
            modes["batched in-process"].append(time.perf_counter() - t0)
    if not args.no_ray:
        import ray

        t0 = time.perf_counter()
        ray.init(
            include_dashboard=False, object_store_memory=256 * 1024 * 1024, log_to_driver=False
        )
        start = time.perf_counter() - t0
        key = f"Ray Data, {int(ray.cluster_resources().get('CPU', 1))} actors"
        modes[key] = []
        for i in range(args.runs):
            with Gallery.open(fresh("r", i), create=True) as g:
                t0 = time.perf_counter()
                report = batch.enroll_ray(g.store, jobs, g.rules(), batch_size=args.batch_size)
                modes[key].append(time.perf_counter() - t0)
            if report.failures:
                print(f"  ray run {i}: {len(report.failures)} failures")
        ray.shutdown()
        print(f"Ray local cluster start: {start:.1f} s (not included below)")
    for mode, times in modes.items():
        med = float(np.median(times))
        print(
            f"{mode:28s} {n / med:6.2f} photos/s (median of {len(times)} runs: {med:.1f} s; "
            f"runs {', '.join(f'{t:.1f}' for t in times)} s)"
        )


if __name__ == "__main__":
    main()
