"""Face quality on real photos: clean faces score high, degraded ones low with reasons."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from faceprint import Gallery, GalleryError
from faceprint.detect import detect
from faceprint.io import load_image, save_image
from faceprint.quality import assess, pose

from .conftest import FACES


@pytest.fixture(scope="module")
def photo() -> np.ndarray:
    return load_image(FACES / "img13.jpg")


def test_clean_face_scores_high(photo: np.ndarray) -> None:
    (face, *_) = detect(photo)
    q = assess(photo, face)
    assert q.score > 0.8 and q.reasons == []
    assert set(q.factors) == {"size", "sharpness", "pose", "exposure", "detector"}
    assert all(0.0 <= v <= 1.0 for v in q.factors.values())


def test_blur_small_and_dark_are_named(photo: np.ndarray) -> None:
    (face, *_) = detect(photo)
    clean = assess(photo, face).score
    blurred = cv2.GaussianBlur(photo, (0, 0), 12)
    qb = assess(blurred, face)
    assert qb.score < 0.5 * clean and "blurred" in qb.reasons
    dark = (photo // 12).astype(np.uint8)
    qd = assess(dark, face)
    assert qd.score < 0.5 * clean and "badly exposed" in qd.reasons
    small = cv2.resize(photo, None, fx=0.06, fy=0.06, interpolation=cv2.INTER_AREA)
    faces = detect(small)
    assert faces, "the face should still be found at this size"
    qs = assess(small, faces[0])
    assert "too small" in qs.reasons and qs.score < 0.5


def test_pose_from_landmarks() -> None:
    # dlib's 5 points: corners of one eye, of the other, then below the nose
    frontal = np.array([[140, 100], [120, 100], [60, 100], [80, 100], [100, 150]], np.float32)
    yaw, roll = pose(frontal)
    assert abs(yaw) < 1 and abs(roll) < 1
    turned = frontal.copy()
    turned[4, 0] += 30  # nose far to one side of the eye midpoint: head turned
    assert abs(pose(turned)[0]) > 30
    a = np.deg2rad(20)
    rot = np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])
    rolled = (frontal - 100) @ rot.T + 100
    assert pose(rolled)[1] == pytest.approx(20, abs=0.5)


def test_enroll_refuses_low_quality_and_stores_quality(tmp_path: Path, photo: np.ndarray) -> None:
    blurred = tmp_path / "blurred.jpg"
    save_image(blurred, cv2.GaussianBlur(photo, (0, 0), 12))
    with Gallery.open(tmp_path / "g.db", create=True) as g:
        with pytest.raises(GalleryError, match="blurred"):
            g.enroll("mark", FACES / "img14.jpg", blurred)
        assert len(g) == 0  # all or nothing
        g.enroll("mark", FACES / "img14.jpg")
        g.enroll("mark", blurred, min_quality=0.0)  # the caller may lower the gate
        qualities = sorted(t.quality or 0.0 for t in g.store.templates("mark"))
        assert qualities[0] < 0.4 < 0.8 < qualities[1]
