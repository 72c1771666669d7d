"""Every ``faceprint`` command over the hostile corpus, as a user runs it (a subprocess under
a timeout): no traceback, no hang, the exit code the README documents, the reason on
stderr, an enrolled gallery whose content (people, template bytes) never changes, and files
that are not galleries (another program's SQLite file, an empty file, ...) byte-identical
afterwards. The runs are tests/hostile_runs.py's registry (tests/hostile_galleries.py,
hostile_inputs.py, hostile_places.py); the image corpus is tests/hostile.py's.
"""

from __future__ import annotations

import json
import os
import re
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from faceprint.cli.main import build_parser, main

from . import hostile, hostile_runs
from .conftest import FACES, SHARED
from .hostile_inputs import tiny_video
from .hostile_runs import Kit, Run
from .test_io_hostile import cases_of

#: Sub-commands of other front ends whose runs live elsewhere (none yet).
ELSEWHERE: frozenset[str] = frozenset()


def _restore_permissions(root: Path) -> None:
    """Make every chmod-ed folder and file of the corpus removable again."""
    for folder, dirs, files in os.walk(root):
        for name in dirs + files:
            path = Path(folder) / name
            if not path.is_symlink():
                path.chmod(0o700)


@pytest.fixture(scope="module")
def kit(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Kit]:
    root = tmp_path_factory.mktemp("hostile-cli")
    gallery = root / "reference.db"
    for name, photos in {"mark": ["img13.jpg"], "angelina": ["img1.jpg", "img2.jpg"]}.items():
        argv = ["enroll", name, *(str(FACES / p) for p in photos), "--gallery", str(gallery)]
        assert main([*argv, "-q"]) == 0
    images_dir = root / "images"
    images = {c.name: c for cat in hostile.categories() for c in cases_of(cat, images_dir)}
    keys = enc = None
    try:
        from faceprint.privacy import create_keys, encrypt_gallery
    except ImportError:
        pass
    else:
        keys, enc = root / "keys", root / "reference.enc"
        create_keys(keys)
        encrypt_gallery(gallery, keys, enc)
    models = [SHARED / "models" / "minifasnet", SHARED / "models" / "fer"]
    commands = frozenset(hostile_runs.commands(build_parser()))
    yield Kit(
        root / "runs", gallery, FACES, images, keys, enc,
        ":".join(str(m) for m in models if m.is_dir()), tiny_video(root / "tiny.avi"), commands,
    )  # fmt: skip
    _restore_permissions(root)


_built: dict[str, list[Run]] = {}


def runs_of(kit: Kit, category: str) -> list[Run]:
    if category not in _built:
        _built[category] = hostile_runs.build(kit, {category})
    return _built[category]


@pytest.fixture(scope="module")
def env(kit: Kit) -> dict[str, str]:
    """The environment of every run: the test's model cache, and a default gallery that
    must never be created (every run names its gallery)."""
    return {**os.environ, "FACEPRINT_GALLERY": str(kit.dir / "default-gallery.db")}


_seconds: dict[str, float] = {}


def check(run: Run, kit: Kit, env: dict[str, str], reference: object) -> list[str]:
    before = hostile_runs.files_of(run.untouched)
    out = hostile_runs.execute(run, env, kit.dir)
    _seconds[run.name] = out.seconds
    where = f"{run.name} ({' '.join(run.argv)[:300]})"
    if out.code is None:
        return [f"{where}: hung (killed after {run.timeout:.0f} s)"]
    problems = []
    if "Traceback" in out.stderr:
        problems.append(f"{where}: traceback:\n{hostile_runs.stripped(out.stderr, 1500)}")
    elif out.code != run.expect:
        problems.append(f"{where}: exit {out.code}, expected {run.expect}: "
                        f"{hostile_runs.stripped(out.stderr)}")  # fmt: skip
    elif run.match and not re.search(run.match, out.stderr, re.IGNORECASE):
        problems.append(f"{where}: stderr lacks {run.match!r}: {hostile_runs.stripped(out.stderr)}")
    if run.report is not None and out.code is not None:
        problems += _check_report(where, run.report, out.stdout)
    after = hostile_runs.files_of(run.untouched)
    problems += [f"{where}: changed {p}" for p in before if before[p] != after[p]]
    if hostile_runs.fingerprint(kit.gallery) != reference:
        problems.append(f"{where}: the reference gallery's content changed")
    return problems


def _check_report(where: str, errors: tuple[bool, ...], stdout: str) -> list[str]:
    try:
        report = json.loads(stdout)
    except ValueError:
        return [f"{where}: --json output is not JSON: {stdout[:300]}"]
    if not isinstance(report, list) or len(report) != len(errors):
        return [f"{where}: {len(report)} entries in --json, expected {len(errors)}"]
    return [
        f"{where}: {entry.get('photo')}: {'no error' if want else entry.get('error')}"
        for entry, want in zip(report, errors, strict=True)
        if ("error" in entry) != want
    ]


@pytest.mark.parametrize("category", hostile_runs.categories())
def test_hostile_runs(kit: Kit, env: dict[str, str], category: str) -> None:
    runs = [r for r in runs_of(kit, category) if not r.skip]
    if not runs:
        pytest.skip("; ".join({r.skip for r in runs_of(kit, category)}))
    reference = hostile_runs.fingerprint(kit.gallery)
    start = time.perf_counter()
    with ThreadPoolExecutor(2) as pool:
        found = list(pool.map(lambda r: check(r, kit, env, reference), runs))
    slow = sorted(((_seconds.get(r.name, 0.0), r.name) for r in runs), reverse=True)[:3]
    print(
        f"{category}: {len(runs)} runs in {time.perf_counter() - start:.1f} s; slowest "
        + ", ".join(f"{n} {t:.1f} s" for t, n in slow)
    )
    problems = [p for some in found for p in some]
    assert not problems, f"{len(problems)} of {len(runs)} runs:\n" + "\n".join(problems)


def test_every_command_is_covered(kit: Kit) -> None:
    """Each sub-command faceprint has is run by some hostile run (new ones too)."""
    covered = {r.command for c in hostile_runs.categories() for r in runs_of(kit, c) if not r.skip}
    missing = kit.commands - covered - ELSEWHERE
    assert not missing, f"sub-commands without a hostile run: {sorted(missing)}"


def test_the_corpus_is_large(kit: Kit) -> None:
    runs = [r for c in hostile_runs.categories() for r in runs_of(kit, c) if not r.skip]
    assert len(runs) >= 200 and len({r.category for r in runs}) >= 9
    assert {r.expect for r in runs} >= {0, 1, 2, 3, 5, 6, 8}
