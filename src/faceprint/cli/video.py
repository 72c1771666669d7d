"""``faceprint video INPUT``: track and identify the faces of a video, camera or stream."""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
from pathlib import Path
from typing import IO, Any

from faceprint.errors import FaceprintError


def _open_events(path: str | None, stack: contextlib.ExitStack) -> IO[str]:
    if path is None or path == "-":
        return sys.stdout
    try:
        return stack.enter_context(Path(path).open("w", encoding="utf-8"))
    except OSError as exc:
        raise FaceprintError(f"{path}: cannot write events ({exc.strerror})") from exc


def cmd_video(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from faceprint.gallery.gallery import Gallery
    from faceprint.video import Tracker, VideoRecognizer, open_video, read_frames
    from faceprint.video.output import VideoWriter, annotate

    if args.every < 1:
        raise FaceprintError("--every must be 1 or more")
    with contextlib.ExitStack() as stack:
        gallery = None
        if args.gallery.exists():
            gallery = stack.enter_context(
                Gallery.open(
                    args.gallery,
                    collection=args.collection,
                    read_only=True,
                    detector=args.detector,
                    model_dir=args.model_dir,
                )  # fmt: skip
            )
            if len(gallery) == 0:
                print(f"faceprint: note: {args.gallery} is empty: tracking only", file=sys.stderr)
        else:
            print(f"faceprint: note: no gallery at {args.gallery}: tracking only", file=sys.stderr)
        cap, info = open_video(args.input)
        out = _open_events(args.events, stack)

        def emit(event: dict[str, Any]) -> None:
            out.write(json.dumps(event) + "\n")
            out.flush()

        recognizer = VideoRecognizer(
            gallery,
            on_event=emit,
            fps=info.fps,
            detector=args.detector,
            model_dir=args.model_dir,
            threshold=args.threshold,
            fmr=args.fmr,
            tracker=Tracker(min_hits=args.min_hits, max_missed=args.max_missed),
            thumbs_dir=args.thumbs,
        )
        writer = None
        tracks: list[Any] = []
        total = info.frames or None
        bar = stack.enter_context(
            tqdm(total=total, unit="frame", desc="video", file=sys.stderr, disable=args.quiet)
        )
        for index, frame in read_frames(cap, info):
            if index % args.every == 0:
                tracks = recognizer.process(index, frame)
            if args.draw:
                if writer is None:
                    h, w = frame.shape[:2]
                    writer = VideoWriter(args.draw, info.fps, w, h)
                    stack.callback(writer.close)
                writer.write(annotate(frame, tracks))
            bar.update(1)
        recognizer.finish()
    print(
        f"faceprint: {recognizer.frames} frames processed, {recognizer.faces} faces, "
        f"{recognizer.tracker.next_id - 1} tracks",
        file=sys.stderr,
    )
    return 0


def register(subparsers: Any, parents: Any) -> None:
    p = subparsers.add_parser(
        "video",
        parents=[parents.common, parents.thresholds],
        help="track and identify faces in a video file, camera or stream",
        description="Track faces through a video (file, camera index such as 0, or an "
        "rtsp:// / http:// URL) and identify each track from its quality-weighted fused "
        "template. Events go to stdout as JSON lines.",
    )
    p.add_argument("input", help="video file, camera index (0, 1, ...) or stream URL")
    p.add_argument("--every", type=int, default=1, metavar="N", help="process every Nth frame")
    p.add_argument(
        "--events", metavar="FILE", help="write JSON-lines events here (default: stdout)"
    )
    p.add_argument("--draw", metavar="OUT.mp4", help="write an annotated video (boxes, ids, names)")
    p.add_argument("--thumbs", metavar="DIR", help="save each track's best face as DIR/track_N.jpg")
    p.add_argument("--min-hits", type=int, default=3, help="detections to confirm a track")
    p.add_argument(
        "--max-missed", type=int, default=10, help="processed frames without a face to end a track"
    )
    p.set_defaults(func=cmd_video)
