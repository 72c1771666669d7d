"""A synthetic test video from labelled photos: each photo is shown for some frames with
zoom, blur and noise that change from frame to frame (for benchmarks and tests)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from faceprint.io import load_image
from faceprint.types import Image
from faceprint.video.output import VideoWriter


@dataclass(frozen=True)
class Slide:
    """Ground truth: frames [first, last] show ``photo`` of ``person``."""

    person: str
    photo: str
    first: int
    last: int


def degrade(
    photo: Image,
    t: float,
    size: tuple[int, int],
    rng: np.random.Generator,
    *,
    zoom: tuple[float, float] = (0.35, 1.0),
    max_blur: float = 4.0,
    max_noise: float = 30.0,
) -> Image:
    """One frame: ``photo`` fitted to ``size`` (w, h) at a zoom that grows with ``t`` in
    [0, 1], with Gaussian blur and noise that wax and wane over the slide."""
    w, h = size
    scale = min(w / photo.shape[1], h / photo.shape[0])
    scale *= zoom[0] + (zoom[1] - zoom[0]) * t
    pw, ph = max(1, round(photo.shape[1] * scale)), max(1, round(photo.shape[0] * scale))
    small = cv2.resize(photo, (pw, ph), interpolation=cv2.INTER_AREA)
    frame = np.full((h, w, 3), 40, dtype=np.uint8)
    x0, y0 = (w - pw) // 2, (h - ph) // 2
    sx, sy = max(0, -x0), max(0, -y0)
    dx, dy = max(0, x0), max(0, y0)
    cw, ch = min(pw - sx, w - dx), min(ph - sy, h - dy)
    frame[dy : dy + ch, dx : dx + cw] = small[sy : sy + ch, sx : sx + cw]
    wave = 0.5 - 0.5 * math.cos(2 * math.pi * t * 1.5)  # 0 -> 1 -> 0 -> 1 over a slide
    sigma = max_blur * wave
    if sigma > 0.3:
        frame = np.asarray(cv2.GaussianBlur(frame, (0, 0), sigma), dtype=np.uint8)
    noise = rng.normal(0, max_noise * (1 - wave) + 4, frame.shape)
    return np.clip(frame.astype(np.float32) + noise, 0, 255).astype(np.uint8)


def write_slideshow(
    path: str | Path,
    photos: Sequence[tuple[str, str | Path]],
    *,
    frames_per_slide: int = 12,
    size: tuple[int, int] = (640, 480),
    fps: float = 12.0,
    seed: int = 0,
    **kw: float,
) -> list[Slide]:
    """Write the video; ``photos`` are (person, photo path) in showing order."""
    rng = np.random.default_rng(seed)
    writer = VideoWriter(path, fps, size[0], size[1])
    slides = []
    frame = 0
    try:
        for person, photo in photos:
            image = load_image(photo)
            for i in range(frames_per_slide):
                t = i / max(1, frames_per_slide - 1)
                writer.write(degrade(image, t, size, rng, **kw))  # type: ignore[arg-type]
            slides.append(Slide(person, Path(photo).name, frame, frame + frames_per_slide - 1))
            frame += frames_per_slide
    finally:
        writer.close()
    return slides


@dataclass
class FusionResult:
    """Identification accuracy on a slideshow, over all frames shown (a frame without a
    detected face counts as wrong for every method)."""

    frames: int
    per_frame: float  # each frame's largest face identified alone
    fused_online: float  # the frame's track, identified from its fused template so far
    fused_final: float  # the frame's track, identified from its final fused template
    slides_correct: float  # share of slides whose main track's final decision is right
    tracks_per_slide: float  # confirmed tracks overlapping each slide, on average
    detected: float  # share of frames with a face
    merged: int  # confirmed tracks that run over a cut (two slides in one track)


def evaluate(video: str | Path, slides: list[Slide], gallery: object) -> FusionResult:
    """Run the video recognizer on a slideshow and score per-frame vs fused decisions."""
    from faceprint.gallery.gallery import Gallery
    from faceprint.types import Face
    from faceprint.video.pipeline import VideoRecognizer
    from faceprint.video.source import open_video, read_frames
    from faceprint.video.track import Track

    assert isinstance(gallery, Gallery)

    def who(embedding: np.ndarray | None, like: Face) -> str | None:
        if embedding is None:
            return None
        probe = Face(like.box, like.score, like.landmarks, embedding, like.pack)
        return gallery.identify_faces([probe])[0].name

    truth = {f: s for s in slides for f in range(s.first, s.last + 1)}
    rec = VideoRecognizer(gallery)
    cap, info = open_video(str(video))
    rows: list[tuple[str, str | None, Track, str | None]] = []
    seen: dict[int, Track] = {}
    n = 0
    for index, frame in read_frames(cap, info):
        n += 1
        tracks = rec.process(index, frame)
        seen.update((t.id, t) for t in tracks)
        with_face = [t for t in tracks if t.face is not None]
        if not with_face:
            continue
        main = max(with_face, key=lambda t: t.box.width * t.box.height)
        assert main.face is not None
        alone = who(main.face.embedding, main.face)
        rows.append((truth[index].person, alone, main, who(main.fused(), main.face)))
    rec.finish()
    ended = list(seen.values())
    final = {id(t): who(t.fused(), t.best_face) for t in ended if t.best_face is not None}
    per_slide = []
    spans = []
    for s in slides:
        ts = [
            t for t in ended if t.confirmed and t.first_frame <= s.last and t.last_frame >= s.first
        ]
        spans.append(len(ts))
        best = max(
            ts, key=lambda t: min(t.last_frame, s.last) - max(t.first_frame, s.first), default=None
        )
        per_slide.append(best is not None and final.get(id(best)) == s.person)
    return FusionResult(
        frames=n,
        per_frame=sum(p == a for p, a, _, _ in rows) / n,
        fused_online=sum(p == o for p, _, _, o in rows) / n,
        fused_final=sum(p == final.get(id(t)) for p, _, t, _ in rows) / n,
        slides_correct=sum(per_slide) / len(slides),
        tracks_per_slide=sum(spans) / len(slides),
        detected=len(rows) / n,
        merged=sum(
            1
            for t in ended
            if t.confirmed and truth[t.first_frame].first != truth[t.last_frame].first
        ),
    )
