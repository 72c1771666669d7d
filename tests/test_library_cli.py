"""The photo library as a user runs it: ``faceprint index`` on folders of real photos, then
``people``, the corrections, ``photos``, ``identify`` of the people named, re-indexing and
re-clustering, kill -9 and resume. Photos are real (../shared/faces), written smaller at
test time so the runs stay short on 2 cores."""

from __future__ import annotations

import contextlib
import io
import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from faceprint.cli.main import main
from tests.conftest import FACES

#: Two folders of a small library: angelina, mark and matt (and a couple) across both.
FOLDERS = {
    "a": ["img1.jpg", "img2.jpg", "img13.jpg", "img14.jpg", "couple.jpg"],
    "b": ["img4.jpg", "img5.jpg", "img15.jpg", "img29.jpg", "img30.jpg", "img31.jpg"],
}
SIDE = 700


def shrink(src: Path, dst: Path, when: str | None = None) -> Path:
    img = Image.open(src).convert("RGB")
    img.thumbnail((SIDE, SIDE))
    exif = Image.Exif()
    if when:
        exif[0x0132] = when  # DateTime, "YYYY:MM:DD HH:MM:SS"
    dst.parent.mkdir(parents=True, exist_ok=True)
    img.save(dst, "JPEG", quality=92, exif=exif.tobytes())
    return dst


def side_by_side(a: Path, b: Path, dst: Path, when: str) -> Path:
    """One photo of two people: two real photos next to each other."""
    left, right = (Image.open(p).convert("RGB") for p in (a, b))
    for im in (left, right):
        im.thumbnail((SIDE // 2, SIDE))
    both = Image.new("RGB", (left.width + right.width, max(left.height, right.height)), "white")
    both.paste(left, (0, 0))
    both.paste(right, (left.width, 0))
    exif = Image.Exif()
    exif[0x0132] = when
    both.save(dst, "JPEG", quality=92, exif=exif.tobytes())
    return dst


@pytest.fixture(scope="module")
def photos(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("photos")
    for i, (folder, names) in enumerate(sorted(FOLDERS.items())):
        for j, name in enumerate(names):
            out = shrink(FACES / name, root / folder / name)
            os.utime(out, (1_600_000_000 + 1000 * i + j,) * 2)
    side_by_side(FACES / "img10.jpg", FACES / "img57.jpg", root / "b" / "together.jpg",
                 "2030:01:02 10:00:00")  # fmt: skip
    return root


def quiet(*args: str) -> tuple[int, str]:
    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(io.StringIO()):
        code = main(list(args))
    return code, out.getvalue()


def cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def shown(gallery: Path) -> dict[str, Any]:
    code, out = quiet("people", "--gallery", str(gallery), "--json")
    assert code == 0
    data: dict[str, Any] = json.loads(out)
    return data


def face(f: dict[str, Any]) -> tuple[str, tuple[int, ...]]:
    """A face as content sees it: its photo's file name and box (ids differ by gallery)."""
    return Path(f["photo"]).name, tuple(round(v) for v in f["box"])


def partition(data: dict[str, Any]) -> set[tuple[str | None, frozenset[Any]]]:
    return {(g["name"], frozenset(face(f) for f in g["faces"])) for g in data["people"]}


def group_of(data: dict[str, Any], photo: str) -> dict[str, Any]:
    return next(g for g in data["people"] if any(face(f)[0] == photo for f in g["faces"]))


@pytest.fixture(scope="module")
def indexed(photos: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A gallery of both folders, indexed a then b."""
    g = tmp_path_factory.mktemp("indexed") / "g.db"
    for folder in ("a", "b"):
        assert quiet("index", str(photos / folder), "--gallery", str(g), "-q")[0] == 0
    return g


def copy_of(gallery: Path, tmp_path: Path) -> str:
    dst = tmp_path / "copy.db"
    with sqlite3.connect(gallery) as src, sqlite3.connect(dst) as out:
        src.backup(out)
    os.chmod(dst, 0o600)
    return str(dst)


def test_index_is_incremental_and_people_json_has_the_issue_shape(
    photos: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    lib = tmp_path / "lib"
    shutil.copytree(photos, lib)
    g = str(tmp_path / "g.db")
    code, out, err = cli(capsys, "index", str(lib / "a"), "--gallery", g)
    assert code == 0 and "indexed 5 new photo(s)" in out and "photos/s" in err + out
    first = shown(Path(g))
    assert set(first) == {"people", "unassigned"}
    for g_ in first["people"]:
        assert set(g_) == {"id", "name", "faces"} and isinstance(g_["id"], int)
        assert all(set(f) == {"face_id", "photo", "box"} for f in g_["faces"])
    assert all(set(f) == {"face_id", "photo", "box"} for f in first["unassigned"])
    before = {f["face_id"]: g_["id"] for g_ in first["people"] for f in g_["faces"]}
    assert len({f["face_id"] for f in first["unassigned"]}) + len(before) >= 6  # couple: 2

    code, out, _ = cli(capsys, "index", str(lib / "a"), "--gallery", g)
    assert code == 0 and "indexed 0 new photo(s)" in out and "5 unchanged" in out
    shutil.copy(lib / "a" / "img1.jpg", lib / "a" / "img1-copy.jpg")  # an exact duplicate
    code, out, _ = cli(capsys, "index", str(lib / "a"), "--gallery", g)
    assert "indexed 0 new photo(s)" in out and "1 copies" in out

    code, out, _ = cli(capsys, "index", str(lib / "a"), str(lib / "b"), "--gallery", g)
    assert code == 0 and "indexed 7 new photo(s)" in out
    later = shown(Path(g))
    after = {f["face_id"]: g_["id"] for g_ in later["people"] for f in g_["faces"]}
    assert all(after[f] == c for f, c in before.items())  # nobody moved
    assert len(after) > len(before)
    matt = group_of(later, "img29.jpg")
    assert {face(f)[0] for f in matt["faces"]} >= {"img29.jpg", "img30.jpg"}

    (lib / "b" / "img31.jpg").unlink()
    code, out, _ = cli(capsys, "index", str(lib / "a"), str(lib / "b"), "--gallery", g)
    assert code == 0 and "1 gone" in out
    gone = shown(Path(g))
    everything = [f for g_ in gone["people"] for f in g_["faces"]] + gone["unassigned"]
    assert "img31.jpg" not in {face(f)[0] for f in everything}
    assert "img30.jpg" in {face(f)[0] for f in everything}


def test_decisions_survive_reindex_and_recluster(
    indexed: Path, photos: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    g = copy_of(indexed, tmp_path)
    data = shown(Path(g))
    ang, mark = group_of(data, "img1.jpg"), group_of(data, "img13.jpg")
    assert ang["id"] != mark["id"]
    assert cli(capsys, "name", str(ang["id"]), "angelina", "--gallery", g)[0] == 0
    assert cli(capsys, "name", str(mark["id"]), "mark", "--gallery", g)[0] == 0
    code, out, _ = cli(capsys, "identify", str(FACES / "img10.jpg"), "--gallery", g, "--json")
    assert code == 0 and json.loads(out)["faces"][0]["name"] == "angelina"

    couple = [f for f in data["unassigned"] + ang["faces"] if face(f)[0] == "couple.jpg"]
    wrong = next(f for f in ang["faces"] if face(f)[0] == "img2.jpg")
    stray = next(f for f in mark["faces"] if face(f)[0] == "img15.jpg")
    assert cli(capsys, "not", str(wrong["face_id"]), "angelina", "--gallery", g)[0] == 0
    hidden = next(f for f in couple if f["face_id"] not in {x["face_id"] for x in ang["faces"]})
    assert cli(capsys, "hide", str(hidden["face_id"]), "--gallery", g)[0] == 0
    code, out, _ = cli(capsys, "split", str(mark["id"]), str(stray["face_id"]), "--gallery", g)
    assert code == 0 and "split 1 face(s)" in out
    assert cli(capsys, "move", str(stray["face_id"]), "marcus", "--gallery", g)[0] == 0
    assert cli(capsys, "merge", str(ang["id"]), str(ang["id"]), "--gallery", g)[0] == 6

    def holds() -> None:
        now = shown(Path(g))
        names = {gr["name"]: {face(f) for f in gr["faces"]} for gr in now["people"] if gr["name"]}
        assert set(names) == {"angelina", "mark", "marcus"}
        assert face(wrong) not in names["angelina"] and face(stray) == next(iter(names["marcus"]))
        assert face(stray) not in names["mark"]
        listed = {face(f) for gr in now["people"] for f in gr["faces"]} | {
            face(f) for f in now["unassigned"]}  # fmt: skip
        assert face(hidden) not in listed
        assert {face(f) for f in ang["faces"]} - {face(wrong)} <= names["angelina"]

    holds()
    assert cli(capsys, "people", "--recluster", "--gallery", g)[0] == 0
    holds()
    # the photo of a named face leaves the library (its face and template go) and comes back
    roots = [str(photos / "a"), str(photos / "b")]
    moved, away = photos / "b" / "img15.jpg", tmp_path / "away.jpg"
    moved.rename(away)
    try:
        assert quiet("index", *roots, "--gallery", g)[0] == 0
        now = shown(Path(g))
        assert "marcus" not in {gr["name"] for gr in now["people"]}
        code, out, _ = cli(capsys, "forget", "marcus", "--gallery", g)
        assert code == 6  # the gallery person went with the face
    finally:
        away.rename(moved)
    assert quiet("index", *roots, "--gallery", g)[0] == 0
    holds()
    code, out, _ = cli(capsys, "identify", str(FACES / "img58.jpg"), "--gallery", g, "--json")
    assert json.loads(out)["faces"][0]["name"] == "mark"


def test_full_recluster_does_not_depend_on_indexing_order(
    indexed: Path, photos: Path, tmp_path: Path
) -> None:
    one = copy_of(indexed, tmp_path)
    two = str(tmp_path / "two.db")
    for folder in ("b", "a"):  # the other order
        assert quiet("index", str(photos / folder), "--gallery", two, "-q")[0] == 0
    for g in (one, two):
        assert quiet("people", "--recluster", "--gallery", g)[0] == 0
    a, b = shown(Path(one)), shown(Path(two))
    assert partition(a) == partition(b)
    assert {face(f) for f in a["unassigned"]} == {face(f) for f in b["unassigned"]}
    assert len(a["people"]) >= 3


def test_photos_of_a_person_newest_first(
    indexed: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    g = copy_of(indexed, tmp_path)
    data = shown(Path(g))
    cli(capsys, "name", str(group_of(data, "img1.jpg")["id"]), "angelina", "--gallery", g)
    cli(capsys, "name", str(group_of(data, "img13.jpg")["id"]), "mark", "--gallery", g)
    code, out, _ = cli(capsys, "photos", "angelina", "--gallery", g, "--json")
    got = json.loads(out)["photos"]
    assert code == 0 and got[0]["photo"].endswith("together.jpg")  # EXIF 2030: newest
    assert got[0]["time_source"] == "exif" and got[1]["time_source"] == "mtime"
    times = [p["time"] for p in got[1:]]
    assert times == sorted(times, reverse=True)
    assert {Path(p["photo"]).name for p in got} >= {"img1.jpg", "img2.jpg", "img4.jpg"}
    code, out, _ = cli(capsys, "photos", "angelina", "--with", "mark", "--gallery", g, "--json")
    assert [Path(p["photo"]).name for p in json.loads(out)["photos"]] == ["together.jpg"]
    code, _, err = cli(capsys, "photos", "nobody", "--gallery", g)
    assert code == 6 and "no person named 'nobody'" in err


def test_usage_errors_exit_1(indexed: Path, capsys: pytest.CaptureFixture[str]) -> None:
    g = str(indexed)
    for args in (["name", "x", "bob"], ["merge", "1"], ["split", "1"], ["move", "-3", "bob"],
                 ["move", "1"], ["hide", "1e3"], ["index", "--gallery", g]):  # fmt: skip
        assert cli(capsys, *args, "--gallery", g)[0] == 1, args
    code, _, err = cli(capsys, "index", str(FACES / "img1.jpg"), "--gallery", g)
    assert code == 1 and "not a folder" in err


def test_kill_9_then_resume_ends_as_an_uninterrupted_run(photos: Path, tmp_path: Path) -> None:
    """One SIGKILL mid-way (bench/index_throughput.py does 20 at random moments)."""
    g = tmp_path / "killed.db"
    cmd = [sys.executable, "-m", "faceprint.cli.main", "index", str(photos / "a"),
           str(photos / "b"), "--gallery", str(g), "--batch-size", "2", "-q"]  # fmt: skip
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 300
    stored = 0
    while stored < 4 and proc.poll() is None:  # some batches committed, more to come
        assert time.monotonic() < deadline
        time.sleep(0.2)
        if g.exists():  # read-only: never create the file before faceprint does
            with contextlib.suppress(sqlite3.Error):
                db = sqlite3.connect(f"file:{g}?mode=ro", uri=True)
                stored = db.execute("SELECT COUNT(*) FROM library_photos").fetchone()[0]
                db.close()
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert 0 < stored < 12, "the run was not interrupted mid-way"
    assert quiet("index", str(photos / "a"), str(photos / "b"), "--gallery", str(g))[0] == 0
    whole = tmp_path / "whole.db"
    assert quiet("index", str(photos / "a"), str(photos / "b"), "--gallery", str(whole))[0] == 0
    assert partition(shown(g)) == partition(shown(whole))
    assert {face(f) for f in shown(g)["unassigned"]} == {
        face(f) for f in shown(whole)["unassigned"]
    }
