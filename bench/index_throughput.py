"""Photo-library indexing: throughput, and resume correctness under kill -9.

    python bench/index_throughput.py [--photos ../shared/faces] [--runs 2] [--kills 20]
                                     [--batch-size 16] [--seed 0]

1. Throughput: ``faceprint index PHOTOS`` into a fresh gallery, in this process after a
   warm-up (models converted and loaded), ``--runs`` times: photos/s and faces/s, median.
2. Resume: an uninterrupted ``faceprint index`` (a subprocess) gives the reference state.
   Then ``--kills`` times: a fresh gallery, ``faceprint index`` killed with SIGKILL at a
   random moment (uniform over the reference run's duration, so from start-up and model
   loading through the batches to the final clustering), sometimes the re-run killed
   again, then re-run to the end; its final state (every face's key, box and cluster,
   every file, the people and their templates) is compared with the reference.

Prints figures; asserts nothing (a differing state is reported and the exit status is 1).
"""

from __future__ import annotations

import argparse
import os
import random
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from faceprint.library.index import Job, analyse, index
from faceprint.library.schema import COMPONENT
from faceprint.library.store import Library

HERE = Path(__file__).resolve().parent
DEFAULT_PHOTOS = HERE.parent.parent / "shared" / "faces"


def open_library(path: Path) -> Library:
    from faceprint.gallery.sqlite import SqliteDatabase

    db = SqliteDatabase(path, create=True, components=[COMPONENT])
    return Library(db.collection("default", create=True))


def throughput(photos: Path, runs: int, batch_size: int, work: Path) -> None:
    from faceprint.models.packs import pack

    first = sorted(photos.rglob("*.jpg"))[0]
    analyse([Job(str(first), 0, 0, "")], pack(None))  # models converted and loaded
    rates, face_rates = [], []
    for i in range(runs):
        lib = open_library(work / f"t{i}.db")
        t0 = time.perf_counter()
        report = index(lib, [photos], pack(None), batch_size=batch_size)
        dt = time.perf_counter() - t0
        lib.store.close()
        rates.append(report.analysed / dt)
        face_rates.append(report.faces / dt)
        g = report.regrouped
        print(f"  run {i + 1}: {report.analysed} photos, {report.faces} faces in {dt:.1f} s; "
              f"{g.clusters if g else 0} clusters")  # fmt: skip
    print(f"throughput: {statistics.median(rates):.1f} photos/s, "
          f"{statistics.median(face_rates):.1f} faces/s (median of {runs} runs, batches of "
          f"{batch_size})")  # fmt: skip


def state(path: Path) -> dict[str, Any]:
    """Everything a user can see of the gallery, keyed by content (not by row ids)."""
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        faces = sorted(db.execute(
            "SELECT face_key, round(x0, 2), round(y0, 2), round(x1, 2), round(y1, 2), cluster, "
            "pending, round(quality, 4) FROM library_faces"
        ))  # fmt: skip
        files = sorted(db.execute("SELECT path, size, mtime_ns, sha256 FROM library_files"))
        photos = sorted(db.execute("SELECT sha256, width, height, taken FROM library_photos"))
        people = sorted(db.execute(
            "SELECT p.name, t.image_sha256 FROM people p JOIN templates t ON t.person_id = p.id"
        ))  # fmt: skip
    finally:
        db.close()
    return {"faces": faces, "files": files, "photos": photos, "people": people}


def run_index(photos: Path, gallery: Path, batch_size: int,
              kill_after: float | None = None) -> tuple[bool, float]:  # fmt: skip
    """``faceprint index`` in a subprocess; SIGKILL after ``kill_after`` s. Returns
    (killed before it finished, seconds)."""
    cmd = [sys.executable, "-m", "faceprint.cli.main", "index", str(photos), "--gallery",
           str(gallery), "--batch-size", str(batch_size), "-q"]  # fmt: skip
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        proc.wait(timeout=kill_after)
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        return True, time.perf_counter() - t0
    if proc.returncode not in (0, 2):
        err = proc.stderr.read().decode() if proc.stderr else ""
        raise SystemExit(f"faceprint index failed ({proc.returncode}): {err}")
    return False, time.perf_counter() - t0


def stored(gallery: Path) -> int:
    if not gallery.exists():
        return -1
    try:
        db = sqlite3.connect(f"file:{gallery}?mode=ro", uri=True)
        try:
            return int(db.execute("SELECT COUNT(*) FROM library_photos").fetchone()[0])
        finally:
            db.close()
    except sqlite3.Error:
        return -1


def resume(photos: Path, kills: int, batch_size: int, seed: int, work: Path) -> bool:
    reference = work / "reference.db"
    _, full = run_index(photos, reference, batch_size)
    want = state(reference)
    print(f"reference run: {full:.1f} s, {len(want['faces'])} faces, "
          f"{len(want['photos'])} photos")  # fmt: skip
    rng = random.Random(seed)
    done = 0
    trial = 0
    same = 0
    moments: list[str] = []
    while done < kills:
        trial += 1
        g = work / f"killed{trial}.db"
        while done < kills:
            at = rng.uniform(0.0, full)
            killed, _ = run_index(photos, g, batch_size, kill_after=at)
            if not killed:
                break
            done += 1
            n = stored(g)
            moments.append("before the gallery existed" if n < 0 else f"{n} photos stored")
            if rng.random() < 0.6:  # re-run to the end (else: kill the re-run as well)
                break
        run_index(photos, g, batch_size)
        ok = state(g) == want
        same += ok
        print(f"  trial {trial}: {'same final state' if ok else 'DIFFERENT final state'}")
    print(f"resume: {done} kill -9s in {trial} trials (at: {'; '.join(moments)}); "
          f"{same}/{trial} trials ended in the uninterrupted run's state")  # fmt: skip
    return same == trial


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--photos", type=Path, default=DEFAULT_PHOTOS)
    parser.add_argument("--runs", type=int, default=2)
    parser.add_argument("--kills", type=int, default=20)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    yunet = HERE.parent.parent / "shared" / "models" / "yunet"
    if yunet.is_dir() and not os.environ.get("FACEPRINT_MODEL_DIR"):
        os.environ["FACEPRINT_MODEL_DIR"] = str(yunet)
    os.environ.setdefault("FACEPRINT_OFFLINE", "1")
    work = Path(tempfile.mkdtemp(prefix="faceprint-index-bench-"))
    print(f"photos: {args.photos}; {os.cpu_count()} cores; work in {work}")
    if args.runs:
        throughput(args.photos, args.runs, args.batch_size, work)
    ok = resume(args.photos, args.kills, args.batch_size, args.seed, work) if args.kills else True
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
