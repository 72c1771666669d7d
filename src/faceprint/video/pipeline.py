"""Recognition on a stream of frames: detect, embed, assess quality, track, and identify
each track from its quality-weighted fused template, emitting events as it goes."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from faceprint.detect import detect
from faceprint.embed import embed as embed_faces
from faceprint.gallery.gallery import Gallery
from faceprint.io import save_image
from faceprint.quality import fill
from faceprint.types import Face, Image
from faceprint.video.track import Track, Tracker

Event = dict[str, Any]
#: Margin around the face box in track thumbnails, as a fraction of the box size.
THUMB_MARGIN = 0.3


def _crop(image: Image, face: Face) -> Image:
    b = face.box
    mx, my = b.width * THUMB_MARGIN, b.height * THUMB_MARGIN
    h, w = image.shape[:2]
    x0, y0 = max(0, int(b.left - mx)), max(0, int(b.top - my))
    x1, y1 = min(w, int(b.right + mx)), min(h, int(b.bottom + my))
    return np.ascontiguousarray(image[y0:y1, x0:x1])


class VideoRecognizer:
    """Feed frames with ``process``; call ``finish`` at the end of the stream.

    Every event (a dict, JSON-ready) goes to ``on_event``: ``track_start`` when a track is
    confirmed, ``identity`` whenever a track's decision changes as it grows (name or
    None for unknown, with its similarity and the frame range it rests on),
    and ``track_end`` with the final decision and the best face's quality.
    """

    def __init__(
        self,
        gallery: Gallery | None = None,
        *,
        on_event: Callable[[Event], None] | None = None,
        fps: float = 0.0,
        detector: str | None = None,
        model_dir: str | Path | None = None,
        threshold: float | None = None,
        fmr: float | None = None,
        tracker: Tracker | None = None,
        thumbs_dir: str | Path | None = None,
    ) -> None:
        self.gallery = gallery
        self.on_event = on_event or (lambda event: None)
        self.fps = fps
        self.detector = detector
        self.model_dir = model_dir
        self.threshold = threshold
        self.fmr = fmr
        self.tracker = tracker or Tracker()
        self.thumbs_dir = Path(thumbs_dir) if thumbs_dir is not None else None
        if self.thumbs_dir is not None:
            self.thumbs_dir.mkdir(parents=True, exist_ok=True)
        self.frames = 0
        self.faces = 0

    def _time(self, frame: int) -> float | None:
        return round(frame / self.fps, 3) if self.fps > 0 else None

    def process(self, frame: int, image: Image) -> list[Track]:
        """Detect, embed and track the faces of one frame; returns the live tracks."""
        faces = detect(image, detector=self.detector, model_dir=self.model_dir)
        pack = self.gallery.pack if self.gallery is not None else None
        embed_faces(image, faces, pack=pack, model_dir=self.model_dir)
        fill(image, faces)
        self.frames += 1
        self.faces += len(faces)
        alive, ended = self.tracker.update(faces, frame)
        for track in alive:
            if (
                self.thumbs_dir is not None
                and track.best_frame == frame
                and track.best_face is not None
            ):
                track.attributes["thumb"] = _crop(image, track.best_face)
            if track.confirmed and not track.attributes.get("started"):
                track.attributes["started"] = True
                self.on_event(
                    {
                        "event": "track_start",
                        "track": track.id,
                        "frame": track.first_frame,
                        "time": self._time(track.first_frame),
                        "box": [round(v, 1) for v in track.box.as_list()],
                    }
                )
        self._identify([t for t in alive if t.confirmed and t.face is not None], frame)
        for track in ended:
            self._end(track)
        return alive

    def finish(self) -> list[Track]:
        """End the remaining tracks; returns every track that was ended."""
        ended = self.tracker.finish()
        for track in ended:
            self._end(track)
        return ended

    def _identify(self, tracks: list[Track], frame: int) -> None:
        if self.gallery is None or not tracks or len(self.gallery) == 0:
            return
        probes: list[Face] = []
        ready: list[Track] = []
        for t in tracks:  # a track without a fused template yet waits; the others go on
            fused = t.fused()
            assert t.face is not None
            if fused is not None:
                probes.append(Face(t.face.box, t.face.score, t.face.landmarks, fused, t.face.pack))
                ready.append(t)
        if not probes:
            return
        tracks = ready
        results = self.gallery.identify_faces(probes, threshold=self.threshold, fmr=self.fmr)
        for track, result in zip(tracks, results, strict=True):
            changed = "name" not in track.attributes or track.attributes["name"] != result.name
            track.attributes["name"] = result.name
            track.attributes["similarity"] = result.similarity
            track.attributes["threshold"] = result.threshold.similarity
            if changed:
                self.on_event(
                    {
                        "event": "identity",
                        "track": track.id,
                        "frame": frame,
                        "time": self._time(frame),
                        "name": result.name,
                        "similarity": round(result.similarity, 4),
                        "threshold": round(result.threshold.similarity, 4),
                        "frames": [track.first_frame, track.last_frame],
                        "faces": track.fused_faces,
                    }
                )

    def _end(self, track: Track) -> None:
        if not track.confirmed:
            return
        event: Event = {
            "event": "track_end",
            "track": track.id,
            "frames": [track.first_frame, track.last_frame],
            "time": [self._time(track.first_frame), self._time(track.last_frame)],
            "detections": track.hits,
            "best_quality": round(track.best_quality, 4),
            "best_frame": track.best_frame,
        }
        if track.best_face is not None and "quality" in track.best_face.attributes:
            event["best_quality_reasons"] = track.best_face.attributes["quality"]["reasons"]
        if self.gallery is not None and "name" in track.attributes:
            event["name"] = track.attributes["name"]
            event["similarity"] = round(float(track.attributes["similarity"]), 4)  # type: ignore[arg-type]
        thumb = track.attributes.get("thumb")
        if self.thumbs_dir is not None and isinstance(thumb, np.ndarray) and thumb.size:
            path = self.thumbs_dir / f"track_{track.id:04d}.jpg"
            save_image(path, thumb)
            event["thumb"] = str(path)
        track.attributes["end_event"] = event
        self.on_event(event)
