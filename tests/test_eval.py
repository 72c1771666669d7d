"""``faceprint eval`` and ``faceprint calibrate`` on the real photos of ../shared/faces.

Figures are checked against plain loops written here, not against faceprint.eval.metrics.
"""

from __future__ import annotations

import csv
import itertools
import json
import math
import os
import shutil
from contextlib import closing
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import faceprint
from faceprint.cli.main import main
from faceprint.eval import degrade
from faceprint.eval.pairs import read_pairs
from faceprint.eval.templates import TemplateCache, compute
from faceprint.gallery import open_store
from faceprint.io import load_image

from .conftest import FACES

LABELS = Path(__file__).parent / "data" / "identities.csv"


def identities() -> list[tuple[str, str]]:
    with LABELS.open() as fh:
        rows = csv.DictReader(line for line in fh if not line.startswith("#"))
        return [(r["file"], r["person"]) for r in rows]


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture(scope="session")
def pairs_out(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("eval-pairs")
    args = ["eval", "pairs", "-q", "--root", str(FACES), "--pairs", str(FACES / "master.csv")]
    assert main([*args, "--out", str(out), "--degrade", "jpeg:10"]) == 0
    return out


@pytest.fixture(scope="session")
def people_tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("people")
    for file, person in identities():
        (root / person).mkdir(exist_ok=True)
        os.symlink(FACES / file, root / person / file)
    return root


@pytest.fixture(scope="session")
def identify_out(
    tmp_path_factory: pytest.TempPathFactory, people_tree: Path, pairs_out: Path
) -> Path:
    out = tmp_path_factory.mktemp("eval-identify")
    shutil.copy(pairs_out / "templates.npz", out / "templates.npz")  # same photos: reused
    args = ["eval", "identify", "-q", "--root", str(people_tree), "--out", str(out)]
    assert main([*args, "--nonmated-fraction", "0.25", "--seed", "3"]) == 0
    return out


def results(out: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((out / "results.json").read_text())
    return data


# ---------------------------------------------------------------- verification


def test_master_csv_scores_are_cosines_of_independent_templates(pairs_out: Path) -> None:
    clean = results(pairs_out)["conditions"][0]
    with (FACES / "master.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    assert clean["pairs"] == len(rows) == len(clean["data"]["scores"])
    for i in (0, 1, len(rows) - 1):  # a few pairs embedded again through the public API
        a = faceprint.embed_faces(FACES / rows[i]["file_x"])[0].embedding
        b = faceprint.embed_faces(FACES / rows[i]["file_y"])[0].embedding
        assert a is not None and b is not None
        assert clean["data"]["scores"][i] == pytest.approx(float(a @ b), abs=1e-5)
    assert clean["data"]["labels"] == [int(r["Decision"] == "Yes") for r in rows]


def _kfold_by_loops(scores: list[float], labels: list[int], folds: list[int]) -> list[float]:
    accs = []
    for k in sorted(set(folds)):
        train = [(s, y) for s, y, f in zip(scores, labels, folds, strict=True) if f != k]
        test = [(s, y) for s, y, f in zip(scores, labels, folds, strict=True) if f == k]
        best_acc, best_t = -1.0, 0.0
        cands = sorted({s for s, _ in train})
        for t in [cands[0] - 1] + [(u + v) / 2 for u, v in itertools.pairwise(cands)] + [2.0]:
            acc = sum((s >= t) == bool(y) for s, y in train) / len(train)
            if acc > best_acc:
                best_acc, best_t = acc, t
        accs.append(sum((s >= best_t) == bool(y) for s, y in test) / len(test))
    return accs


@pytest.mark.parametrize("index", [0, 1])
def test_master_csv_figures_match_plain_loops(pairs_out: Path, index: int) -> None:
    res = results(pairs_out)
    c = res["conditions"][index]
    assert c["condition"] == ["clean", "jpeg:10"][index]
    s, y, f = c["data"]["scores"], c["data"]["labels"], c["data"]["folds"]
    assert None not in s and c["no_face"] == [] and c["failed_pairs"] == 0
    assert sorted(set(f)) == list(range(10))
    gen = [v for v, lab in zip(s, y, strict=True) if lab]
    imp = [v for v, lab in zip(s, y, strict=True) if not lab]
    assert (c["genuine"], c["impostor"]) == (len(gen), len(imp)) == (38, 262)
    accs = _kfold_by_loops(s, y, f)
    assert c["accuracy"] == pytest.approx(sum(accs) / len(accs))
    assert c["accuracy"] > 0.95
    # AUC = probability a genuine pair outscores an impostor pair (ties count half)
    wins = sum((g > i) + 0.5 * (g == i) for g in gen for i in imp)
    assert c["auc"] == pytest.approx(wins / (len(gen) * len(imp)), abs=1e-9)
    for key, t in c["tar_at_fmr"].items():
        fmr = float(key)
        allowed = math.floor(fmr * len(imp))
        # the most genuine pairs accepted by a threshold letting <= allowed impostors pass
        top = sorted(imp, reverse=True)
        thr = top[allowed] if allowed < len(imp) else -math.inf
        assert t["tar"] == pytest.approx(sum(g > thr for g in gen) / len(gen))
        assert t["resolved"] == (len(imp) * fmr >= 1 - 1e-9)
    assert set(c["tar_at_fmr"]) == {"0.1", "0.01", "0.001"}  # 262 impostors: no 1e-4
    assert any("0.0001" in n and "10000" in n for n in c["notes"])
    # EER: over thresholds (descending), the first where |FNMR - FMR| is smallest
    best = (2.0, 0.0)
    for t in [math.inf] + sorted(set(s), reverse=True):
        fm = sum(i >= t for i in imp) / len(imp)
        fnm = sum(g < t for g in gen) / len(gen)
        if abs(fnm - fm) < best[0]:
            best = (abs(fnm - fm), (fnm + fm) / 2)
    assert c["eer"] == pytest.approx(best[1])


def test_second_run_is_cached_and_identical(pairs_out: Path, tmp_path: Path) -> None:
    out = tmp_path / "again"
    shutil.copytree(pairs_out, out)
    first = results(out)
    args = ["eval", "pairs", "-q", "--root", str(FACES), "--pairs", str(FACES / "master.csv")]
    assert main([*args, "--out", str(out), "--degrade", "jpeg:10"]) == 0
    second = results(out)
    assert second["counts"]["templates computed (not cached)"] == 0
    assert first["counts"]["templates computed (not cached)"] == 25 + 24
    assert [c["data"] for c in second["conditions"]] == [c["data"] for c in first["conditions"]]


class _Report(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.images: list[str] = []
        self.cells: list[str] = []
        self._in_cell = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "img":
            self.images.append(dict(attrs).get("src") or "")
        self._in_cell = tag in ("td", "th")

    def handle_data(self, data: str) -> None:
        if self._in_cell:
            self.cells.append(data.strip())


def test_html_report_is_self_contained_with_the_figures(pairs_out: Path) -> None:
    res = results(pairs_out)
    page = _Report()
    page.feed((pairs_out / "report.html").read_text())
    dets = len(list(pairs_out.glob("det-*.png")))  # the slices' DET curves, one per group
    assert dets and len(page.images) == 3 + dets  # ROC, DET, score histograms
    assert all(src.startswith("data:image/png;base64,") for src in page.images)
    for name in ("roc.png", "det.png", "scores.png"):
        assert (pairs_out / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    for c in res["conditions"]:
        assert c["condition"] in page.cells
        assert f"{100 * c['accuracy']:.2f}% ± {100 * c['accuracy_std']:.2f}%" in page.cells
    assert "fail: a comparison with an image without a face is a rejection" in page.cells


# ---------------------------------------------------------------- LFW format


def _lfw_tree(tmp_path: Path) -> tuple[Path, list[tuple[str, str, str, str]]]:
    """lfw/NAME/NAME_000N.jpg symlinks to ../shared/faces, and pairs.txt with 2 folds of
    2 matched + 2 mismatched pairs each (7 photos)."""
    by_person: dict[str, list[str]] = {}
    for file, person in identities():
        by_person.setdefault(person, []).append(file)
    root = tmp_path / "lfw"
    for person, files in by_person.items():
        (root / person).mkdir(parents=True)
        for n, file in enumerate(files, start=1):
            os.symlink(FACES / file, root / person / f"{person}_{n:04d}.jpg")
    lines = [
        ("angelina_jolie", "1", "2", ""),
        ("katy_perry", "1", "2", ""),
        ("angelina_jolie", "3", "katy_perry", "2"),
        ("matt_damon", "1", "angelina_jolie", "1"),
        ("matt_damon", "1", "2", ""),
        ("angelina_jolie", "2", "3", ""),
        ("katy_perry", "1", "matt_damon", "2"),
        ("matt_damon", "2", "angelina_jolie", "2"),
    ]
    text = "2\t2\n" + "".join("\t".join(v for v in ln if v) + "\n" for ln in lines)
    (tmp_path / "pairs.txt").write_text(text)
    return root, lines


def test_lfw_pairs_parser_and_folds(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], pairs_out: Path
) -> None:
    root, lines = _lfw_tree(tmp_path)
    pairs = read_pairs(root, tmp_path / "pairs.txt")
    assert [p.fold for p in pairs] == [0] * 4 + [1] * 4
    assert [p.same for p in pairs] == ([True] * 2 + [False] * 2) * 2
    assert pairs[2].a == root / "angelina_jolie" / "angelina_jolie_0003.jpg"
    assert pairs[2].b == root / "katy_perry" / "katy_perry_0002.jpg"
    out = tmp_path / "out"
    out.mkdir()
    shutil.copy(pairs_out / "templates.npz", out)  # the same photos (by content): cached
    code, stdout, _ = run(
        capsys, "eval", "pairs", "-q", "--root", str(root), "--pairs",
        str(tmp_path / "pairs.txt"), "--out", str(out),
    )  # fmt: skip
    assert code == 0 and "clean" in stdout
    c = results(out)["conditions"][0]
    assert c["folds"] == 2 and c["data"]["folds"] == [0] * 4 + [1] * 4
    # each fold's threshold is chosen on the other fold only
    assert c["accuracy"] == pytest.approx(
        np.mean(_kfold_by_loops(c["data"]["scores"], c["data"]["labels"], c["data"]["folds"]))
    )


@pytest.mark.parametrize(
    "body, message",
    [
        ("2 3\nangelina_jolie 1 2\n", "header says 2 folds"),
        ("1 1\nangelina_jolie 1\nangelina_jolie 1 katy_perry 1\n", "line 2"),
        ("ten 300\n", "first line"),
    ],
)
def test_malformed_lfw_pairs(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], body: str, message: str
) -> None:
    root, _ = _lfw_tree(tmp_path)
    (tmp_path / "bad.txt").write_text(body)
    code, _, err = run(
        capsys, "eval", "pairs", "--root", str(root), "--pairs", str(tmp_path / "bad.txt"),
        "--out", str(tmp_path / "out"),
    )  # fmt: skip
    assert code == 1 and message in err


def test_bad_inputs_exit_non_zero(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root, _ = _lfw_tree(tmp_path)
    out = str(tmp_path / "out")
    code, _, err = run(
        capsys, "eval", "pairs", "--root", str(root), "--pairs", str(tmp_path / "nope.txt"),
        "--out", out,
    )  # fmt: skip
    assert code == 1 and "pairs file not found" in err
    (tmp_path / "missing.txt").write_text("1 1\nnobody 1 2\nnobody 1 angelina_jolie 1\n")
    code, _, err = run(
        capsys, "eval", "pairs", "--root", str(root), "--pairs", str(tmp_path / "missing.txt"),
        "--out", out,
    )  # fmt: skip
    assert code == 3 and "do not exist" in err and "nobody_0001.jpg" in err
    (tmp_path / "empty").mkdir()
    code, _, err = run(capsys, "eval", "identify", "--root", str(tmp_path / "empty"), "--out", out)
    assert code == 1 and "no sub-folders with photos" in err
    (tmp_path / "labels.csv").write_text("a,b,same\nimg1.jpg,img2.jpg,maybe\n")
    code, _, err = run(
        capsys, "eval", "pairs", "--root", str(FACES), "--pairs", str(tmp_path / "labels.csv"),
        "--out", out,
    )  # fmt: skip
    assert code == 1 and "line 2" in err and "maybe" in err
    code, _, err = run(
        capsys, "eval", "pairs", "--root", str(root), "--pairs", str(tmp_path / "pairs.txt"),
        "--out", out, "--degrade", "smudge:3",
    )  # fmt: skip
    assert code == 1 and "unknown degradation" in err
    assert not (tmp_path / "out" / "results.json").exists()


def test_no_face_is_counted_never_dropped(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], pairs_out: Path
) -> None:
    root = tmp_path / "imgs"
    root.mkdir()
    for name in ("img1.jpg", "img2.jpg", "img13.jpg"):
        os.symlink(FACES / name, root / name)
    blank = np.full((240, 240, 3), 128, np.uint8)
    from faceprint.io import save_image

    save_image(root / "wall.jpg", blank)
    (tmp_path / "p.csv").write_text(
        "file_x,file_y,Decision\nimg1.jpg,img2.jpg,1\nimg1.jpg,img13.jpg,0\n"
        "img2.jpg,wall.jpg,same\nimg13.jpg,img1.jpg,different\n"
    )
    for policy, failed in (("fail", 1), ("centre", 0)):
        out = tmp_path / policy
        out.mkdir()
        shutil.copy(pairs_out / "templates.npz", out)  # only wall.jpg is new
        code, _, err = run(
            capsys, "eval", "pairs", "-q", "--root", str(root), "--pairs",
            str(tmp_path / "p.csv"), "--out", str(out), "--on-no-face", policy, "--folds", "2",
        )  # fmt: skip
        assert code == 0 and "wall.jpg" in err
        res = results(out)
        c = res["conditions"][0]
        assert c["no_face"] == ["wall.jpg"] and c["failed_pairs"] == failed
        assert res["on_no_face"] == policy
        assert (c["data"]["scores"][2] is None) == (policy == "fail")
        assert policy in (out / "report.html").read_text()


# ---------------------------------------------------------------- identification


def test_identify_figures_match_plain_loops(identify_out: Path, people_tree: Path) -> None:
    res = results(identify_out)
    split = res["split"]
    people = {p for p in os.listdir(people_tree)}
    held_out = {n for n, _ in split["nonmated"]}
    enrolled = {n for n, _ in split["gallery"]}
    assert held_out and not held_out & enrolled and held_out | enrolled == people
    assert len(split["gallery"]) == len(enrolled)  # one photo each
    # templates as the run saw them (from its cache), then plain loops over them
    t = compute(
        [people_tree / p for _, p in split["gallery"] + split["mated"] + split["nonmated"]],
        detector=res["detector"],
        cache=TemplateCache(identify_out / "templates.npz"),
        quiet=True,
    )
    assert t.computed == 0
    gal = [(n, t.get(people_tree / p)) for n, p in split["gallery"]]

    def ranked(path: str) -> list[tuple[float, str]]:
        v = t.get(people_tree / path)
        assert v is not None
        return sorted(((float(v @ g), n) for n, g in gal if g is not None), reverse=True)

    ranks, top = [], []
    for name, path in split["mated"]:
        order = ranked(path)
        ranks.append(1 + [n for _, n in order].index(name))
        top.append((order[0][0], order[0][1] == name))
    non = [ranked(p)[0][0] for _, p in split["nonmated"]]
    c = res["conditions"][0]
    assert c["rank1"] == pytest.approx(sum(r == 1 for r in ranks) / len(ranks))
    assert c["rank5"] == pytest.approx(sum(r <= 5 for r in ranks) / len(ranks))
    assert c["cmc"][-1] == 1.0 and len(c["cmc"]) == len(enrolled)
    assert c["rank1"] > 0.8
    for key, fig in c["fnir_at_fpir"].items():
        allowed = math.floor(float(key) * len(non))
        thr = sorted(non, reverse=True)[allowed] if allowed < len(non) else -math.inf
        misses = sum(not (hit and s > thr) for s, hit in top)
        assert fig["fnir"] == pytest.approx(misses / len(top))
    # the HTML has the CMC and histogram plots embedded
    page = _Report()
    page.feed((identify_out / "report.html").read_text())
    dets = len(list(identify_out.glob("det-*.png")))  # the slices' DET curves
    assert len(page.images) == 2 + dets and f"{100 * c['rank1']:.2f}%" in page.cells


def test_identify_split_is_deterministic(people_tree: Path, identify_out: Path) -> None:
    from faceprint.eval.identification import split
    from faceprint.io.folders import people_folders

    people, _ = people_folders(people_tree)
    a = split(people, nonmated_fraction=0.25, seed=3)
    assert a == split(people, nonmated_fraction=0.25, seed=3)
    assert a != split(people, nonmated_fraction=0.25, seed=4)
    saved = results(identify_out)["split"]["gallery"]
    assert [[n, str(p.relative_to(people_tree))] for n, p in a.gallery] == saved


def test_calibrate_stores_threshold_that_identify_uses(
    identify_out: Path, people_tree: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    res = results(identify_out)
    non = sorted(res["conditions"][0]["data"]["nonmated_scores"], reverse=True)
    fmr = 0.1
    expected = float(np.nextafter(non[math.floor(fmr * len(non))], np.inf))
    db = tmp_path / "g.db"
    with faceprint.Gallery.open(db, create=True) as g:
        for name, path in res["split"]["gallery"][:3]:
            g.enroll(name, people_tree / path)
        before = g.threshold.similarity
    code, out, err = run(
        capsys, "calibrate", "--from", str(identify_out / "results.json"), "--fmr", str(fmr),
        "--gallery", str(db), "--store",
    )  # fmt: skip
    assert code == 0 and f"{expected:.4f}" in out
    with faceprint.Gallery.open(db, read_only=True) as g:
        assert g.threshold.similarity == expected != before
        assert g.threshold.fmr == fmr and g.threshold.how == "gallery calibration"
        assert len(g) == 3  # nothing stored was lost
        name, path = res["split"]["mated"][0]
        assert g.identify(people_tree / path)[0].threshold.similarity == expected
    with closing(open_store(db, read_only=True)) as store:
        assert float(store.setting("threshold_fmr") or 0) == fmr
        prov = json.loads(store.setting("threshold_source") or "{}")
        assert prov["protocol"] == "identify" and prov["impostors"] == len(non)
    code, out, _ = run(capsys, "identify", "--gallery", str(db), "--json", str(people_tree / path))
    assert code in (0, 4) and json.loads(out)["faces"][0]["threshold"] == round(expected, 4)
    # bad inputs: no results file, unknown condition
    code, _, err = run(capsys, "calibrate", "--from", str(tmp_path / "x.json"), "--fmr", "0.1")
    assert code == 1 and "no such file" in err
    code, _, err = run(
        capsys, "calibrate", "--from", str(identify_out / "results.json"), "--fmr", "0.1",
        "--condition", "blur:9",
    )  # fmt: skip
    assert code == 1 and "no condition" in err


# ---------------------------------------------------------------- degradations


def test_degradations_are_deterministic_and_change_the_image() -> None:
    image = load_image(FACES / "img1.jpg")
    for d in degrade.parse("blur:3,downscale:4,jpeg:10,noise:0.05,elastic:4/10"):
        out = d.apply(image, seed=1)
        assert out.shape == image.shape and out.dtype == np.uint8
        assert np.array_equal(out, d.apply(image, seed=1)), d.name
        assert np.abs(out.astype(int) - image).mean() > 0.5, d.name
    noisy = degrade.parse("noise:0.05")[0]
    assert not np.array_equal(noisy.apply(image, seed=1), noisy.apply(image, seed=2))
    assert [d.name for d in degrade.parse("elastic, jpeg:20")] == ["elastic:4/10", "jpeg:20"]


def test_elastic_is_a_smooth_local_displacement() -> None:
    image = np.zeros((250, 250, 3), np.uint8)
    image[:, 20::40] = 255  # vertical lines: an elastic warp bends them
    warped = degrade.parse("elastic:4/10")[0].apply(image, seed=0)
    cols = [int(np.argmax(warped[r, :40, 0])) for r in range(0, 250, 10)]
    assert len(set(cols)) > 2  # the first line is no longer straight
    assert max(abs(a - b) for a, b in itertools.pairwise(cols)) <= 4  # but it bends smoothly
    assert max(abs(c - 20) for c in cols) <= 15  # and locally


@pytest.mark.parametrize("spec", ["blur:0", "jpeg:500", "elastic:1", "noise:x"])
def test_bad_degradation_specs(spec: str) -> None:
    with pytest.raises(faceprint.FaceprintError):
        degrade.parse(spec)
