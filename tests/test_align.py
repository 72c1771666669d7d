"""Landmarks and face chips against dlib's own output (fixtures made with dlib 20.0.1)."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from faceprint.align.chip import chip_details, chip_transform, extract_chip, extract_chips
from faceprint.align.shape_predictor import ShapePredictor, read_shape_predictor
from faceprint.errors import ModelError
from faceprint.models import packs, store

SHARED = Path("/work/shared")
FACES = SHARED / "faces"
FIXTURES = SHARED / "fixtures"
REFERENCE = FIXTURES / "dlib_reference.json"

pytestmark = pytest.mark.skipif(not REFERENCE.is_file(), reason="shared dlib fixtures absent")


@pytest.fixture(scope="module")
def reference() -> dict[str, Any]:
    images: dict[str, Any] = json.loads(REFERENCE.read_text())["images"]
    return images


@pytest.fixture(scope="module")
def predictor() -> ShapePredictor:
    return ShapePredictor.load()


def load_rgb(name: str) -> np.ndarray:
    # as dlib.load_rgb_image: no EXIF rotation (none of these files carries one)
    with Image.open(FACES / name) as im:
        return np.asarray(im.convert("RGB"))


def test_fixture_images_have_no_exif_rotation(reference: dict[str, Any]) -> None:
    for name in reference:
        with Image.open(FACES / name) as im:
            assert im.getexif().get(0x0112, 1) == 1, name


def test_landmarks_match_dlib_on_all_images(
    reference: dict[str, Any], predictor: ShapePredictor
) -> None:
    """README: landmarks identical to dlib's to the pixel, on every face of every photo."""
    faces = 0
    for name, rec in reference.items():
        img = load_rgb(name)
        assert list(img.shape[:2]) == rec["size_hw"], name
        boxes = [face["box_ltrb"] for face in rec["faces"]]
        many = predictor.predict_many(img, boxes)
        for face, batched in zip(rec["faces"], many, strict=True):
            pred = predictor.predict(img, face["box_ltrb"])
            assert pred.shape == (5, 2) and pred.dtype == np.float32
            np.testing.assert_array_equal(pred, np.asarray(face["landmarks5"]), err_msg=name)
            np.testing.assert_array_equal(batched, pred, err_msg=name)
            faces += 1
    assert faces >= 60  # every face of every image in the fixture


def test_subpixel_and_batched_prediction(
    reference: dict[str, Any], predictor: ShapePredictor
) -> None:
    name = max(reference, key=lambda k: len(reference[k]["faces"]))
    rec = reference[name]
    assert len(rec["faces"]) >= 2
    img = load_rgb(name)
    boxes = [f["box_ltrb"] for f in rec["faces"]]
    many = predictor.predict_many(img, boxes)
    assert many.shape == (len(boxes), 5, 2)
    for box, pts in zip(boxes, many, strict=True):
        np.testing.assert_array_equal(pts, predictor.predict(img, box))
        sub = predictor.predict(img, box, subpixel=True)
        assert np.abs(sub - pts).max() <= 0.5 + 1e-4
    assert predictor.predict_many(img, np.zeros((0, 4))).shape == (0, 5, 2)


def test_box_partly_outside_image(predictor: ShapePredictor) -> None:
    img = load_rgb("img1.jpg")
    h, w = img.shape[:2]
    pts = predictor.predict(img, [w - 300, h - 300, w + 200, h + 200])
    assert np.isfinite(pts).all()


def test_load_is_cached() -> None:
    assert ShapePredictor.load() is ShapePredictor.load()


def test_parsed_arrays_cached_on_disk(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A second process loads the parsed arrays from the conversion cache, with equal results;
    a damaged cache entry is parsed again, not fatal."""
    from faceprint.align import shape_predictor_file as spf

    monkeypatch.setenv("FACEPRINT_CACHE_DIR", str(tmp_path))
    src = store.locate(packs.SHAPE_PREDICTOR_5)
    spf.cached_model.cache_clear()
    first = spf.cached_model(str(src), 0, 0)
    cached = list((tmp_path / "converted").glob("dlib-shape-predictor-npz-*.npz"))
    assert len(cached) == 1
    assert packs.SHAPE_PREDICTOR_5.sha256 in cached[0].name
    spf.cached_model.cache_clear()  # as a new process would
    second = spf.cached_model(str(src), 0, 0)
    for field in dataclasses.fields(first):
        np.testing.assert_array_equal(getattr(first, field.name), getattr(second, field.name))
    img, box = load_rgb("img1.jpg"), [407, 318, 994, 905]
    assert np.array_equal(
        ShapePredictor(first).predict(img, box), ShapePredictor(second).predict(img, box)
    )
    good = cached[0].read_bytes()
    cached[0].write_bytes(good[: len(good) // 2])  # a broken cache entry is rebuilt
    spf.cached_model.cache_clear()
    third = spf.cached_model(str(src), 0, 0)
    assert np.array_equal(first.split_thresh, third.split_thresh)
    assert cached[0].read_bytes() == good
    spf.cached_model.cache_clear()


def test_parse_matches_the_parsed_arrays_of_a_fresh_read() -> None:
    """The vectorised reader and the cached arrays agree value for value."""
    from faceprint.align import shape_predictor_file as spf

    src = store.locate(packs.SHAPE_PREDICTOR_5)
    parsed = read_shape_predictor(src)
    cached = spf.cached_model(str(src), 0, 0)
    for field in dataclasses.fields(parsed):
        np.testing.assert_array_equal(getattr(parsed, field.name), getattr(cached, field.name))
    c, t, s = parsed.split_idx1.shape
    assert (parsed.num_parts, parsed.depth, s + 1) == (5, 4, 16)
    assert parsed.leaf_values.shape == (c, t, 16, 5, 2)
    assert parsed.anchor_idx.shape == parsed.deltas.shape[:2]


def _chip_cases(reference: dict[str, Any]) -> list[tuple[str, Path]]:
    cases = []
    for png in sorted((FIXTURES / "chips").glob("*_face0_150.png")):
        name = png.name.removesuffix("_face0_150.png") + ".jpg"
        if name in reference:
            cases.append((name, png))
    return cases


def test_chips_match_dlib(reference: dict[str, Any]) -> None:
    cases = _chip_cases(reference)
    assert len(cases) >= 8
    for name, png in cases:
        img = load_rgb(name)
        chip = extract_chip(img, reference[name]["faces"][0]["landmarks5"], 150, 0.25)
        assert chip.shape == (150, 150, 3) and chip.dtype == np.uint8
        with Image.open(png) as im:
            want = np.asarray(im.convert("RGB"))
        # README: face chips byte-identical to dlib's get_face_chip
        np.testing.assert_array_equal(chip, want, err_msg=name)


def test_extract_chips_batch(reference: dict[str, Any]) -> None:
    img = load_rgb("img1.jpg")
    lms = [f["landmarks5"] for f in reference["img1.jpg"]["faces"]] * 2
    chips = extract_chips(img, lms, size=112, padding=0.1)
    assert chips.shape == (len(lms), 112, 112, 3)
    np.testing.assert_array_equal(chips[0], extract_chip(img, lms[0], 112, 0.1))
    assert extract_chips(img, [], 150).shape == (0, 150, 150, 3)


def test_chip_transform_maps_landmarks_to_template(reference: dict[str, Any]) -> None:
    lm = np.asarray(reference["img1.jpg"]["faces"][0]["landmarks5"], dtype=np.float64)
    m = chip_transform(lm, size=150, padding=0.25)
    assert m.shape == (2, 3)
    mapped = lm @ m[:, :2].T + m[:, 2]
    # the eye corners land where dlib's mean face puts them, up to the fit residual
    assert np.all((mapped > 0) & (mapped < 150))
    assert mapped[0, 0] > mapped[2, 0]  # landmark 0 (one eye) right of landmark 2
    (x0, y0, x1, y1), angle = chip_details(lm, 150, 0.25)
    assert abs(angle) < 0.2 and x1 > x0 and y1 > y0


def test_truncated_file_raises_model_error(tmp_path: Path) -> None:
    data = store.locate(packs.SHAPE_PREDICTOR_5).read_bytes()
    for cut in (0, 5, 1000, len(data) // 2, len(data) - 3):
        bad = tmp_path / f"cut{cut}.dat"
        bad.write_bytes(data[:cut])
        with pytest.raises(ModelError):
            read_shape_predictor(bad)


def test_foreign_file_raises_model_error(tmp_path: Path) -> None:
    with pytest.raises(ModelError):
        read_shape_predictor(FACES / "img1.jpg")
    detector = store.locate(packs.MMOD_DETECTOR)  # a dlib file, but not a shape predictor
    with pytest.raises(ModelError):
        read_shape_predictor(detector)
    junk = tmp_path / "junk.dat"
    junk.write_bytes(bytes(range(256)) * 10)
    with pytest.raises(ModelError):
        ShapePredictor.from_file(junk)
    with pytest.raises(ModelError):
        ShapePredictor.from_file(tmp_path / "missing.dat")
