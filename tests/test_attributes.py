"""Liveness (MiniFASNet) and expression (FER2013 mini-Xception) on real photos."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import faceprint
from faceprint.attributes import LABELS, annotate, expressions
from faceprint.errors import FaceprintError, ModelError, SpoofError
from faceprint.liveness import liveness
from faceprint.models import keras_h5
from faceprint.models.packs import FER_MINI_XCEPTION

from .conftest import FACES, SHARED

ANTISPOOF = FACES / "antispoof"
SMILING = ["img1.jpg", "img8.jpg", "img20.jpg", "img22.jpg", "img38.jpg", "img44.jpg"]
NOT_SMILING = ["img10.jpg", "img30.jpg", "img32.jpg", "img34.jpg", "img67.jpg"]


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One directory holding the liveness and expression model files, as a user would."""
    d = tmp_path_factory.mktemp("attribute-models")
    for src in [
        *(SHARED / "models" / "minifasnet").glob("*.onnx"),
        SHARED / "models" / "fer" / FER_MINI_XCEPTION.name,
    ]:
        (d / src.name).symlink_to(src)
    return d


def _largest(path: Path) -> tuple[np.ndarray, faceprint.Face]:
    image = faceprint.load_image(path)
    faces = faceprint.detect_faces(image)
    assert faces, path
    return image, faces[0]


@pytest.mark.parametrize(
    ("name", "live"), [("image_F1.jpg", False), ("image_F2.jpg", False), ("image_T1.jpg", True)]
)
def test_antispoof_samples(model_dir: Path, name: str, live: bool) -> None:
    image, face = _largest(ANTISPOOF / name)
    result = liveness(image, face, model_dir=model_dir)
    assert result.live is live
    assert 0.0 <= result.score <= 1.0
    assert (result.score > 0.9) if live else (result.score < 0.3)


def test_ordinary_photos_are_mostly_live(model_dir: Path) -> None:
    names = ["img1.jpg", "img3.jpg", "img8.jpg", "img24.jpg", "img30.jpg", "img47.jpg"]
    scores = [liveness(*_largest(FACES / n), model_dir=model_dir).score for n in names]
    assert min(scores) > 0.9, dict(zip(names, scores, strict=True))


def test_liveness_refuses_bad_input(model_dir: Path) -> None:
    image, face = _largest(ANTISPOOF / "image_T1.jpg")
    with pytest.raises(FaceprintError, match="RGB"):
        liveness(image[:, :, 0], face, model_dir=model_dir)
    with pytest.raises(FaceprintError, match="threshold"):
        liveness(image, face, threshold=1.5, model_dir=model_dir)


def test_expression_smiles(model_dir: Path) -> None:
    for name in SMILING + NOT_SMILING:
        image, face = _largest(FACES / name)
        (found,) = expressions(image, [face], model_dir=model_dir)
        probs = np.array(list(found.probabilities.values()))
        assert list(found.probabilities) == list(LABELS)
        assert abs(probs.sum() - 1.0) < 1e-4 and probs.min() >= 0
        assert found.label == LABELS[int(np.argmax(probs))]
        if name in SMILING:
            assert found.label == "happy", (name, found)
        else:
            assert found.probabilities["happy"] < 0.3, (name, found)


def test_expression_batch_equals_single(model_dir: Path) -> None:
    image = faceprint.load_image(FACES / "couple.jpg")
    faces = faceprint.detect_faces(image)
    assert len(faces) >= 2
    batch = expressions(image, faces, model_dir=model_dir)
    for face, found in zip(faces, batch, strict=True):
        (single,) = expressions(image, [face], model_dir=model_dir)
        assert single.label == found.label
        for k in LABELS:
            assert abs(single.probabilities[k] - found.probabilities[k]) < 1e-5


def test_keras_conversion_is_cached_and_checked(model_dir: Path, tmp_path: Path) -> None:
    first = keras_h5.converted_onnx(FER_MINI_XCEPTION, model_dir)
    stamp = first.stat().st_mtime_ns
    assert keras_h5.converted_onnx(FER_MINI_XCEPTION, model_dir) == first
    assert first.stat().st_mtime_ns == stamp
    bad = tmp_path / "broken.hdf5"
    bad.write_bytes(b"not an hdf5 file" * 10)
    with pytest.raises(ModelError):
        keras_h5.read(bad)
    # A wrong file under the expected name fails its checksum rather than being converted.
    (tmp_path / FER_MINI_XCEPTION.name).write_bytes(b"x" * 100)
    with pytest.raises(ModelError, match="sha256"):
        keras_h5.converted_onnx(FER_MINI_XCEPTION, tmp_path)


def test_annotate_fills_attributes(model_dir: Path) -> None:
    image, face = _largest(FACES / "img1.jpg")
    annotate(image, [face], model_dir=model_dir)
    assert face.attributes["expression"]["label"] == "happy"
    assert face.attributes["liveness"]["live"] is True
    json.dumps(face.to_dict())
    with pytest.raises(FaceprintError, match="unknown attribute"):
        annotate(image, [face], ["age"], model_dir=model_dir)


def test_missing_liveness_models_are_a_model_error(tmp_path: Path) -> None:
    image, face = _largest(ANTISPOOF / "image_T1.jpg")
    with pytest.raises(ModelError, match="model-dir"):
        liveness(image, face, model_dir=tmp_path)


def test_require_live_enroll_and_verify(model_dir: Path, tmp_path: Path) -> None:
    with faceprint.Gallery.open(tmp_path / "g.db", create=True, model_dir=model_dir) as gallery:
        gallery.enroll("alice", FACES / "img1.jpg")
        with pytest.raises(SpoofError):
            gallery.enroll(
                "mallory", ANTISPOOF / "image_T1.jpg", ANTISPOOF / "image_F1.jpg", require_live=True
            )
        assert [p.name for p in gallery.people()] == ["alice"]
        gallery.enroll("bob", ANTISPOOF / "image_T1.jpg", require_live=True)
        assert sorted(p.name for p in gallery.people()) == ["alice", "bob"]
    with pytest.raises(SpoofError):
        faceprint.verify(
            ANTISPOOF / "image_T1.jpg",
            ANTISPOOF / "image_F2.jpg",
            model_dir=model_dir,
            require_live=True,
        )
    result = faceprint.verify(
        FACES / "img1.jpg", FACES / "img2.jpg", model_dir=model_dir, require_live=True
    )
    assert result.same


def _cli(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], *args: str
) -> tuple[int, str, str]:
    """Run the command in-process with only this feature's sub-command module registered."""
    from faceprint.cli import main

    monkeypatch.setattr(main, "COMMAND_MODULES", ["faceprint.cli.analyze"])
    code = main.main(list(args))
    out = capsys.readouterr()
    return code, out.out, out.err


def test_cli_liveness_and_analyze(
    model_dir: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    md = ["--model-dir", str(model_dir)]
    code, out, err = _cli(monkeypatch, capsys, "liveness", str(ANTISPOOF / "image_F2.jpg"), *md)
    assert code == SpoofError.exit_code and "SPOOF" in out, err
    code, out, err = _cli(monkeypatch, capsys, "liveness", str(ANTISPOOF / "image_T1.jpg"), *md)
    assert code == 0 and "\tlive (liveness" in out, err
    code, out, err = _cli(monkeypatch, capsys, "analyze", str(FACES / "img8.jpg"), "--json", *md)
    assert code == 0, err
    face = json.loads(out)["faces"][0]
    assert face["attributes"]["expression"]["label"] == "happy"
    assert set(face["attributes"]["expression"]["probabilities"]) == set(LABELS)
    assert face["attributes"]["liveness"]["live"] is True
    code, out, err = _cli(
        monkeypatch, capsys, "analyze", str(FACES / "img8.jpg"), "--model-dir", "/nonexistent"
    )
    assert code == ModelError.exit_code and "not found" in err
    a, b = str(ANTISPOOF / "image_T1.jpg"), str(ANTISPOOF / "image_F1.jpg")
    code, out, err = _cli(monkeypatch, capsys, "verify", a, b, "--require-live", *md)
    assert code == SpoofError.exit_code and "photo or screen" in err


def test_attributes_cost_nothing_unless_asked() -> None:
    code = (
        "import sys, faceprint\n"
        "from faceprint import runtime\n"
        f"faceprint.embed_faces({str(FACES / 'img1.jpg')!r})\n"
        "names = ' '.join(runtime._sessions)\n"
        "assert runtime._sessions and 'MiniFASNet' not in names and 'keras' not in names, names\n"
        "assert 'faceprint.liveness' not in sys.modules and 'h5py' not in sys.modules\n"
        "assert 'faceprint.attributes' not in sys.modules\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
