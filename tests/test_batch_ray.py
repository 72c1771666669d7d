"""Batch enrollment of a folder-per-person tree: in-process and on a local Ray cluster."""

from __future__ import annotations

import csv
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from faceprint.cli.main import main
from faceprint.gallery import open_store

from .conftest import FACES

IDENTITIES = Path(__file__).parent / "data" / "identities.csv"
#: Photos per person in the tree (all 14 people; kept small for 2 cores).
PER_PERSON = 2


@pytest.fixture(scope="session")
def ray_cluster() -> Iterator[None]:
    ray = pytest.importorskip("ray", reason="Ray is in the 'scale' extra")
    ray.init(
        num_cpus=2,
        include_dashboard=False,
        object_store_memory=80 * 1024 * 1024,
        log_to_driver=False,
    )
    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def tree(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, int]]:
    """people/NAME/imgN.jpg (symlinks into ../shared/faces) and one unreadable photo."""
    root = tmp_path_factory.mktemp("people")
    by_person: dict[str, list[str]] = defaultdict(list)
    with IDENTITIES.open() as fh:
        for row in csv.DictReader(line for line in fh if not line.startswith("#")):
            by_person[row["person"]].append(row["file"])
    counts = {}
    for person, files in sorted(by_person.items()):
        (root / person).mkdir()
        for name in files[:PER_PERSON]:
            (root / person / name).symlink_to(FACES / name)
        counts[person] = len(files[:PER_PERSON])
    (root / "elon_musk" / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    return root, counts


def _by_hash(path: Path) -> dict[str, tuple[str, np.ndarray]]:
    store = open_store(path, read_only=True)
    try:
        return {t.image_sha256 or "": (t.name, t.embedding) for t in store.templates()}
    finally:
        store.close()


def _counts(path: Path) -> dict[str, int]:
    store = open_store(path, read_only=True)
    try:
        return {p.name: p.templates for p in store.people()}
    finally:
        store.close()


@pytest.fixture(scope="module")
def local_gallery(
    tree: tuple[Path, dict[str, int]], tmp_path_factory: pytest.TempPathFactory
) -> Path:
    root, _ = tree
    gallery = tmp_path_factory.mktemp("local") / "g.db"
    # The broken photo is reported (exit code 2); everything else is enrolled.
    assert main(["enroll", "--from-folders", str(root), "--gallery", str(gallery), "-q"]) == 2
    return gallery


def test_local_enrolls_everyone_and_resumes(
    tree: tuple[Path, dict[str, int]], local_gallery: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root, counts = tree
    assert _counts(local_gallery) == counts
    before = _by_hash(local_gallery)
    capsys.readouterr()
    assert main(["enroll", "--from-folders", str(root), "--gallery", str(local_gallery), "-q"]) == 2
    out, err = capsys.readouterr()
    assert f"{sum(counts.values())} photos already enrolled" in out
    assert "enrolled " not in out and "broken.jpg" in err
    assert _by_hash(local_gallery).keys() == before.keys()


def test_ray_matches_local_and_resumes(
    ray_cluster: None,
    tree: tuple[Path, dict[str, int]],
    local_gallery: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    root, counts = tree
    gallery = tmp_path / "ray.db"
    args = ["enroll", "--from-folders", str(root), "--gallery", str(gallery), "-q"]
    assert main([*args, "--ray", "--batch-size", "4"]) == 2
    out, err = capsys.readouterr()
    assert "broken.jpg" in err and "1 of" in err
    assert _counts(gallery) == counts
    ray_templates, local_templates = _by_hash(gallery), _by_hash(local_gallery)
    assert ray_templates.keys() == local_templates.keys()
    for digest, (name, emb) in ray_templates.items():
        assert local_templates[digest][0] == name
        np.testing.assert_allclose(emb, local_templates[digest][1], atol=1e-4)
    # Rerun: nothing new (the broken photo is reported again).
    assert main([*args, "--ray"]) == 2
    out, _ = capsys.readouterr()
    assert "enrolled " not in out and f"{sum(counts.values())} photos already enrolled" in out
    assert _by_hash(gallery).keys() == ray_templates.keys()


def test_ray_bad_batch_size(tree: tuple[Path, dict[str, int]], tmp_path: Path) -> None:
    root, _ = tree
    gallery = tmp_path / "g.db"
    args = ["enroll", "--from-folders", str(root), "--gallery", str(gallery), "--ray"]
    assert main([*args, "--batch-size", "0"]) == 1
    assert not gallery.exists() or _counts(gallery) == {}


def test_two_concurrent_runs_over_one_tree_store_each_photo_once(
    tree: tuple[Path, dict[str, int]], tmp_path: Path
) -> None:
    """Two enroll --from-folders processes at once: the check and the insert are one
    transaction, so every photo is stored once (it was 107 templates for 60 photos)."""
    import subprocess
    import sys

    root, counts = tree
    gallery = tmp_path / "g.db"
    cmd = [sys.executable, "-m", "faceprint.cli.main", "enroll", "--from-folders", str(root),
           "--gallery", str(gallery), "-q"]  # fmt: skip
    runs = [subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE) for _ in range(2)]
    for run in runs:
        _, err = run.communicate(timeout=600)
        assert run.returncode == 2, err.decode()  # 2: the broken photo
    assert _counts(gallery) == counts
    assert len(_by_hash(gallery)) == sum(counts.values())


def test_enroll_without_ray_says_how_to_get_it(
    tree: tuple[Path, dict[str, int]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    import sys

    monkeypatch.setitem(sys.modules, "ray", None)
    root, _ = tree
    args = ["enroll", "--from-folders", str(root), "--gallery", str(tmp_path / "g.db"), "--ray"]
    assert main(args) == 1
    assert "pip install 'faceprint[scale]'" in capsys.readouterr().err
