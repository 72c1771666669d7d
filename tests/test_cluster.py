"""People discovery: clustering with human decisions (faceprint.library.cluster).

Real templates of ../shared/faces through the public API, plus small synthetic cases for the
edge conditions.
"""

from __future__ import annotations

import csv
import hashlib
from pathlib import Path

import numpy as np
import pytest

import faceprint
from faceprint.errors import FaceprintError
from faceprint.library.cluster import (
    HIDDEN,
    UNASSIGNED,
    Clustering,
    Faces,
    Params,
    assign_new,
    cluster_all,
)
from faceprint.library.decisions import Decisions
from faceprint.library.knn import neighbours
from faceprint.library.merge import agglomerate
from faceprint.models.packs import DEFAULT_PACK
from faceprint.quality import assess
from tests.conftest import FACES

LABELS = Path(__file__).parent / "data" / "identities.csv"


@pytest.fixture(scope="session")
def library() -> tuple[Faces, dict[str, str]]:
    """Every face of every photo of ../shared/faces, and the label of each photo's subject."""
    with LABELS.open() as fh:
        labels = {r["file"]: r["person"] for r in csv.DictReader(
            line for line in fh if not line.startswith("#"))}  # fmt: skip
    keys, temps, photos, quality, truth = [], [], [], [], {}
    for path in sorted(FACES.glob("*.jpg")):
        image = faceprint.load_image(path)
        digest = hashlib.sha256(path.read_bytes()).hexdigest()[:16]
        for rank, face in enumerate(faceprint.embed_faces(image)):
            b = face.box
            key = f"{digest}:{b.left:.0f},{b.top:.0f},{b.right:.0f},{b.bottom:.0f}"
            keys.append(key)
            temps.append(face.embedding)
            photos.append(path.name)
            quality.append(assess(image, face).score)
            if rank == 0 and path.name in labels:
                truth[key] = labels[path.name]
    return Faces(keys, np.asarray(temps), photos, np.asarray(quality)), truth


def strict() -> float:
    """The default pack's threshold at its lowest calibrated FMR."""
    return min(DEFAULT_PACK.thresholds, key=lambda p: p.fmr).similarity


def shuffled(faces: Faces, seed: int) -> Faces:
    o = np.random.default_rng(seed).permutation(len(faces.keys))
    q = None if faces.quality is None else faces.quality[o]
    return Faces([faces.keys[i] for i in o], faces.templates[o], [faces.photos[i] for i in o], q)


def by_key(res: Clustering) -> dict[str, int]:
    return dict(zip(res.keys, res.labels.tolist(), strict=True))


def test_faces_of_one_photo_are_never_one_person(library: tuple[Faces, dict[str, str]]) -> None:
    faces, _ = library
    assert max(faces.photos.count(p) for p in set(faces.photos)) >= 3  # group photos exist
    # a threshold below every similarity: without the constraint everything would merge
    res = cluster_all(faces, params=Params(-1.0, min_seed_quality=0.0, neighbours=64))
    seen: dict[tuple[str, int], str] = {}
    for key, photo, label in zip(faces.keys, faces.photos, res.labels.tolist(), strict=True):
        if label >= 0:
            assert (photo, label) not in seen, f"{key} and {seen[(photo, label)]} of {photo}"
            seen[(photo, label)] = key
    assert len(res.groups()) >= max(faces.photos.count(p) for p in set(faces.photos))


def test_real_people_are_grouped(library: tuple[Faces, dict[str, str]]) -> None:
    faces, truth = library
    res = cluster_all(faces, params=Params(strict(), min_seed_quality=0.0))
    lab = by_key(res)
    keys = sorted(truth)
    same = pred = both = 0
    for i, a in enumerate(keys):
        for b in keys[i + 1 :]:
            s, p = truth[a] == truth[b], lab[a] >= 0 and lab[a] == lab[b]
            same, pred, both = same + s, pred + p, both + (s and p)
    assert both / pred >= 0.9  # few false merges
    assert both / same >= 0.6  # most of each person together


def test_result_does_not_depend_on_insertion_order(library: tuple[Faces, dict[str, str]]) -> None:
    faces, truth = library
    params = Params(strict(), min_seed_quality=0.3)
    some = sorted(truth)[:6]
    decisions = Decisions(named={some[0]: "a", some[1]: "a"}, not_named=[(some[2], "a")])
    first = cluster_all(faces, decisions, params)
    for seed in range(3):
        again = cluster_all(shuffled(faces, seed), decisions, params)
        assert by_key(again) == by_key(first)
        assert again.names == first.names and again.anchors == first.anchors


def _cluster_of(res: Clustering, key: str) -> set[str]:
    c = res.label(key)
    return set(res.groups().get(c, [])) if c >= 0 else set()


def test_every_decision_survives_a_full_recluster(library: tuple[Faces, dict[str, str]]) -> None:
    faces, truth = library
    params = Params(strict(), min_seed_quality=0.0)
    base = cluster_all(faces, params=params)
    groups = sorted(base.groups().values(), key=len, reverse=True)
    big, second = groups[0], groups[1]
    stranger = next(k for k in faces.keys if base.label(k) < 0)
    split_a, split_b = big[: len(big) // 2], big[len(big) // 2 :]
    decisions = Decisions(
        named={big[0]: "alice", stranger: "alice", second[0]: "bob"},  # "this face is X"
        not_named=[(big[1], "alice")],  # "this face is not X"
        hidden=[second[1]],
        together=[[second[0], groups[2][0]]],  # merge two clusters
        apart=[(split_a[2:], split_b)],  # split a cluster
    )
    for seed in (None, 0, 1):
        res = cluster_all(faces if seed is None else shuffled(faces, seed), decisions, params)
        assert res.person(big[0]) == res.person(stranger) == "alice"
        assert res.label(big[0]) == res.label(stranger)
        assert res.person(big[1]) != "alice"
        assert res.label(second[1]) == HIDDEN
        assert res.label(second[0]) == res.label(groups[2][0]) and res.person(second[0]) == "bob"
        a = {res.label(k) for k in split_a[2:]} - {UNASSIGNED}
        b = {res.label(k) for k in split_b} - {UNASSIGNED}
        assert not a & b
        assert "alice" in res.names.values() and "bob" in res.names.values()


def test_contradictory_decisions_are_refused() -> None:
    faces = Faces(["a", "b"], np.eye(2, 4, dtype=np.float32), ["p", "q"])
    with pytest.raises(FaceprintError, match="contradictory"):
        cluster_all(faces, Decisions(named={"a": "x"}, not_named=[("a", "x")]), Params(0.9))
    with pytest.raises(FaceprintError, match="contradictory"):
        cluster_all(faces, Decisions(named={"a": "x", "b": "y"}, together=[["a", "b"]]),
                    Params(0.9))  # fmt: skip
    with pytest.raises(FaceprintError, match="same key"):
        cluster_all(Faces(["a", "a"], np.eye(2, 4, dtype=np.float32), ["p", "q"]), None,
                    Params(0.9))  # fmt: skip
    with pytest.raises(FaceprintError, match="templates"):
        cluster_all(Faces(["a"], np.eye(2, 4, dtype=np.float32), ["p"]), None, Params(0.9))


def _people(n_people: int, per: int, dim: int = 32, spread: float = 0.15, seed: int = 0
            ) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(n_people, dim))
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    t = np.repeat(centres, per, axis=0) + spread * rng.normal(size=(n_people * per, dim)) / dim**0.5
    return (t / np.linalg.norm(t, axis=1, keepdims=True)).astype(np.float32), np.repeat(
        np.arange(n_people), per
    )


def test_a_human_may_put_two_faces_of_one_photo_together() -> None:
    t, _ = _people(1, 3)
    faces = Faces(["m1", "m2", "m3"], t, ["mirror", "mirror", "mirror"])
    res = cluster_all(faces, Decisions(named={"m1": "me", "m2": "me"}), Params(0.5))
    assert res.label("m1") == res.label("m2") and res.person("m1") == "me"
    assert res.label("m3") != res.label("m1")  # the third face of that photo stays apart


def test_incremental_assignment_never_moves_existing_faces() -> None:
    t, who = _people(6, 8, seed=1)
    keys = [f"f{i:03d}" for i in range(len(t))]
    photos = keys  # one face per photo
    old = np.flatnonzero(np.arange(len(t)) % 8 < 5)
    new = np.flatnonzero(np.arange(len(t)) % 8 >= 5)
    # the last person appears only among the new faces (plus one unassigned old face)
    old = old[(who[old] < 5) | (np.arange(len(old)) % 5 == 0)]
    params = Params(0.8, min_seed_quality=0.0)

    def sub(idx: np.ndarray) -> Faces:
        return Faces([keys[i] for i in idx], t[idx], [photos[i] for i in idx])

    before = cluster_all(sub(old), params=params)
    assert (before.labels >= 0).sum() >= 20
    after = assign_new(sub(old), before.labels, sub(new), params=params)
    assert after.keys[: len(old)] == before.keys
    held = before.labels >= 0
    assert np.array_equal(after.labels[: len(old)][held], before.labels[held])
    lab = dict(zip(after.keys, after.labels.tolist(), strict=True))
    for i in new:  # new faces join their person's existing cluster
        mates = [lab[keys[j]] for j in old if who[j] == who[i] and before.label(keys[j]) >= 0]
        if mates:
            assert lab[keys[i]] == mates[0]
    lone = [keys[j] for j in old if who[j] == 5]
    assert lone and all(lab[k] >= 0 and lab[k] == lab[keys[new[-1]]] for k in lone)
    assert lab[keys[new[-1]]] > before.labels.max()  # a new cluster gets a new number
    # an earlier run (or a human) split person 0 in two: new faces of person 0 do not merge them
    split = before.labels.copy()
    zero = [i for i, j in enumerate(old) if who[j] == 0]
    split[zero[: len(zero) // 2]] = split.max() + 1
    again = assign_new(sub(old), split, sub(new), params=params)
    assert np.array_equal(again.labels[: len(old)][split >= 0], split[split >= 0])


def test_low_quality_faces_never_seed_but_may_join() -> None:
    t, who = _people(3, 4, seed=2)
    quality = np.where(np.arange(12) % 4 == 0, 0.9, 0.05)
    quality[8:] = 0.05  # person 2: low quality only
    quality[4:8] = [0.9, 0.9, 0.05, 0.05]  # person 1: two good faces
    keys = [f"k{i:02d}" for i in range(12)]
    faces = Faces(keys, t, keys, quality)
    res = cluster_all(faces, params=Params(0.8, min_seed_quality=0.5))
    lab = res.labels
    assert (lab[8:] == UNASSIGNED).all()  # low-quality faces alone form nothing
    assert (lab[0:4] == UNASSIGNED).all()  # one good face is no cluster to join
    assert lab[4] >= 0 and (lab[4:8] == lab[4]).all()  # they join a standing cluster
    # the same faces all of good quality: three people
    full = cluster_all(Faces(keys, t, keys, np.ones(12)), params=Params(0.8))
    assert len(full.groups()) == 3 and all((full.labels[who == p] >= 0).all() for p in range(3))


def _naive_average_hac(t: np.ndarray, threshold: float) -> list[set[int]]:
    clusters = [{i} for i in range(len(t))]
    sims = t.astype(np.float64) @ t.T.astype(np.float64)
    while True:
        best, pair = -np.inf, None
        for a in range(len(clusters)):
            for b in range(a + 1, len(clusters)):
                s = sims[np.ix_(list(clusters[a]), list(clusters[b]))].mean()
                if s > best:
                    best, pair = s, (a, b)
        if pair is None or best < threshold:
            return clusters
        a, b = pair
        clusters[a] |= clusters.pop(b)


def test_round_merging_equals_one_pair_at_a_time_average_linkage() -> None:
    t, _ = _people(5, 6, dim=16, spread=0.6, seed=3)
    n = len(t)
    edges = np.array([(i, j) for i in range(n) for j in range(n) if i != j])
    root = agglomerate(t.astype(np.float64).copy(), np.ones(n), [{} for _ in range(n)], edges,
                       0.55, "average")  # fmt: skip
    ours = {frozenset(np.flatnonzero(root == r).tolist()) for r in np.unique(root)}
    assert ours == {frozenset(c) for c in _naive_average_hac(t, 0.55)}
    assert 1 < len(ours) < n


def test_neighbours_match_brute_force() -> None:
    t, _ = _people(20, 10, dim=24, spread=0.5, seed=4)
    idx, sim = neighbours(t, None, k=5, floor=0.3)
    full = t @ t.T
    np.fill_diagonal(full, -np.inf)
    for i in range(len(t)):
        want = [j for j in np.argsort(-full[i], kind="stable")[:5] if full[i, j] >= 0.3]
        assert idx[i][idx[i] >= 0].tolist() == want
        assert np.allclose(sim[i][: len(want)], full[i, want], atol=1e-5)


def test_empty_and_single_inputs() -> None:
    empty = cluster_all(Faces([], np.zeros((0, 8), np.float32), []), params=Params(0.9))
    assert empty.labels.shape == (0,) and empty.groups() == {}
    one = cluster_all(Faces(["x"], np.eye(1, 8, dtype=np.float32), ["p"]), params=Params(0.9))
    assert one.labels.tolist() == [UNASSIGNED]
    named = cluster_all(Faces(["x"], np.eye(1, 8, dtype=np.float32), ["p"]),
                        Decisions(named={"x": "me"}), Params(0.9))  # fmt: skip
    assert named.person("x") == "me" and named.label("x") == 0
