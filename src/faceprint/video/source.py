"""Video input through OpenCV: files, camera indices and stream URLs (RTSP, HTTP)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from faceprint.errors import VideoError
from faceprint.types import Image

#: How long to wait for a stream to open or deliver a frame, in milliseconds.
STREAM_TIMEOUT_MS = 10_000


@dataclass(frozen=True)
class VideoInfo:
    source: str
    fps: float  # 0 when unknown (some cameras and streams)
    frames: int  # 0 when unknown (streams)
    width: int
    height: int
    live: bool  # a camera or stream: no end, no frame count


def _is_url(source: str) -> bool:
    return "://" in source


def _check_file(path: Path) -> None:
    """A regular file that is not a still image: a FIFO, device or folder is refused
    without being opened for reading (a FIFO would block), and a photo is refused too
    (OpenCV would decode it without faceprint's decode budget; identify reads photos)."""
    from faceprint.io.files import open_regular
    from faceprint.io.formats import sniff

    if path.is_dir():
        raise VideoError(f"{path}: is a directory, not a video")
    fd, _ = open_regular(path, None, VideoError)
    try:
        head = os.read(fd, 256)
    except OSError as exc:
        raise VideoError(f"{path}: cannot read ({exc.strerror or exc})") from None
    finally:
        os.close(fd)
    kind, _ = sniff(head)
    if kind is not None:
        raise VideoError(f"{path}: a still image ({kind}), not a video; use faceprint identify")


def _check_frame_size(cap: cv2.VideoCapture, source: str) -> None:
    """Refuse frames whose decoding needs more than the decode budget (the decoder's
    frame, its RGB copy and the detector's working copy: 3 bytes x 3 per pixel)."""
    from faceprint.io.limits import decode_budget, human_bytes

    width = int(cap.get(cv2.CAP_PROP_FRAME_WIDTH) or 0)
    height = int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT) or 0)
    need = width * height * 9
    if need > decode_budget():
        cap.release()
        raise VideoError(
            f"{source}: {width}x{height} frames need about {human_bytes(need)} each, more "
            f"than the {human_bytes(decode_budget())} decode budget (FACEPRINT_DECODE_BUDGET)"
        )


def open_video(source: str) -> tuple[cv2.VideoCapture, VideoInfo]:
    """Open a file, a camera ("0", "1", ...) or a URL; a clear VideoError when it fails."""
    if source.isdigit():
        cap = cv2.VideoCapture(int(source))
        live = True
        if not cap.isOpened():
            raise VideoError(f"camera {source}: cannot be opened (no such device or busy)")
    elif _is_url(source):
        params = [
            cv2.CAP_PROP_OPEN_TIMEOUT_MSEC,
            STREAM_TIMEOUT_MS,
            cv2.CAP_PROP_READ_TIMEOUT_MSEC,
            STREAM_TIMEOUT_MS,
        ]
        cap = cv2.VideoCapture(source, cv2.CAP_FFMPEG, params)
        live = not source.lower().split("?")[0].endswith((".mp4", ".avi", ".mkv", ".mov"))
        if not cap.isOpened():
            raise VideoError(f"{source}: cannot open the stream (unreachable or not a video)")
    else:
        path = Path(source)
        _check_file(path)
        cap = cv2.VideoCapture(str(path))
        live = False
        if not cap.isOpened():
            raise VideoError(f"{path}: cannot open as a video (corrupt or unsupported format)")
    _check_frame_size(cap, source)
    info = VideoInfo(
        source=source,
        fps=float(cap.get(cv2.CAP_PROP_FPS) or 0.0),
        frames=max(0, int(cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0)) if not live else 0,
        width=int(cap.get(cv2.CAP_PROP_FRAME_WIDTH) or 0),
        height=int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT) or 0),
        live=live,
    )
    return cap, info


def read_frames(cap: cv2.VideoCapture, info: VideoInfo) -> Iterator[tuple[int, Image]]:
    """(frame index, RGB frame) for every frame; VideoError if not one frame decodes."""
    index = 0
    try:
        while True:
            ok, bgr = cap.read()
            if not ok or bgr is None:
                break
            rgb: Image = np.asarray(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), dtype=np.uint8)
            yield index, rgb
            index += 1
    finally:
        cap.release()
    if index == 0:
        raise VideoError(f"{info.source}: no frames could be read (empty or corrupt video)")
