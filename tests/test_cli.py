"""The faceprint command as a user runs it: real photos, real exit codes."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from faceprint.cli.main import main
from faceprint.io import load_image

from .conftest import FACES


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture()
def people_dir(tmp_path: Path) -> Path:
    root = tmp_path / "people"
    for name, photos in {
        "angelina": ["img1.jpg", "img2.jpg"],
        "mark": ["img13.jpg", "img14.jpg"],
    }.items():
        (root / name).mkdir(parents=True)
        for p in photos:
            shutil.copy(FACES / p, root / name / p)
    return root


def test_enroll_identify_people_forget(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, people_dir: Path
) -> None:
    g = str(tmp_path / "g.db")
    code, out, _ = run(capsys, "enroll", "--gallery", g, "--from-folders", str(people_dir))
    assert code == 0 and "enrolled angelina: 2 photos" in out
    code, out, _ = run(capsys, "enroll", "--gallery", g, "jack", str(FACES / "img16.jpg"))
    assert code == 0 and "enrolled jack: 1 photo" in out

    code, out, _ = run(capsys, "people", "--gallery", g, "--json")
    assert code == 0
    assert {p["name"]: p["templates"] for p in json.loads(out)} == {
        "angelina": 2, "mark": 2, "jack": 1,
    }  # fmt: skip

    drawn = tmp_path / "out.jpg"
    code, out, _ = run(
        capsys, "identify", "--gallery", g, str(FACES / "img10.jpg"), "--json",
        "--draw", str(drawn),
    )  # fmt: skip
    assert code == 0
    report = json.loads(out)
    assert [f["name"] for f in report["faces"]] == ["angelina"]
    face = report["faces"][0]
    assert face["similarity"] >= face["threshold"] and len(face["box"]) == 4
    assert load_image(drawn).shape == load_image(FACES / "img10.jpg").shape

    code, out, _ = run(capsys, "identify", "--gallery", g, str(FACES / "img18.jpg"))
    assert code == 0 and "unknown" in out and "similarity" in out

    code, out, _ = run(capsys, "forget", "--gallery", g, "jack")
    assert code == 0 and "1 template removed" in out
    code, out, _ = run(capsys, "identify", "--gallery", g, str(FACES / "img17.jpg"), "--json")
    assert json.loads(out)["faces"][0]["name"] is None


def test_verify(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "verify", str(FACES / "img13.jpg"), str(FACES / "img15.jpg"))
    assert code == 0 and out.startswith("same person") and "threshold" in out
    code, out, _ = run(
        capsys, "verify", str(FACES / "img13.jpg"), str(FACES / "img16.jpg"), "--json"
    )
    result = json.loads(out)
    assert code == 0 and result["same"] is False and result["similarity"] < result["threshold"]


def fingerprint(path: Path) -> tuple[list[tuple[str, int]], list[tuple[str, bytes, str]]]:
    """What a gallery holds: people and every template's bytes (not the file's layout)."""
    from contextlib import closing

    from faceprint.gallery import open_store

    with closing(open_store(path, read_only=True)) as store:
        people = [(p.name, p.templates) for p in store.people()]
        templates = [
            (t.name, t.embedding.tobytes(), t.image_sha256 or "") for t in store.templates()
        ]
    return people, templates


def test_bad_inputs(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    g = str(tmp_path / "g.db")
    code, _, err = run(capsys, "enroll", "--gallery", g, "ann", str(FACES / "img13.jpg"))
    assert code == 0
    before = fingerprint(tmp_path / "g.db")

    pdf = tmp_path / "scan.jpg"
    pdf.write_bytes(b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n")
    blank = tmp_path / "wall.png"
    from PIL import Image

    Image.new("RGB", (640, 480), (200, 200, 190)).save(blank)

    code, _, err = run(capsys, "verify", str(FACES / "nope.jpg"), str(FACES / "img1.jpg"))
    assert code == 3 and "no such file" in err
    code, _, err = run(capsys, "verify", str(pdf), str(FACES / "img1.jpg"))
    assert code == 3 and "PDF" in err
    code, _, err = run(capsys, "verify", str(blank), str(FACES / "img1.jpg"))
    assert code == 4 and "no face" in err

    code, _, err = run(capsys, "enroll", "--gallery", g, "bob", str(pdf), str(blank))
    assert code == 3 and "PDF" in err and "no face" in err and "nothing" in err
    # one good photo and one without a face: all or nothing, so nothing is stored
    code, _, err = run(
        capsys, "enroll", "--gallery", g, "bob", str(FACES / "img13.jpg"), str(blank)
    )
    assert code == 4 and "no face" in err and "nothing of this enrollment was stored" in err
    code, out, err = run(capsys, "identify", "--gallery", g, str(blank))
    assert code == 4 and "no face found" in err
    code, _, err = run(capsys, "forget", "--gallery", g, "nobody")
    assert code == 6 and "no person named 'nobody'" in err
    code, _, err = run(capsys, "identify", "--gallery", str(tmp_path / "none.db"), str(blank))
    assert code == 6 and "no such gallery" in err
    # nothing already stored was changed by the failures above (only the WAL may differ)
    code, out, _ = run(capsys, "people", "--gallery", g, "--json")
    assert [p["name"] for p in json.loads(out)] == ["ann"]
    assert fingerprint(tmp_path / "g.db") == before and before[1]

    empty = str(tmp_path / "empty.db")
    run(capsys, "enroll", "--gallery", empty, "x", str(blank))
    code, _, err = run(capsys, "identify", "--gallery", empty, str(FACES / "img1.jpg"))
    assert code == 6 and "empty" in err

    code, _, err = run(capsys, "enroll", "--gallery", g, "--from-folders", str(tmp_path / "no"))
    assert code == 1 and "not a directory" in err


def test_wrong_model_file(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    bad = tmp_path / "models"
    bad.mkdir()
    (bad / "face_detection_yunet_2023mar.onnx").write_bytes(b"not a model")
    code, _, err = run(
        capsys, "verify", "--detector", "yunet", "--model-dir", str(bad),
        str(FACES / "img13.jpg"), str(FACES / "img14.jpg"),
    )  # fmt: skip
    assert code == 5 and "sha256" in err


def test_console_script_runs() -> None:
    exe = Path(sys.executable).parent / "faceprint"
    cmd = [str(exe)] if exe.exists() else [sys.executable, "-m", "faceprint.cli.main"]
    proc = subprocess.run(
        [*cmd, "verify", str(FACES / "img13.jpg"), str(FACES / "img14.jpg")],
        capture_output=True, text=True, env=os.environ.copy(), timeout=300,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("same person")


def test_enroll_refuses_low_quality_faces(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    import cv2

    from faceprint.io import save_image

    blurred = tmp_path / "blurred.jpg"
    save_image(blurred, cv2.GaussianBlur(load_image(FACES / "img13.jpg"), (61, 61), 0))
    g = str(tmp_path / "g.db")
    code, _, err = run(capsys, "enroll", "--gallery", g, "mark", str(blurred))
    assert code == 6 and "quality" in err and "blurred" in err
    code, out, _ = run(capsys, "people", "--gallery", g, "--json")
    assert json.loads(out) == []
    # the gate can be lowered on purpose
    code, out, _ = run(capsys, "enroll", "--gallery", g, "mark", str(blurred), "--min-quality", "0")
    assert code == 0 and "enrolled mark: 1 photo" in out
