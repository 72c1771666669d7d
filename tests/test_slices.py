"""Per-group slices of ``faceprint eval``: the arithmetic against plain loops on synthetic
scores, the groups file's checks, the automatic pose slices, and a run on ../shared/faces
with tests/data/groups.csv (pairs and identification)."""

from __future__ import annotations

import csv
import json
import math
import os
import shutil
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from faceprint.cli.main import main
from faceprint.errors import FaceprintError
from faceprint.eval import face_slices, slices
from faceprint.eval.face_slices import AUTO
from faceprint.eval.groups import read_groups
from faceprint.eval.slices import Operating, wilson
from faceprint.eval.templates import TemplateCache, compute
from faceprint.models.packs import DEFAULT_PACK
from faceprint.quality import pitch
from faceprint.quality import score as quality_score

from .conftest import FACES

DATA = Path(__file__).parent / "data"
GROUPS = DATA / "groups.csv"
Z = 1.959963984540054


# ---------------------------------------------------------------- intervals


@pytest.mark.parametrize(
    "k, n, lo, hi",
    [
        (5, 10, 0.2366, 0.7634),
        (0, 10, 0.0, 0.2775),
        (10, 10, 0.7225, 1.0),
        (1, 1000, 0.00018, 0.00565),
    ],
)
def test_wilson_known_values(k: int, n: int, lo: float, hi: float) -> None:
    got = wilson(k, n)
    assert got[0] == pytest.approx(lo, abs=5e-5) and got[1] == pytest.approx(hi, abs=5e-5)


@pytest.mark.parametrize("k, n", [(0, 7), (1, 31), (3, 262), (25, 60), (59, 60), (40, 120000)])
def test_wilson_bounds_solve_the_score_equation(k: int, n: int) -> None:
    """Each bound p of Wilson's interval solves (k/n - p)^2 = z^2 p (1 - p) / n (or is 0 / 1
    when k is 0 / n), and the interval holds k/n."""
    lo, hi = wilson(k, n)
    assert lo <= k / n <= hi
    for p, edge in ((lo, k == 0), (hi, k == n)):
        if edge:
            assert p in (0.0, 1.0)
        else:
            assert (k / n - p) ** 2 == pytest.approx(Z * Z * p * (1 - p) / n, rel=1e-9)


def test_wilson_refuses_impossible_counts() -> None:
    for k, n in ((1, 0), (-1, 5), (6, 5)):
        with pytest.raises(ValueError):
            wilson(k, n)


# ---------------------------------------------------------------- slice table


def _synthetic(seed: int = 1) -> tuple[np.ndarray, np.ndarray, list[tuple[str, str] | None]]:
    """Pairs of photos labelled A/B/C (and some unlabelled), groups scoring differently."""
    rng = np.random.default_rng(seed)
    group = rng.choice(["A", "B", "C", None], size=300, p=[0.5, 0.3, 0.15, 0.05])
    a, b = rng.integers(0, 300, 4000), rng.integers(0, 300, 4000)
    same = rng.random(4000) < 0.1
    shift = {"A": 0.0, "B": 0.05, "C": 0.1, None: 0.0}
    scores = np.where(same, rng.normal(0.9, 0.05, 4000), rng.normal(0.6, 0.1, 4000))
    scores += np.array([shift[group[i]] for i in b])
    scores = np.round(scores, 3)  # ties, as real scores have
    scores[:3] = -math.inf  # failed comparisons
    cells = [
        None if group[i] is None or group[j] is None else (str(group[i]), str(group[j]))
        for i, j in zip(a, b, strict=True)
    ]
    return scores, same, cells


OPS = [
    Operating("t1", 0.75, 0.1, "pack"),
    Operating("t2", 0.82, 0.01, "pack"),
    Operating("t3", 0.97, 0.001, "eval"),
]
TARGETS = [0.1, 0.01, 0.001]


def _plain_cell(scores: np.ndarray, same: np.ndarray, cells: list[Any], cell: tuple[str, str]):
    key = tuple(sorted(cell))
    idx = [i for i, c in enumerate(cells) if c is not None and tuple(sorted(c)) == key]
    gen = [float(scores[i]) for i in idx if same[i]]
    imp = [float(scores[i]) for i in idx if not same[i]]
    return gen, imp


def test_table_matches_plain_loops() -> None:
    scores, same, cells = _synthetic()
    t = slices.table(scores, same, cells, OPS, TARGETS)
    assert t["left_out"] == sum(c is None for c in cells)
    assert [g["group"] for g in t["groups"]] == ["A", "B", "C"]
    assert [c["groups"] for c in t["cross"]] == [["A", "B"], ["A", "C"], ["B", "C"]]
    unmeasured = 0
    blocks = [(g, (g["group"],) * 2) for g in t["groups"]] + [
        (c, tuple(c["groups"])) for c in t["cross"]
    ]
    for block, cell in blocks:
        gen, imp = _plain_cell(scores, same, cells, cell)
        assert (block["genuine"], block["impostor"]) == (len(gen), len(imp))
        for op in OPS:
            fm = sum(s >= op.similarity for s in imp)
            fnm = sum(s < op.similarity for s in gen)
            r_fm, r_fnm = block["rates"][op.name]["fmr"], block["rates"][op.name]["fnmr"]
            assert (r_fm["errors"], r_fm["n"], r_fnm["errors"], r_fnm["n"]) == (
                fm,
                len(imp),
                fnm,
                len(gen),
            )
            assert r_fm["ci95"] == pytest.approx(list(wilson(fm, len(imp))))
            if len(imp) * op.target >= 1 or fm > 0:
                assert r_fm["measurable"] and r_fm["rate"] == pytest.approx(fm / len(imp))
                assert r_fm["resolved"] == (len(imp) * op.target >= 1)
            else:
                assert r_fm["rate"] is None and "cannot be measured" in r_fm["note"]
                unmeasured += 1
            assert r_fnm["rate"] == pytest.approx(fnm / len(gen))
    assert unmeasured  # the synthetic set has cells too small for FMR 0.001
    # max / min over the groups whose rate is measured
    checked = 0
    for op in OPS:
        for key in ("fmr", "fnmr"):
            least = slices.RATIO_MIN_POSITIVES if key == "fnmr" else 0
            rates = {
                g["group"]: g["rates"][op.name][key]["rate"]
                for g in t["groups"]
                if g["rates"][op.name][key]["measurable"] and g["rates"][op.name][key]["n"] >= least
            }
            r = t["ratios"][op.name][key]
            assert r["over"] == sorted(rates)
            if len(rates) >= 2 and min(rates.values()) > 0:
                assert r["ratio"] == pytest.approx(max(rates.values()) / min(rates.values()))
                checked += 1
    assert checked >= 3
    # the group x group matrix holds the same rates, symmetric
    m = t["fmr_matrix"]
    assert m["groups"] == ["A", "B", "C"]
    for op in OPS:
        grid = m["at"][op.name]
        assert grid[0][1] == grid[1][0] == t["cross"][0]["rates"][op.name]["fmr"]["rate"]
        assert grid[2][2] == t["groups"][2]["rates"][op.name]["fmr"]["rate"]


def test_in_group_threshold_is_the_smallest_giving_the_target() -> None:
    scores, same, cells = _synthetic(2)
    t = slices.table(scores, same, cells, OPS, TARGETS)
    for g in t["groups"]:
        gen, imp = _plain_cell(scores, same, cells, (g["group"],) * 2)
        for target in TARGETS:
            v = g["in_group_threshold"][f"{target:g}"]
            if len(imp) * target < 1:
                assert v["similarity"] is None and "cannot be measured" in v["note"]
                continue
            thr = v["similarity"]
            assert sum(s >= thr for s in imp) / len(imp) <= target
            lower = [s for s in imp if s < thr]  # any lower threshold lets more through
            if lower:
                assert sum(s >= max(lower) for s in imp) / len(imp) > target
            assert v["fnmr"] == pytest.approx(sum(s < thr for s in gen) / len(gen))


def test_unmeasurable_rates_and_ratios() -> None:
    # group X: 5 impostors (too few for 0.1), no genuine; Y: 20 impostors, 1 false match;
    # Z: 40 impostors, no false match
    scores = np.array([0.1] * 5 + [0.9] + [0.1] * 19 + [0.1] * 40 + [0.95, 0.5])
    same = np.array([False] * 65 + [True, True])
    cells = [("X", "X")] * 5 + [("Y", "Y")] * 20 + [("Z", "Z")] * 40 + [("Y", "Y"), ("Z", "Z")]
    op = Operating("t", 0.8, 0.1, "pack")
    t = slices.table(scores, same, cells, [op], [0.1])
    by = {g["group"]: g["rates"]["t"] for g in t["groups"]}
    assert by["X"]["fmr"]["rate"] is None and by["X"]["fmr"]["errors"] == 0
    assert "needs at least 10" in by["X"]["fmr"]["note"] and by["X"]["fmr"]["ci95"] is not None
    assert by["X"]["fnmr"]["rate"] is None and by["X"]["fnmr"]["ci95"] is None
    assert "no genuine pairs" in by["X"]["fnmr"]["note"]
    assert by["Y"]["fmr"]["rate"] == pytest.approx(1 / 20) and by["Z"]["fmr"]["rate"] == 0
    few = slices.rate(2, 50, of="impostor pairs", target=0.01)  # 2 of 50: above 1/100
    assert few["rate"] == 0.04 and few["measurable"] and not few["resolved"]
    r = t["ratios"]["t"]["fmr"]
    assert r["over"] == ["Y", "Z"] and r["left_out"] == ["X"]
    assert r["ratio"] is None and "unbounded" in r["note"] and r["min"]["group"] == "Z"
    fn = t["ratios"]["t"]["fnmr"]  # one genuine pair each: too few for the ratio
    assert fn["ratio"] is None and fn["left_out"] == ["X", "Y", "Z"]
    assert "over at least 10" in fn["note"]
    assert by["Z"]["fnmr"]["rate"] == 1.0 and by["Y"]["fnmr"]["rate"] == 0.0
    assert t["fmr_matrix"] is None  # no cross-group cells
    one = slices.ratio({"Y": by["Y"]["fmr"], "X": by["X"]["fmr"]}, "fmr")
    assert one["ratio"] is None and "fewer than two" in one["note"]
    none = slices.ratio({"Z": by["Z"]["fmr"], "Z2": by["Z"]["fmr"]}, "fmr")
    assert none["ratio"] == 1.0 and "no errors" in none["note"]
    empty = slices.rate(0, 0, of="impostor pairs", target=0.1)
    assert empty["rate"] is None and empty["ci95"] is None and not empty["measurable"]


def test_det_points_are_best_operating_points() -> None:
    scores, same, _ = _synthetic(3)
    pos, neg = scores[same], scores[~same]
    det = slices.det_points(pos, neg)
    assert det is not None and len(det["fp"]) <= slices.DET_POINTS
    assert det["fp"][0] == 0 and det["fn"][-1] == 0 and det["fp"] == sorted(det["fp"])
    thresholds = np.unique(np.r_[scores, math.inf])
    fmr = np.array([np.mean(neg >= t) for t in thresholds])
    fnmr = np.array([np.mean(pos < t) for t in thresholds])
    for x, y in zip(det["fp"], det["fn"], strict=True):
        assert y == pytest.approx(fnmr[fmr <= x + 1e-12].min())
    assert slices.det_points(pos, neg[:0]) is None


# ---------------------------------------------------------------- automatic slices


def _face(drop: float, roll: float = 0.0, yaw_offset: float = 0.0) -> np.ndarray:
    """5 landmarks with eye centres 60 px apart, nose base ``drop`` eye distances below."""
    pts = np.array(
        [[140.0, 100], [120, 100], [60, 100], [80, 100], [100 + 60 * yaw_offset, 100 + 60 * drop]]
    )
    c, s = math.cos(math.radians(roll)), math.sin(math.radians(roll))
    centre = np.array([100.0, 100.0])
    return (pts - centre) @ np.array([[c, s], [-s, c]]) + centre


def test_pitch_from_the_nose_base() -> None:
    assert pitch(_face(quality_score.NOSE_DROP)) == pytest.approx(0.0, abs=1e-6)
    assert pitch(_face(quality_score.NOSE_DROP - 0.2)) > 10  # nose nearer the eyes: chin up
    assert pitch(_face(quality_score.NOSE_DROP + 0.05)) < -5
    for roll in (-25.0, 15.0):  # roll does not change it
        assert pitch(_face(0.6, roll)) == pytest.approx(pitch(_face(0.6)), abs=1e-6)
    # the projection model: drop = h cos(p) - d sin(p)
    p = math.radians(pitch(_face(0.6)))
    h, d = quality_score.NOSE_DROP, quality_score.NOSE_DEPTH
    assert h * math.cos(p) - d * math.sin(p) == pytest.approx(0.6)


def test_bands() -> None:
    yaw = next(a for a in AUTO if a.name == "yaw")
    assert yaw.labels == ("< 10°", "10–20°", "20–30°", "≥ 30°")
    assert yaw.band(None) == face_slices.NO_FACE
    assert yaw.order[-1] == face_slices.NO_FACE


# ---------------------------------------------------------------- groups file


def _write(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "groups.csv"
    path.write_text(body)
    return path


@pytest.mark.parametrize(
    "body, message",
    [
        ("", "empty groups file"),
        ("img1.jpg,female\nimg2.jpg,female\n", "it must be a header"),
        ("file\nimg1.jpg\n", "at least one attribute"),
        ("file,sex,sex\nimg1.jpg,f,f\n", "attribute named twice: sex"),
        ("file,sex,\nimg1.jpg,f,x\n", "has no name"),
        ("file,sex\n", "no photos after the header"),
        ("file,sex,age\nimg1.jpg,female\n", "line 2: expected 3 values"),
        ("file,sex,age\nimg1.jpg,female, \n", "line 2: no label for age (img1.jpg)"),
        (
            "file,sex\nimg1.jpg,f\n# c\n./img1.jpg,m\n",
            "line 4: ./img1.jpg is already listed on line 2",
        ),
        ("file,sex\nimg1.jpg,f\nnope.jpg,f\nalso/none.jpg,m\n", "2 photo(s)"),
    ],
)
def test_groups_file_errors(tmp_path: Path, body: str, message: str) -> None:
    with pytest.raises(FaceprintError) as info:
        read_groups(FACES, _write(tmp_path, body))
    assert message in str(info.value)
    if "photo(s)" in message:
        assert "nope.jpg" in str(info.value) and "also/none.jpg" in str(info.value)


def test_groups_file_reads_the_shipped_labels() -> None:
    labels = read_groups(FACES, GROUPS)
    assert labels.attributes == ("sex", "beard", "mouth")
    assert len(labels.by_file) == 62
    assert labels.of(FACES / "img1.jpg") == ("female", "no", "open")
    assert labels.of(FACES / "." / "img16.jpg") == ("male", "yes", "closed")
    assert labels.of(FACES / "couple.jpg") is None


def test_groups_errors_through_the_cli(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = _write(tmp_path, "file,sex\nimg1.jpg,\n")
    args = ["eval", "pairs", "--root", str(FACES), "--pairs", str(FACES / "master.csv")]
    code = main([*args, "--groups", str(bad), "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert code == 1 and "no label for sex" in err and "Traceback" not in err
    code = main([*args, "--groups", str(tmp_path / "none.csv"), "--out", str(tmp_path / "out")])
    assert code == 1 and "groups file not found" in capsys.readouterr().err
    assert not (tmp_path / "out" / "results.json").exists()


# ---------------------------------------------------------------- on ../shared/faces


class _Images(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.alts: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "img":
            self.alts.append(dict(attrs).get("alt") or "")


@pytest.fixture(scope="session")
def sliced(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    out = tmp_path_factory.mktemp("slices-pairs")
    args = ["eval", "pairs", "-q", "--root", str(FACES), "--pairs", str(FACES / "master.csv")]
    import contextlib
    import io

    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        assert main([*args, "--groups", str(GROUPS), "--out", str(out)]) == 0
    return out, buf.getvalue()


def _labels() -> dict[str, dict[str, str]]:
    with GROUPS.open() as fh:
        return {r["file"]: r for r in csv.DictReader(ln for ln in fh if not ln.startswith("#"))}


def test_pairs_slices_on_faces(sliced: tuple[Path, str]) -> None:
    out, stdout = sliced
    res = json.loads((out / "results.json").read_text())
    labels = _labels()
    with (FACES / "master.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    c = res["conditions"][0]
    scores, same = c["data"]["scores"], c["data"]["labels"]
    sl = c["slices"]
    pack_ops = [o for o in sl["operating"] if o["source"] == "pack"]
    assert [o["similarity"] for o in pack_ops] == [
        DEFAULT_PACK.threshold(t.fmr).similarity
        for t in sorted(DEFAULT_PACK.thresholds, key=lambda t: -t.fmr)
    ]
    assert res["groups"]["labelled images"] == 25 and res["groups"]["unlabelled images"] == []
    attrs = {a["attribute"]: a for a in sl["attributes"]}
    assert list(attrs)[:3] == ["sex", "beard", "mouth"]
    for name in ("sex", "beard", "mouth"):
        cells: dict[tuple[str, ...], list[tuple[float, int]]] = {}
        for r, s, y in zip(rows, scores, same, strict=True):
            key = tuple(sorted({labels[r["file_x"]][name], labels[r["file_y"]][name]}))
            cells.setdefault(key, []).append((s, y))
        blocks = {(g["group"],): g for g in attrs[name]["groups"]}
        blocks |= {tuple(x["groups"]): x for x in attrs[name]["cross"]}
        assert set(blocks) == set(cells)
        for key, pairs in cells.items():
            b = blocks[key]
            assert b["genuine"] == sum(y for _, y in pairs)
            assert b["impostor"] == sum(1 - y for _, y in pairs)
            for op in sl["operating"]:
                fm = sum(1 for s, y in pairs if not y and s >= op["similarity"])
                assert b["rates"][op["name"]]["fmr"]["errors"] == fm
                fnm = sum(1 for s, y in pairs if y and s < op["similarity"])
                assert b["rates"][op["name"]]["fnmr"]["errors"] == fnm
    # the automatic slices cover every pair, by its probe (side b)
    for auto in AUTO:
        a = attrs[auto.name]
        assert a["source"] == "automatic" and a["left_out"] == 0
        assert sum(g["genuine"] + g["impostor"] for g in a["groups"]) == len(rows)
    probe_faces = sl["probe_faces"]
    assert set(probe_faces) == {r["file_y"] for r in rows}
    # the report: tables and one DET plot per group
    page = _Images()
    html_text = (out / "report.html").read_text()
    page.feed(html_text)
    dets = [alt for alt in page.alts if alt.startswith("det-")]
    groups = [(a["attribute"], g) for a in sl["attributes"] for g in a["groups"]]
    assert len(dets) == sum(g["det"] is not None for _, g in groups)
    for name in ("sex", "beard", "mouth"):
        assert all(g["det"] is not None for g in attrs[name]["groups"])
    assert "female × male" in html_text and "in-group threshold" in html_text
    # the terminal's short version
    assert "sex (labels:" in stdout and "\nfemale\t14\t" in stdout and "max/min" in stdout


def test_face_records_come_from_the_evaluation(sliced: tuple[Path, str]) -> None:
    from faceprint.detect import detect
    from faceprint.io import load_image
    from faceprint.quality import assess

    out, _ = sliced
    res = json.loads((out / "results.json").read_text())
    t = compute(
        [FACES / "img1.jpg", FACES / "img16.jpg"],
        detector=res["detector"],
        cache=TemplateCache(out / "templates.npz"),
        quiet=True,
    )
    assert t.computed == 0
    for name in ("img1.jpg", "img16.jpg"):
        record = t.faces[FACES / name]
        image = load_image(FACES / name)
        face = detect(image, detector=res["detector"])[0]
        assert record is not None and record.box == pytest.approx(face.box.as_list(), abs=1e-3)
        assert record.landmarks == pytest.approx(face.landmarks, abs=1e-3)
        assert record.quality == pytest.approx(assess(image, face).score, abs=1e-6)


def test_old_cache_format_is_recomputed(
    sliced: tuple[Path, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out, _ = sliced
    with np.load(out / "templates.npz") as data:
        old = {k: data[k] for k in ("keys", "vectors", "status", "faces")}  # format 1 layout
    np.savez(tmp_path / "templates.npz", **old)
    assert TemplateCache(tmp_path / "templates.npz").entries == {}
    assert "older template cache" in capsys.readouterr().err
    assert len(TemplateCache(out / "templates.npz").entries) == 25


def test_identify_slices_on_faces(
    sliced: tuple[Path, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out_pairs, _ = sliced
    labels = _labels()
    with (DATA / "identities.csv").open() as fh:
        people = dict(
            (r["file"], r["person"])
            for r in csv.DictReader(ln for ln in fh if not ln.startswith("#"))
        )
    used = {p["file"] for p in labels.values()} & {f"img{i}.jpg" for i in range(1, 26)}
    root = tmp_path / "people"
    lines = ["file,sex"]
    for file in sorted(used):
        (root / people[file]).mkdir(parents=True, exist_ok=True)
        os.symlink(FACES / file, root / people[file] / file)
        lines.append(f"{people[file]}/{file},{labels[file]['sex']}")
    (tmp_path / "g.csv").write_text("\n".join(lines) + "\n")
    out = tmp_path / "out"
    out.mkdir()
    shutil.copy(out_pairs / "templates.npz", out)  # the same photos: cached
    code = main([
        "eval", "identify", "-q", "--root", str(root), "--out", str(out), "--groups",
        str(tmp_path / "g.csv"), "--nonmated-fraction", "0.25", "--seed", "3",
    ])  # fmt: skip
    assert code == 0 and "sex (labels:" in capsys.readouterr().out
    res = json.loads((out / "results.json").read_text())
    assert res["counts"]["templates computed (not cached)"] == 0
    c = res["conditions"][0]
    sex = next(a for a in c["slices"]["attributes"] if a["attribute"] == "sex")
    assert sex["cross"] == []  # a search is in its probe's group
    data = c["data"]
    mated = [
        (p, s, h)
        for (_, p), s, h in zip(
            res["split"]["mated"], data["mated_scores"], data["mated_hit"], strict=True
        )
    ]
    non = list(
        zip((p for _, p in res["split"]["nonmated"]), c["data"]["nonmated_scores"], strict=True)
    )
    for g in sex["groups"]:
        mine = [(s, h) for p, s, h in mated if labels[Path(p).name]["sex"] == g["group"]]
        theirs = [s for p, s in non if labels[Path(p).name]["sex"] == g["group"]]
        assert (g["mated"], g["nonmated"]) == (len(mine), len(theirs))
        for op in c["slices"]["operating"]:
            r = g["rates"][op["name"]]
            assert r["fnir"]["errors"] == sum(not (h and s >= op["similarity"]) for s, h in mine)
            assert r["fpir"]["errors"] == sum(s >= op["similarity"] for s in theirs)
    assert any(o["name"].startswith("eval FPIR") for o in c["slices"]["operating"])
    page = _Images()
    page.feed((out / "report.html").read_text())
    assert sum(alt.startswith("det-0-sex-") for alt in page.alts) == sum(
        g["det"] is not None for g in sex["groups"]
    )
