"""Gain of quality-weighted fusion per track over per-frame identification, on a
slideshow video built from the labelled photos. Prints figures; asserts nothing.

    python bench/video_fusion.py [--frames-per-slide 12] [--size 640x480] [--seed 0]

Every person of tests/data/identities.csv is enrolled from their first photo (first two
when they have five or more); the other photos are shown one after the other (people
interleaved, so consecutive slides show different people), each for N frames with a
zoom, blur and noise that change over the frames. Accuracy is over all frames shown.
"""

from __future__ import annotations

import argparse
import csv
import tempfile
import time
from collections import defaultdict
from itertools import zip_longest
from pathlib import Path

from faceprint.gallery.gallery import Gallery
from faceprint.video.slideshow import evaluate, write_slideshow

HERE = Path(__file__).resolve().parent
FACES = HERE.parent.parent / "shared" / "faces"
IDENTITIES = HERE.parent / "tests" / "data" / "identities.csv"


def people(identities: Path = IDENTITIES) -> dict[str, list[str]]:
    out: dict[str, list[str]] = defaultdict(list)
    with identities.open() as fh:
        rows = csv.DictReader(line for line in fh if not line.startswith("#"))
        for row in rows:
            out[row["person"]].append(row["file"])
    return dict(out)


def split(
    groups: dict[str, list[str]], limit: int | None = None
) -> tuple[dict[str, list[str]], list[tuple[str, str]]]:
    """(enrolment photos per person, probe slides interleaved across people)."""
    enrol = {p: files[: 2 if len(files) >= 5 else 1] for p, files in groups.items()}
    probes = [[(p, f) for f in files[len(enrol[p]) :]] for p, files in sorted(groups.items())]
    order = [s for batch in zip_longest(*probes) for s in batch if s is not None]
    return enrol, order[:limit]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--frames-per-slide", type=int, default=12)
    ap.add_argument("--size", default="640x480")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--max-blur", type=float, default=4.0)
    ap.add_argument("--max-noise", type=float, default=30.0)
    ap.add_argument("--limit", type=int, default=None, help="at most this many slides")
    args = ap.parse_args()
    w, h = (int(v) for v in args.size.split("x"))
    enrol, order = split(people(), args.limit)
    with tempfile.TemporaryDirectory() as tmp:
        video = Path(tmp) / "slideshow.mp4"
        slides = write_slideshow(
            video,
            [(p, FACES / f) for p, f in order],
            frames_per_slide=args.frames_per_slide,
            size=(w, h),
            seed=args.seed,
            max_blur=args.max_blur,
            max_noise=args.max_noise,
        )
        with Gallery.open(Path(tmp) / "g.db", create=True) as gallery:
            for person, files in enrol.items():
                gallery.enroll(person, *(FACES / f for f in files))
            t0 = time.perf_counter()
            r = evaluate(video, slides, gallery)
            dt = time.perf_counter() - t0
    print(
        f"{len(enrol)} people enrolled, {len(slides)} slides x {args.frames_per_slide} "
        f"frames = {r.frames} frames at {w}x{h} ({r.frames / dt:.1f} frames/s)"
    )
    print(f"frames with a face detected      {r.detected:6.1%}")
    print(f"per-frame accuracy (each alone)  {r.per_frame:6.1%}")
    print(f"fused, online (track so far)     {r.fused_online:6.1%}")
    print(f"fused, final (whole track)       {r.fused_final:6.1%}")
    print(f"slides identified (main track)   {r.slides_correct:6.1%}")
    print(f"confirmed tracks per slide       {r.tracks_per_slide:6.2f}")
    print(f"tracks running over a cut        {r.merged:6d}")


if __name__ == "__main__":
    main()
