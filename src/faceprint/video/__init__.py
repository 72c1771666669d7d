"""Faces in video: open a file, camera or stream; track faces; identify each track."""

from faceprint.video.pipeline import Event, VideoRecognizer
from faceprint.video.source import VideoError, VideoInfo, open_video, read_frames
from faceprint.video.track import KalmanBox, Track, Tracker

__all__ = [
    "Event",
    "KalmanBox",
    "Track",
    "Tracker",
    "VideoError",
    "VideoInfo",
    "VideoRecognizer",
    "open_video",
    "read_frames",
]
