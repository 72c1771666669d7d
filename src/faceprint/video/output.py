"""Annotated output video: each frame with its tracks' boxes, ids and names."""

from __future__ import annotations

from pathlib import Path

import cv2

from faceprint.io.draw import draw_faces
from faceprint.types import Image
from faceprint.video.source import VideoError
from faceprint.video.track import Track


def label(track: Track) -> str:
    """``alice #3 0.95``, ``unknown #3 0.71``, or ``#3`` when there is no decision."""
    if "name" not in track.attributes:
        return f"#{track.id}"
    name = track.attributes["name"] or "unknown"
    return f"{name} #{track.id} {float(track.attributes['similarity']):.2f}"  # type: ignore[arg-type]


def annotate(image: Image, tracks: list[Track]) -> Image:
    """A copy of the frame with the confirmed tracks that have a face in it drawn."""
    faces = [t.face for t in tracks if t.confirmed and t.face is not None]
    labels = [label(t) for t in tracks if t.confirmed and t.face is not None]
    return draw_faces(image, [f for f in faces if f is not None], labels)


class VideoWriter:
    """An MP4 (mp4v) or AVI (MJPG) file written frame by frame from RGB images."""

    def __init__(self, path: str | Path, fps: float, width: int, height: int) -> None:
        self.path = Path(path)
        fourcc = "MJPG" if self.path.suffix.lower() == ".avi" else "mp4v"
        self._writer = cv2.VideoWriter(
            str(self.path), cv2.VideoWriter.fourcc(*fourcc), fps or 25.0, (width, height)
        )
        if not self._writer.isOpened():
            raise VideoError(f"{self.path}: cannot write a video here (folder or format?)")
        self.size = (width, height)

    def write(self, image: Image) -> None:
        frame = cv2.cvtColor(image, cv2.COLOR_RGB2BGR)
        if (frame.shape[1], frame.shape[0]) != self.size:
            frame = cv2.resize(frame, self.size)
        self._writer.write(frame)

    def close(self) -> None:
        self._writer.release()
