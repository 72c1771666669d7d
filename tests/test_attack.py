"""The score-leak attack harness against a live service: accounting, limits, arithmetic.

Short attacks (a few hundred queries in all) run against the real HTTP service on
loopback; the harness's counts are checked against the service's own audit log.
"""

from __future__ import annotations

import json
import math
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from faceprint.eval import attack, attack_dict, attack_pca
from faceprint.eval.attack_client import ServiceClient
from faceprint.eval.attack_nes import NesSettings, centred_ranks
from faceprint.models.packs import DEFAULT_PACK
from tests.conftest import FACES, SHARED

LFW = SHARED / "lfw-dev"
LABELS = Path(__file__).parent / "data" / "identities.csv"
TARGETS = ["jack_dorsey", "katy_perry"]
COLLECTION = "attack"
#: People (the first lfw-dev folders by name) in the small face space the tests build.
OTHERS = 160
COMPONENTS = 24
#: The service's store for these tests (tests/servicetools.py: "sqlite" or "postgresql").
ENGINE = "sqlite"


@dataclass
class Live:
    """A running service: its URL, an admin token, a way to make keys, its audit log."""

    url: str
    admin: str
    make_key: Callable[..., tuple[str, int]]  # (roles, **limits) -> (token, key id)
    audited: Callable[[int], Counter[int]]  # key id -> status codes of its requests


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    """The service on loopback on the embedded gallery file (``ENGINE``; "postgresql" works
    the same): the one place that knows how it starts, makes keys and keeps its audit log."""
    from faceprint.service.app import create_app
    from faceprint.service.auth import create_key
    from tests.servicetools import database, serving

    with (
        database(ENGINE, tmp_path_factory.mktemp("service")) as (db, _),
        serving(create_app(db)) as url,
    ):

        def make_key(roles: list[str], **limits: Any) -> tuple[str, int]:
            token, key = create_key(db, "attack-test", roles, ["*"], **limits)
            return token, key.id

        def audited(key_id: int) -> Counter[int]:
            with db.reading() as tx:
                rows = tx.execute(
                    "SELECT status, count(*) FROM audit WHERE key_id = %s GROUP BY status",
                    (key_id,),
                )
            return Counter({int(s): int(n) for s, n in rows})

        admin, _ = make_key(["admin"], rate=1000, burst=1000)
        yield Live(url, admin, make_key, audited)


@pytest.fixture(scope="module")
def others(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small 'other people' folder: links to the first lfw-dev people."""
    root = tmp_path_factory.mktemp("others")
    for person in sorted(p for p in LFW.iterdir() if p.is_dir())[:OTHERS]:
        (root / person.name).symlink_to(person, target_is_directory=True)
    return root


@pytest.fixture(scope="module")
def work(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("work")


@pytest.fixture(scope="module")
def enrolled(live: Live) -> list[str]:
    """Ten people: identify lists at most 10 candidates, so a target's score is always seen."""
    with ServiceClient(live.url, live.admin) as setup:
        people = attack.enroll_targets(setup, COLLECTION, FACES, LABELS, count=10, per_target=1)
    assert len(people) == 10 and set(TARGETS) <= set(people)
    return TARGETS


@pytest.fixture(scope="module")
def space(others: Path, work: Path) -> attack_pca.FaceSpace:
    photos = attack_pca.person_photos(others)
    return attack_pca.face_space(others, photos, work, components=COMPONENTS)


def _reconstructor(
    client: ServiceClient, space: attack_pca.FaceSpace, others: Path, **kw: Any
) -> attack.Reconstructor:
    carrier = attack_pca.carrier(others, attack_pca.pick_carrier(space), space)
    return attack.Reconstructor(client, COLLECTION, space, carrier, **kw)


def _assert_matches_audit(live: Live, client: ServiceClient, key_id: int) -> None:
    acc = client.accounting
    assert live.audited(key_id) == acc.status
    assert sum(acc.status.values()) == acc.sent


def test_face_space_is_orthonormal_whitened_and_cached(
    space: attack_pca.FaceSpace, others: Path, work: Path
) -> None:
    assert space.dim == COMPONENTS and space.components.shape == (COMPONENTS, 150 * 150 * 3)
    assert np.allclose(space.components @ space.components.T, np.eye(COMPONENTS), atol=1e-3)
    assert np.all(np.diff(space.scales) <= 0)  # largest spread first
    assert np.abs(space.project(space.chip(np.zeros(COMPONENTS)))).max() < 0.05
    z = np.random.default_rng(1).uniform(-1, 1, COMPONENTS)
    assert np.abs(space.project(space.chip(z)) - z).max() < 0.05
    assert len(list(work.glob("facespace-*.npz"))) == 1
    again = attack_pca.face_space(
        others, attack_pca.person_photos(others), work, components=COMPONENTS
    )
    assert np.array_equal(again.components, space.components) and again.photos == space.photos


def test_reconstruction_raises_the_target_score_and_counts_match_the_audit(
    live: Live, enrolled: list[str], space: attack_pca.FaceSpace, others: Path
) -> None:
    token, key_id = live.make_key(["admin"], rate=1000, burst=1000)
    with ServiceClient(live.url, token) as client:
        rec = _reconstructor(client, space, others, concurrency=2)
        rows = attack.reconstruct_all(rec, enrolled[:1], budget=240, seed=0)
        _assert_matches_audit(live, client, key_id)
        answered = client.accounting.answered
    run = rows[0]
    assert run["start_score"] is not None and run["no_face"] == 0
    assert run["best_score"] >= run["start_score"] + 0.01, run["curve"]
    # raw scores: an admin key sees 4 decimals
    assert any(round(s, 2) != s for s in run["scores"] if s is not None)
    # queries to success (or spent) never exceed what the service answered
    assert run["queries"] <= answered <= run["queries"] + 1
    assert run["success"] or run["queries"] == 240


def test_rounded_and_decision_only_answers(
    live: Live, enrolled: list[str], space: attack_pca.FaceSpace, others: Path
) -> None:
    token, key_id = live.make_key(["recognise"], rate=1000, burst=1000)
    with ServiceClient(live.url, token) as client:
        rounded = attack.reconstruct_all(
            _reconstructor(client, space, others), enrolled[:1], budget=21, seed=0
        )[0]
        hidden = attack.reconstruct_all(
            _reconstructor(client, space, others, answers="decision"), enrolled[:1], 21, 0
        )[0]
        coarse = attack.reconstruct_all(
            _reconstructor(client, space, others, round_to=1), enrolled[:1], 7, 0
        )[0]
        _assert_matches_audit(live, client, key_id)
    seen = [s for s in rounded["scores"] if s is not None]
    assert seen and all(round(s, 2) == s for s in seen)
    assert all(s is not None and round(s, 1) == s for s in coarse["scores"])
    assert hidden["scores"] == [None] * hidden["queries"] and hidden["start_score"] is None


def test_rate_limit_429_is_honoured_counted_and_audited(
    live: Live, enrolled: list[str], space: attack_pca.FaceSpace, others: Path
) -> None:
    token, key_id = live.make_key(["recognise"], rate=1.0, burst=1)
    start = time.monotonic()
    with ServiceClient(live.url, token) as client:
        rec = _reconstructor(client, space, others, concurrency=1)
        run = attack.reconstruct_all(rec, enrolled[:1], budget=5, seed=0)[0]
        acc = client.accounting
        _assert_matches_audit(live, client, key_id)
    elapsed = time.monotonic() - start
    assert run["queries"] == 5 and acc.answered == 5
    assert acc.refused >= 1 and acc.sent == 5 + acc.refused
    assert len(acc.retry_waits) == acc.refused and min(acc.retry_waits) >= 1
    assert elapsed >= sum(acc.retry_waits)  # the client really waited before asking again
    assert acc.budget_exhausted is None


def test_daily_budget_ends_the_run_for_the_key(
    live: Live, enrolled: list[str], space: attack_pca.FaceSpace, others: Path
) -> None:
    token, key_id = live.make_key(["recognise"], rate=1000, burst=1000, daily_quota=11)
    with ServiceClient(live.url, token) as client:
        rec = _reconstructor(client, space, others, concurrency=2)
        rows = attack.reconstruct_all(rec, enrolled, budget=30, seed=0)
        acc = client.accounting
        _assert_matches_audit(live, client, key_id)
    assert rows[0]["stopped"] == "daily budget exhausted" and rows[0]["queries"] == 11
    assert rows[1] == {"target": enrolled[1], "stopped": "not attempted: daily budget exhausted"}
    assert acc.answered == 11 and 1 <= acc.refused <= 2
    assert acc.budget_exhausted is not None and "budget" in acc.budget_exhausted
    summary = attack.summarise_reconstruction(rows, 30)
    assert summary["targets"] == 1 and summary["not_attempted"] == 1


def test_dictionary_arithmetic_matches_a_plain_computation(
    live: Live, enrolled: list[str], others: Path
) -> None:
    token, key_id = live.make_key(["admin"], rate=1000, burst=1000)
    n = 4
    photos = attack_pca.person_photos(others)
    with ServiceClient(live.url, token) as client:
        out = attack.dictionary_attack(client, COLLECTION, photos, enrolled, n, seed=3, scored=True)
        _assert_matches_audit(live, client, key_id)
        assert client.accounting.answered == 2 * n * len(enrolled) == out["queries"]
    scores = out["scores"]
    assert sorted(scores) == sorted(enrolled) and all(len(v) == n for v in scores.values())
    usable = [s for v in scores.values() for s in v if s is not None]
    assert len(usable) >= n * len(enrolled) - 1 and out["score_decimals"] == 4
    points = sorted(DEFAULT_PACK.thresholds, key=lambda c: c.fmr)
    assert [r["fmr"] for r in out["scored"]] == [c.fmr for c in points]
    for row, c in zip(out["scored"], points, strict=True):
        best = [max((s for s in v if s is not None), default=-1.0) for v in scores.values()]
        matched = sum(b >= c.similarity for b in best)
        over = sum(s >= c.similarity for s in usable)
        assert row["targets"]["k"] == matched and row["targets"]["n"] == len(enrolled)
        assert row["comparisons"]["k"] == over and row["comparisons"]["n"] == len(usable)
        assert row["predicted"] == pytest.approx(1 - (1 - c.fmr) ** n)
        lo, hi = row["targets"]["ci95"]
        assert lo <= matched / len(enrolled) <= hi
    # the service names a photo's target only when its similarity reaches the threshold
    threshold = DEFAULT_PACK.threshold().similarity
    with ServiceClient(live.url, token) as client:
        sets = attack_dict.disjoint_sets(photos, enrolled, n, 3)
        names, _ = attack_dict.real(client, COLLECTION, sets)
    for t in enrolled:
        for name, s in zip(names[t], scores[t], strict=True):
            if name == t:
                assert s is not None and s >= threshold - 1e-4
    assert out["real"]["targets"]["k"] == sum(t in v for t, v in names.items())


def test_clopper_pearson_binomial_and_prediction() -> None:
    for n in (1, 10, 13):
        assert attack_dict.clopper_pearson(0, n)[1] == pytest.approx(1 - 0.025 ** (1 / n))
        assert attack_dict.clopper_pearson(n, n)[0] == pytest.approx(0.025 ** (1 / n))
        for k in range(n + 1):
            lo, hi = attack_dict.clopper_pearson(k, n)
            rlo, rhi = attack_dict.clopper_pearson(n - k, n)
            assert lo == pytest.approx(1 - rhi) and hi == pytest.approx(1 - rlo)
            direct = sum(math.comb(n, i) * 0.3**i * 0.7 ** (n - i) for i in range(k + 1))
            assert attack_dict.binom_cdf(k, n, 0.3) == pytest.approx(direct)
    lo, hi = attack_dict.clopper_pearson(5, 10)  # the textbook value
    assert (round(lo, 4), round(hi, 4)) == (0.1871, 0.8129)
    assert attack_dict.binom_cdf(650, 1300, 0.5) == pytest.approx(0.5 + 0.011, abs=0.001)
    assert attack_dict.predicted_share(1e-3, 100) == pytest.approx(0.09521, abs=1e-5)
    photos = [Path(f"p{i}.jpg") for i in range(25)]
    sets = attack_dict.disjoint_sets(photos, ["a", "b", "c"], 8, seed=1)
    flat = [p for v in sets.values() for p in v]
    assert len(flat) == 24 == len(set(flat))
    assert sets == attack_dict.disjoint_sets(photos, ["a", "b", "c"], 8, seed=1)
    with pytest.raises(Exception, match="only 25"):
        attack_dict.disjoint_sets(photos, ["a", "b", "c", "d"], 8, seed=1)


def test_centred_ranks_share_ties() -> None:
    assert list(centred_ranks([0.93, 0.93, 0.94, 0.92])) == [0.0, 0.0, 0.5, -0.5]
    assert not np.any(centred_ranks([0.9] * 6))
    with pytest.raises(ValueError):
        NesSettings(population=3)


def test_cli_eval_attack_writes_results(
    live: Live, enrolled: list[str], others: Path, work: Path, tmp_path: Path
) -> None:
    from faceprint.cli.main import main

    token, key_id = live.make_key(["recognise"], rate=1000, burst=1000)
    out = tmp_path / "out"
    args = ["eval", "attack", "--url", live.url, "--key", token, "--collection", COLLECTION,
            "--others", str(others), "--targets", enrolled[0], "--budget", "21",
            "--dictionary", "2", "--components", str(COMPONENTS), "--work", str(work),
            "--out", str(out)]  # fmt: skip
    assert main(args) == 0
    result = json.loads((out / "results.json").read_text())
    rec = result["reconstruction"]
    assert rec["setting"] == "scores, 2 decimals" and rec["summary"]["targets"] == 1
    assert rec["summary"]["queries_spent"] == 21 or rec["summary"]["named"] == 1
    acc = result["accounting"]
    assert acc["requests"] == sum(live.audited(key_id).values())
    assert acc["answered"] == 21 + 2 * 2 or rec["summary"]["named"] == 1  # + scored and real
    assert "dictionary" in result and "| FMR |" in (out / "report.md").read_text()
    assert (out / "probes" / f"scores-{enrolled[0]}.png").stat().st_size > 1000
    assert len(list(work.glob("facespace-*.npz"))) == 1  # the cached space was used
    assert token not in (out / "results.json").read_text()
