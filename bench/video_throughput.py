"""Frames per second of `faceprint video` processing (detect, embed, quality, track) on a
640x480 video, with ONNX Runtime at 1 and 2 threads. Prints figures; asserts nothing.

    python bench/video_throughput.py [--frames 120] [--runs 3] [--threads 1,2] [--every 1]

The video is a slideshow of the labelled photos (one face per frame, zoom/blur/noise
varying). Each measurement runs in a fresh process (FACEPRINT_THREADS is read when the
ONNX sessions are created), after one warm-up frame; the median of the runs is reported.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
FACES = HERE.parent.parent / "shared" / "faces"


def child(video: str, every: int) -> None:
    from faceprint.video import VideoRecognizer, open_video, read_frames

    rec = VideoRecognizer(None)
    cap, info = open_video(video)
    frames = list(read_frames(cap, info))
    rec.process(0, frames[0][1])  # warm-up: sessions, model conversion
    rec = VideoRecognizer(None)
    t0 = time.perf_counter()
    for index, frame in frames:
        if index % every == 0:
            rec.process(index, frame)
    rec.finish()
    dt = time.perf_counter() - t0
    print(f"{len(frames) / dt:.3f} {rec.faces / max(rec.frames, 1):.3f}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--frames", type=int, default=120)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--every", type=int, default=1)
    ap.add_argument("--child", metavar="VIDEO", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        child(args.child, args.every)
        return
    sys.path.insert(0, str(HERE))
    from faceprint.video.slideshow import write_slideshow
    from video_fusion import people, split

    _, order = split(people())
    per_slide = 10
    n_slides = max(1, args.frames // per_slide)
    slides = [(p, FACES / f) for p, f in (order * 4)[:n_slides]]
    with tempfile.TemporaryDirectory() as tmp:
        video = Path(tmp) / "bench.mp4"
        write_slideshow(video, slides, frames_per_slide=per_slide, size=(640, 480))
        print(
            f"{n_slides * per_slide} frames of 640x480, every {args.every}, {os.cpu_count()} CPUs"
        )
        for threads in (int(t) for t in args.threads.split(",")):
            env = {**os.environ, "FACEPRINT_THREADS": str(threads)}
            fps = []
            for _ in range(args.runs):
                cmd = [sys.executable, __file__, "--child", str(video), "--every", str(args.every)]
                out = subprocess.run(cmd, env=env, check=True, capture_output=True, text=True)
                fps.append(float(out.stdout.split()[0]))
            runs = ", ".join(f"{v:.1f}" for v in fps)
            print(f"threads={threads}: median {statistics.median(fps):.1f} frames/s  ({runs})")


if __name__ == "__main__":
    main()
