"""The one threshold rule, the packs' views, and the person score."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

import faceprint
from faceprint.cli.main import main
from faceprint.errors import FaceprintError
from faceprint.gallery import Gallery
from faceprint.match.search import ExactIndex, person_score
from faceprint.models.packs import DEFAULT_PACK, DLIB_PACK_V1, PACKS, pack
from faceprint.models.thresholds import Calibrated, explicit, for_fmr
from tests.conftest import FACES

POINTS = (Calibrated(1e-2, 0.90, 10**6, 300, 0.0), Calibrated(1e-4, 0.94, 10**6, 300, 0.1))


def test_calibrated_points_are_used_as_they_are() -> None:
    t = for_fmr(POINTS, 1e-2)
    assert (t.similarity, t.fmr, t.how) == (0.90, 1e-2, "calibrated")


def test_between_points_is_log_linear_and_says_so() -> None:
    t = for_fmr(POINTS, 1e-3)
    assert t.how == "interpolated" and t.fmr == 1e-3
    assert t.similarity == pytest.approx(0.92)
    t = for_fmr(POINTS, 10**-2.5)
    assert t.similarity == pytest.approx(0.91)


@pytest.mark.parametrize("fmr", [1e-6, 0.5, 0.0, 1.0, -1e-3, math.nan, math.inf])
def test_outside_the_calibration_is_refused(fmr: float) -> None:
    with pytest.raises(FaceprintError):
        for_fmr(POINTS, fmr)


def test_explicit_thresholds_are_checked() -> None:
    assert explicit(0.5).how == "explicit" and explicit(0.5).fmr is None
    for bad in (1.5, -2.0, math.nan):
        with pytest.raises(FaceprintError):
            explicit(bad)


def test_every_pack_is_calibrated_down_to_1e5_with_its_counts() -> None:
    for p in PACKS.values():
        fmrs = [c.fmr for c in p.thresholds]
        assert min(fmrs) <= 1e-5 and all(c.impostors >= 10**6 for c in p.thresholds)
        sims = [c.similarity for c in sorted(p.thresholds, key=lambda c: -c.fmr)]
        assert sims == sorted(sims)  # a lower FMR never has a lower threshold
        assert all(c.impostors * c.fmr >= 10 for c in p.thresholds)  # each point resolved
    assert pack(None) is DEFAULT_PACK
    with pytest.raises(FaceprintError, match="not known"):
        pack("someone-elses-pack")


def test_verify_reports_the_fmr_it_used_or_refuses(capsys: pytest.CaptureFixture[str]) -> None:
    a, b = str(FACES / "img13.jpg"), str(FACES / "img14.jpg")
    assert main(["verify", a, b, "--fmr", "1e-6", "--json"]) == 1
    err = capsys.readouterr().err
    assert "outside what this pack was calibrated for" in err
    assert main(["verify", a, b, "--fmr", "3e-4", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["fmr"] == 3e-4 and out["threshold_rule"] == "interpolated"
    assert main(["verify", a, b, "--fmr", "1e-4", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["fmr"] == 1e-4 and out["threshold_rule"] == "calibrated"
    assert out["threshold"] == round(DEFAULT_PACK.threshold(1e-4).similarity, 4)


def test_views_are_part_of_the_template_and_old_galleries_keep_working(tmp_path: Path) -> None:
    from faceprint.detect import detect
    from faceprint.embed import embed
    from faceprint.io import load_image

    image = load_image(FACES / "img13.jpg")
    one = embed(image, detect(image)[:1], pack=DLIB_PACK_V1)[0]
    four = embed(image, detect(image)[:1])[0]
    assert one.pack == DLIB_PACK_V1.id != four.pack == DEFAULT_PACK.id
    assert one.embedding is not None and four.embedding is not None
    assert 0.97 < float(one.embedding @ four.embedding) < 0.9999
    # a gallery of faceprint 0.1's pack is searched with probes embedded the same way
    with Gallery.open(tmp_path / "old.db", create=True) as g:
        g.store.add_templates("mark", [_new(one)], pack=DLIB_PACK_V1.id)
        assert g.pack is DLIB_PACK_V1
        (r,) = g.identify(FACES / "img14.jpg")
        assert r.name == "mark" and r.face.pack == DLIB_PACK_V1.id
        assert r.threshold.similarity == DLIB_PACK_V1.threshold().similarity


def _new(face: faceprint.Face):  # type: ignore[no-untyped-def]
    from faceprint.gallery.store import NewTemplate

    assert face.embedding is not None
    return NewTemplate(face.embedding)


def test_person_score_is_the_same_rule_everywhere() -> None:
    rng = np.random.default_rng(0)
    t = rng.standard_normal((3, 128)).astype(np.float32)
    t /= np.linalg.norm(t, axis=1, keepdims=True)
    q = np.array([0.9, np.nan, 0.2], np.float32)
    probe = (t[0] + 0.3 * t[1]) / np.linalg.norm(t[0] + 0.3 * t[1])
    w = np.array([0.9, 1.0, 0.2])
    mean = (w[:, None] * t).sum(0)
    mean /= np.linalg.norm(mean)
    expected = 0.5 * (float(np.max(t @ probe)) + float(mean @ probe))  # plain arithmetic
    assert person_score(t, probe, q) == pytest.approx(expected, abs=1e-6)
    index = ExactIndex(t, np.array([4, 4, 4]), q)
    assert index.search(probe, 1)[0][0].score == pytest.approx(expected, abs=1e-6)
