"""``faceprint video INPUT``: track and identify the faces of a video, camera or stream."""

from __future__ import annotations

import argparse
import contextlib
import errno
import json
import os
import sys
from pathlib import Path
from typing import IO, Any

from faceprint.cli import args as cli_args
from faceprint.errors import FaceprintError


def _open_events(path: str | None, stack: contextlib.ExitStack) -> IO[str]:
    """stdout, or the file named (a named pipe only when a program reads it: opening one
    for writing would otherwise wait for a reader forever)."""
    if path is None or path == "-":
        return sys.stdout
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NONBLOCK, 0o644)
    except OSError as exc:
        if exc.errno == errno.ENXIO:
            raise FaceprintError(f"{path}: a named pipe that no program reads") from None
        raise FaceprintError(f"{path}: cannot write events ({exc.strerror})") from exc
    os.set_blocking(fd, True)
    return stack.enter_context(os.fdopen(fd, "w", encoding="utf-8"))


def _check_outputs(args: argparse.Namespace) -> Path | None:
    """The outputs, checked before any work: the thumbs folder (made) and the video file
    (a new or regular file: writing into a FIFO or device would block or fail late)."""
    if args.draw is not None:
        draw = Path(args.draw)
        if draw.exists() and not draw.is_file():
            raise cli_args.UsageError(f"{draw}: exists and is not a regular file")
    return cli_args.out_dir(Path(args.thumbs)) if args.thumbs else None


def cmd_video(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from faceprint.gallery.gallery import Gallery
    from faceprint.video import Tracker, VideoRecognizer, open_video, read_frames
    from faceprint.video.output import VideoWriter, annotate

    if args.every < 1:
        raise FaceprintError("--every must be 1 or more")
    thumbs = _check_outputs(args)
    with contextlib.ExitStack() as stack:
        gallery = None
        if args.gallery.exists() or args.gallery.is_symlink():  # a loop is refused, not absent
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
            thumbs_dir=thumbs,
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
    p.add_argument(
        "--min-hits", type=cli_args.positive_int, default=3, help="detections to confirm a track"
    )
    p.add_argument(
        "--max-missed", type=cli_args.at_least_zero, default=10,
        help="processed frames without a face to end a track",
    )  # fmt: skip
    p.set_defaults(func=cmd_video)
