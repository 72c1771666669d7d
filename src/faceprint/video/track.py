"""Face tracking across frames: a constant-velocity Kalman filter per face box, greedy
assignment on IoU plus template similarity, and birth/death rules.

A detection joins a track when its box overlaps the track's predicted box (IoU) *and*
its template is close enough to the track's fused template; the best-scoring pairs are
taken first (greedy assignment, which on a few faces per frame matches the Hungarian
result in practice). A track is confirmed after ``min_hits`` detections and ends after
``max_missed`` processed frames without one. Each track keeps a quality-weighted sum of
its templates: the fused template used for identification.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from faceprint.types import Box, Face, FloatArray

F64 = npt.NDArray[np.float64]

#: Faces below this quality still extend a track but add (almost) nothing to its template.
MIN_FUSION_WEIGHT = 1e-3


class KalmanBox:
    """Constant-velocity Kalman filter on (centre x, centre y, width, height)."""

    def __init__(self, box: Box) -> None:
        self.x: F64 = np.zeros(8)
        self.x[:4] = _measure(box)
        h = max(box.height, 1.0)
        self.p: F64 = np.diag(np.r_[np.full(4, (0.1 * h) ** 2), np.full(4, (0.5 * h) ** 2)])
        self.f: F64 = np.eye(8)
        self.f[:4, 4:] = np.eye(4)
        self.h: F64 = np.eye(4, 8)

    def predict(self) -> Box:
        h = max(self.x[3], 1.0)
        q = np.diag(np.r_[np.full(4, (0.05 * h) ** 2), np.full(4, (0.02 * h) ** 2)])
        self.x = self.f @ self.x
        self.p = self.f @ self.p @ self.f.T + q
        self.x[2:4] = np.maximum(self.x[2:4], 1.0)
        return self.box

    def update(self, box: Box) -> None:
        z = _measure(box)
        r = np.eye(4) * (0.05 * max(box.height, 1.0)) ** 2
        s = self.h @ self.p @ self.h.T + r
        k = self.p @ self.h.T @ np.linalg.inv(s)
        self.x = self.x + k @ (z - self.h @ self.x)
        self.p = (np.eye(8) - k @ self.h) @ self.p

    @property
    def box(self) -> Box:
        cx, cy, w, h = (float(v) for v in self.x[:4])
        return Box(cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2)


def _measure(box: Box) -> F64:
    return np.array([(box.left + box.right) / 2, (box.top + box.bottom) / 2, box.width, box.height])


@dataclass
class Track:
    """One person appearance: the faces matched over consecutive frames."""

    id: int
    kalman: KalmanBox
    first_frame: int
    last_frame: int
    hits: int = 1
    missed: int = 0
    confirmed: bool = False
    face: Face | None = None  # this frame's face, None when missed
    best_face: Face | None = None
    best_quality: float = -1.0
    best_frame: int = -1
    last_embedding: FloatArray | None = None
    weight: float = 0.0
    weighted_sum: F64 | None = None
    fused_faces: int = 0
    attributes: dict[str, object] = field(default_factory=dict)

    @property
    def box(self) -> Box:
        return self.face.box if self.face is not None else self.kalman.box

    def fused(self) -> FloatArray | None:
        """The quality-weighted mean template, L2-normalised (None before any template)."""
        if self.weighted_sum is None:
            return None
        norm = float(np.linalg.norm(self.weighted_sum))
        if norm == 0:
            return None
        return (self.weighted_sum / norm).astype(np.float32)

    def add(self, face: Face, frame: int) -> None:
        self.face = face
        self.last_frame = frame
        quality = face.quality if face.quality is not None else 1.0
        if quality > self.best_quality:
            self.best_face, self.best_quality, self.best_frame = face, quality, frame
        if face.embedding is not None:
            self.last_embedding = face.embedding
            w = max(quality, MIN_FUSION_WEIGHT)
            vec = face.embedding.astype(np.float64) * w
            self.weighted_sum = vec if self.weighted_sum is None else self.weighted_sum + vec
            self.weight += w
            self.fused_faces += 1


def _similarity(track: Track, face: Face) -> float | None:
    """Best cosine similarity of a face's template to the track's fused or last one."""
    if face.embedding is None:
        return None
    refs = [v for v in (track.fused(), track.last_embedding) if v is not None]
    if not refs:
        return None
    return max(float(np.dot(face.embedding, r)) for r in refs)


class Tracker:
    """Associates each processed frame's faces with tracks.

    ``min_similarity`` gates appearance: a face whose template is further than this from
    the track is a different person even when the boxes overlap (a scene cut, two people
    crossing). ``reacquire_similarity`` lets a very similar face rejoin its track even
    when the box jumped (fast motion, frames skipped).
    """

    def __init__(
        self,
        *,
        iou_min: float = 0.2,
        min_similarity: float = 0.9,
        reacquire_similarity: float = 0.95,
        appearance_weight: float = 0.5,
        min_hits: int = 3,
        max_missed: int = 10,
    ) -> None:
        self.iou_min = iou_min
        self.min_similarity = min_similarity
        self.reacquire_similarity = reacquire_similarity
        self.appearance_weight = appearance_weight
        self.min_hits = min_hits
        self.max_missed = max_missed
        self.tracks: list[Track] = []
        self.next_id = 1

    def update(self, faces: list[Face], frame: int) -> tuple[list[Track], list[Track]]:
        """Feed one processed frame. Returns (tracks alive now, tracks that just ended)."""
        predicted = [t.kalman.predict() for t in self.tracks]
        pairs: list[tuple[float, int, int]] = []
        for ti, (track, pbox) in enumerate(zip(self.tracks, predicted, strict=True)):
            for di, face in enumerate(faces):
                iou = pbox.iou(face.box)
                sim = _similarity(track, face)
                if sim is not None and sim < self.min_similarity:
                    continue
                if iou < self.iou_min and (sim is None or sim < self.reacquire_similarity):
                    continue
                a = self.appearance_weight if sim is not None else 0.0
                pairs.append(((1 - a) * iou + a * (sim or 0.0), ti, di))
        pairs.sort(reverse=True)
        used_t: set[int] = set()
        used_d: set[int] = set()
        for _, ti, di in pairs:
            if ti in used_t or di in used_d:
                continue
            used_t.add(ti)
            used_d.add(di)
            track = self.tracks[ti]
            track.kalman.update(faces[di].box)
            track.add(faces[di], frame)
            track.hits += 1
            track.missed = 0
            if track.hits >= self.min_hits:
                track.confirmed = True
        ended: list[Track] = []
        alive: list[Track] = []
        for ti, track in enumerate(self.tracks):
            if ti not in used_t:
                track.face = None
                track.missed += 1
            if track.missed > self.max_missed:
                ended.append(track)
            else:
                alive.append(track)
        for di, face in enumerate(faces):
            if di not in used_d:
                track = Track(self.next_id, KalmanBox(face.box), frame, frame)
                track.add(face, frame)
                track.confirmed = self.min_hits <= 1
                self.next_id += 1
                alive.append(track)
        self.tracks = alive
        return alive, ended

    def finish(self) -> list[Track]:
        """End every remaining track (end of the stream)."""
        ended, self.tracks = self.tracks, []
        return ended
