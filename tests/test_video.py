"""Video: tracking, quality-weighted fusion and the `faceprint video` command, on short
slideshow videos made from the labelled photos."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from faceprint import Gallery
from faceprint.cli.main import main
from faceprint.types import Box, Face
from faceprint.video import KalmanBox, Tracker, VideoError, open_video, read_frames
from faceprint.video.slideshow import Slide, evaluate, write_slideshow

from .conftest import FACES

# (person, enrolment photo, probe photos): consecutive slides show different people
ENROL = {"angelina_jolie": "img1.jpg", "mark_zuckerberg": "img13.jpg", "jack_dorsey": "img16.jpg"}
PROBES = [("angelina_jolie", "img2.jpg"), ("mark_zuckerberg", "img14.jpg"),
          ("jack_dorsey", "img17.jpg"), ("angelina_jolie", "img4.jpg")]  # fmt: skip
FRAMES = 8


@pytest.fixture(scope="module")
def slideshow(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[Slide], Path]:
    tmp = tmp_path_factory.mktemp("video")
    video = tmp / "slides.mp4"
    slides = write_slideshow(
        video, [(p, FACES / f) for p, f in PROBES], frames_per_slide=FRAMES, size=(480, 360)
    )
    gallery = tmp / "g.db"
    with Gallery.open(gallery, create=True) as g:
        for person, photo in ENROL.items():
            g.enroll(person, FACES / photo)
    return video, slides, gallery


def test_fusion_beats_single_frames_and_slides_stay_one_track(
    slideshow: tuple[Path, list[Slide], Path],
) -> None:
    video, slides, gallery = slideshow
    with Gallery.open(gallery, create=True) as g:
        r = evaluate(video, slides, g)
    assert r.frames == len(PROBES) * FRAMES
    assert r.detected > 0.9
    assert r.tracks_per_slide == 1.0 and r.merged == 0, r
    assert r.fused_final >= r.per_frame, r
    assert r.slides_correct == 1.0, r


def _face(box: Box, embedding: np.ndarray, quality: float = 1.0) -> Face:
    vec = (embedding / np.linalg.norm(embedding)).astype(np.float32)
    return Face(box, 0.9, np.zeros((5, 2), np.float32), vec, "p", quality)


def test_kalman_follows_constant_velocity() -> None:
    kf = KalmanBox(Box(0, 0, 50, 50))
    for i in range(1, 10):
        kf.predict()
        kf.update(Box(8 * i, 4 * i, 8 * i + 50, 4 * i + 50))
    nxt = kf.predict()
    assert nxt.left == pytest.approx(80, abs=3) and nxt.top == pytest.approx(40, abs=2)


def test_tracker_splits_a_cut_and_fuses_by_quality() -> None:
    rng = np.random.default_rng(0)
    alice, bob = rng.normal(size=128), rng.normal(size=128)
    tracker = Tracker(min_hits=2, max_missed=1)
    box = Box(100, 100, 200, 200)
    for frame in range(4):  # alice, then a sharp cut to bob in the same place
        tracker.update([_face(box, alice + 0.1 * rng.normal(size=128))], frame)
    alive, _ = tracker.update([_face(box, bob)], 4)
    assert sorted(t.id for t in alive) == [1, 2]
    alive, ended = tracker.update([_face(box, bob)], 5)
    assert [t.id for t in alive] == [2] and alive[0].confirmed
    (t1,) = [t for t in ended if t.id == 1]
    assert t1.hits == 4 and t1.first_frame == 0 and t1.last_frame == 3
    # a low-quality face barely moves the fused template
    tr = Tracker(min_hits=1)
    tr.update([_face(box, alice, quality=1.0)], 0)
    tr.update([_face(box, 0.9 * alice + 0.3 * bob, quality=0.01)], 1)
    (t,) = tr.tracks
    fused = t.fused()
    assert fused is not None
    assert float(fused @ (alice / np.linalg.norm(alice))) > 0.99


def test_cli_video_events_draw_thumbs(
    slideshow: tuple[Path, list[Slide], Path],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    video, slides, gallery = slideshow
    events_path, drawn, thumbs = tmp_path / "ev.jsonl", tmp_path / "out.mp4", tmp_path / "th"
    args = ["video", str(video), "--gallery", str(gallery), "--events", str(events_path)]
    code = main([*args, "--draw", str(drawn), "--thumbs", str(thumbs), "-q"])
    assert code == 0, capsys.readouterr().err
    events = [json.loads(line) for line in events_path.read_text().splitlines()]
    ends = [e for e in events if e["event"] == "track_end"]
    assert len(ends) == len(slides)
    for end, slide in zip(ends, slides, strict=True):
        assert end["name"] == slide.person
        assert slide.first <= end["frames"][0] <= end["frames"][1] <= slide.last
        assert Path(end["thumb"]).is_file() and 0 < end["best_quality"] <= 1
    starts = {e["track"] for e in events if e["event"] == "track_start"}
    assert starts == {e["track"] for e in ends}
    decisions = [e for e in events if e["event"] == "identity"]
    assert {e["track"] for e in decisions} == starts and all(e["similarity"] for e in decisions)
    cap = cv2.VideoCapture(str(drawn))
    assert int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) == len(slides) * FRAMES
    cap.release()
    # every 2nd frame, events on stdout, no gallery: tracking only
    code = main(["video", str(video), "--gallery", str(tmp_path / "none.db"), "--every", "2"])
    out = capsys.readouterr().out
    lines = [json.loads(line) for line in out.splitlines()]
    assert code == 0 and {e["event"] for e in lines} == {"track_start", "track_end"}


def test_bad_inputs_are_clear_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    corrupt = tmp_path / "corrupt.mp4"
    corrupt.write_bytes(b"\x00\x00\x00\x18ftypmp42" + bytes(range(256)) * 40)
    empty = tmp_path / "empty.mp4"
    empty.write_bytes(b"")
    cases = {
        str(tmp_path / "missing.mp4"): "no such file",
        str(corrupt): "corrupt",
        str(empty): "corrupt",
        str(tmp_path): "directory",
        "rtsp://127.0.0.1:9/stream": "cannot open the stream",
    }
    for source, message in cases.items():
        code = main(["video", source, "--gallery", str(tmp_path / "g.db"), "-q"])
        err = capsys.readouterr().err
        assert code == VideoError.exit_code and message in err, (source, err)
    assert main(["video", str(corrupt), "--every", "0"]) == 1
    assert "--every must be 1 or more" in capsys.readouterr().err


def test_zero_frames_is_an_error(tmp_path: Path) -> None:
    video = tmp_path / "none.avi"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter.fourcc(*"MJPG"), 10, (64, 48))
    writer.release()
    with pytest.raises(VideoError, match="no frames|corrupt"):
        cap, info = open_video(str(video))
        list(read_frames(cap, info))
