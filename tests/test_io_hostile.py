"""The hostile-input corpus (tests/hostile.py) through decode/load_image and the command line.

Every input gives exactly its documented outcome: an upright RGB image of the expected size
and colour, or an ImageError with the expected reason; never another exception, a warning
on stderr, a traceback or a hang; and ``faceprint identify`` leaves the gallery's content
as it was.
"""

from __future__ import annotations

import json
import os
import random
import re
import sqlite3
import subprocess
import sys
import threading
import time
import warnings
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
from PIL import Image as PILImage

from faceprint.cli.main import main
from faceprint.errors import ImageError
from faceprint.io import decode, load_image, max_decodes
from faceprint.io.limits import active_decodes

from . import hostile
from .conftest import FACES

CLI_TIMEOUT = 60
# faceprint silences Pillow's warnings with a filter installed when faceprint.io is first
# imported; pytest drops filters installed while it collects tests, so in this process they
# would show in pytest's summary. The guarantee itself is checked in a fresh process, as
# users run faceprint: test_no_warning_reaches_stderr and the command-line tests.
pytestmark = pytest.mark.filterwarnings("ignore::UserWarning:PIL")
#: Run a command without root's override of permission bits (for the chmod 000 file).
_UNPRIVILEGED = (
    "import ctypes, os, sys\n"
    "libc = ctypes.CDLL(None, use_errno=True)\n"
    "for cap in (1, 2):  # CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH\n"
    "    if libc.prctl(24, cap, 0, 0, 0) != 0:  # PR_CAPBSET_DROP\n"
    "        raise OSError(ctypes.get_errno(), 'prctl(PR_CAPBSET_DROP)')\n"
    "os.execv(sys.argv[1], sys.argv[1:])\n"
)


def unprivileged(cmd: Sequence[str]) -> list[str]:
    return [sys.executable, "-c", _UNPRIVILEGED, *cmd] if os.geteuid() == 0 else list(cmd)


@pytest.fixture(scope="session")
def corpus_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("hostile")


_built: dict[tuple[str, Path], list[hostile.Case]] = {}


def cases_of(category: str, root: Path) -> list[hostile.Case]:
    """The corpus of one category under ``root``, built once per root (another module's
    corpus may have its permissions changed when that module ends)."""
    if (category, root) not in _built:
        _built[category, root] = hostile.build(root, {category}, face_photo=FACES / "img13.jpg")
    return _built[category, root]


def check_decoded(case: hostile.Case, image: np.ndarray, scale: float) -> list[str]:
    problems = []
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        problems.append(f"{case.name}: not an RGB uint8 image: {image.dtype} {image.shape}")
    if case.size is not None and (image.shape[1], image.shape[0]) != case.size:
        problems.append(f"{case.name}: size {image.shape[1]}x{image.shape[0]}, not {case.size}")
    if case.colour is not None:
        mean = image.reshape(-1, 3).mean(axis=0)
        if np.abs(mean - np.array(case.colour)).max() > case.tolerance:
            problems.append(f"{case.name}: mean colour {mean.round(1)}, not {case.colour}")
    if scale != case.scale:
        problems.append(f"{case.name}: scale {scale}, not {case.scale}")
    return problems


def check_error(case: hostile.Case, message: str) -> list[str]:
    if case.ok:
        return [f"{case.name}: refused: {message}"]
    if not re.search(case.match, message, re.IGNORECASE):
        return [f"{case.name}: message {message!r} lacks {case.match!r}"]
    return []


def _in_unprivileged_process(case: hostile.Case) -> list[str]:
    code = (
        "import sys\nfrom faceprint.io import load_image\n"
        "try:\n    load_image(sys.argv[1])\nexcept Exception as exc:\n"
        "    print(type(exc).__name__, exc, sep='|')\n"
    )
    proc = subprocess.run(
        unprivileged([sys.executable, "-c", code, os.fspath(case.path)]),
        capture_output=True, text=True, timeout=CLI_TIMEOUT,
    )  # fmt: skip
    kind, _, message = proc.stdout.strip().partition("|")
    if kind != case.expect:
        return [f"{case.name}: {kind or 'ok'} ({proc.stdout} {proc.stderr}), not {case.expect}"]
    return check_error(case, message)


@pytest.mark.parametrize("category", hostile.categories())
def test_corpus_through_decode(corpus_dir: Path, category: str) -> None:
    problems: list[str] = []
    usable = [c for c in cases_of(category, corpus_dir) if not c.skip]
    for case in usable:
        if case.unprivileged and os.geteuid() == 0:
            problems += _in_unprivileged_process(case)
            continue
        try:
            result = decode(case.path)
        except ImageError as exc:
            problems += check_error(case, str(exc))
            continue
        if not case.ok:
            problems.append(f"{case.name}: decoded, but {case.expect} was expected")
            continue
        problems += check_decoded(case, result.image, result.scale)
        if not np.array_equal(load_image(case.path), result.image):
            problems.append(f"{case.name}: load_image differs from decode")
        if case.name == "png_xmp_2mb" and result.xmp is not None:
            problems.append(f"{case.name}: a {len(result.xmp)}-byte XMP packet was returned")
    assert usable and not problems, "\n".join(problems)


def test_corpus_is_large_and_varied(corpus_dir: Path) -> None:
    every = [c for cat in hostile.categories() for c in cases_of(cat, corpus_dir)]
    assert len([c for c in every if not c.skip]) >= 45
    assert {c.expect for c in every} == {"ok", "ImageError"}
    assert len({c.category for c in every}) >= 8


def test_no_warning_reaches_stderr(corpus_dir: Path) -> None:
    """Pillow's warnings on odd files (corrupt EXIF, bombs) never reach stderr."""
    paths = [
        os.fspath(c.path)
        for cat in hostile.categories()
        for c in cases_of(cat, corpus_dir)
        if not c.skip and c.cli and not c.unprivileged and c.name != "jpeg_real_100mp"
    ]
    code = (
        "import sys\nfrom faceprint.io import decode\nfrom faceprint.errors import ImageError\n"
        "for path in sys.argv[1:]:\n    try:\n        decode(path)\n"
        "    except ImageError:\n        pass\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code, *paths], capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0 and proc.stderr == "", proc.stderr


# ---- the command line ---------------------------------------------------------------------


@pytest.fixture(scope="session")
def gallery(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("gallery") / "g.db"
    assert main(["enroll", "mark", str(FACES / "img13.jpg"), "--gallery", str(path), "-q"]) == 0
    return path


def gallery_content(path: Path) -> str:
    """Every row of the gallery but its change counter (``generation``)."""
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as db:
        return "\n".join(line for line in db.iterdump() if "'generation'" not in line)


def identify(paths: Sequence[str | os.PathLike[str]], g: Path, *extra: str) -> tuple[int, str, str]:
    cmd = [sys.executable, "-m", "faceprint.cli.main", "identify", *(os.fspath(p) for p in paths)]
    proc = subprocess.run(
        unprivileged([*cmd, "--gallery", str(g), *extra]),
        capture_output=True, text=True, errors="backslashreplace",
        timeout=CLI_TIMEOUT * max(1, len(paths) // 10),
        stdin=subprocess.DEVNULL,
    )  # fmt: skip
    return proc.returncode, proc.stdout, proc.stderr


def check_cli(case: hostile.Case, g: Path) -> list[str]:
    try:
        code, _, err = identify([case.path], g)
    except subprocess.TimeoutExpired:
        return [f"{case.name}: faceprint identify hung (> {CLI_TIMEOUT} s)"]
    expected = ImageError.exit_code if not case.ok else 0 if case.faces else 4
    problems = []
    if "Traceback" in err or code != expected:
        problems.append(f"{case.name}: exit {code} (expected {expected}): {err[-800:]}")
    noise = [line for line in err.splitlines() if not line.startswith("faceprint: ")]
    if noise:
        problems.append(f"{case.name}: stray stderr lines {noise}")
    if not case.ok:
        problems += check_error(case, err)
    return problems


def check_cli_batch(cases: list[hostile.Case], g: Path) -> list[str]:
    """Inputs that decode, in one run (each loads the models): per photo, faces or none."""
    try:
        code, out, err = identify([c.path for c in cases], g, "--json", "-q")
    except subprocess.TimeoutExpired:
        return [f"faceprint identify hung on {[c.name for c in cases]}"]
    expected = 4 if any(c.faces == 0 for c in cases) else 0
    if "Traceback" in err or code != expected:
        return [f"batch of {len(cases)}: exit {code} (expected {expected}): {err[-800:]}"]
    report = json.loads(out)
    report = report if isinstance(report, list) else [report]
    return [
        f"{case.name}: {entry}"
        for case, entry in zip(cases, report, strict=True)
        if len(entry.get("faces", [])) != case.faces or "error" in entry
    ]


@pytest.mark.parametrize("category", hostile.categories())
def test_corpus_through_identify(corpus_dir: Path, gallery: Path, category: str) -> None:
    """Each refused input on its own (exit 3, the reason on stderr, nothing else there);
    the inputs that decode in one run."""
    before = gallery_content(gallery)
    usable = [c for c in cases_of(category, corpus_dir) if not c.skip and c.cli]
    refused = [c for c in usable if not c.ok]
    with ThreadPoolExecutor(2) as pool:
        found = pool.map(lambda case: check_cli(case, gallery), refused)
        problems = [problem for some in found for problem in some]
    decoded = [c for c in usable if c.ok]
    if decoded:
        problems += check_cli_batch(decoded, gallery)
    assert gallery_content(gallery) == before
    assert usable and not problems, "\n".join(problems)


def test_one_batch_with_every_input(corpus_dir: Path, gallery: Path) -> None:
    """A FIFO or a bomb among the photos does not stop (or hang) the others."""
    usable = [
        c
        for cat in hostile.categories()
        for c in cases_of(cat, corpus_dir)
        if not c.skip and c.cli and c.name != "jpeg_real_100mp"
    ]
    code, out, err = identify([c.path for c in usable], gallery, "--json", "-q")
    assert code == 2 and "Traceback" not in err, err[-2000:]
    report = json.loads(out)
    assert len(report) == len(usable)
    for case, entry in zip(usable, report, strict=True):
        assert ("error" in entry) == (not case.ok), (case.name, entry)


def test_identify_leaves_the_gallery_file_byte_identical(gallery: Path) -> None:
    before = gallery.read_bytes()
    code, _, _ = identify([FACES / "img10.jpg"], gallery)
    assert code in (0, 4) and gallery.read_bytes() == before


# ---- threads ------------------------------------------------------------------------------


def test_threads_keep_every_guard(corpus_dir: Path) -> None:
    """Hostile and normal decodes at once: every bomb is refused in every thread, normal
    results equal a single thread's, and Pillow's global limit and the warning filters
    are never touched."""
    bombs = {c.name: c for c in cases_of("bomb", corpus_dir)}
    files = {c.name: c for c in cases_of("filesystem", corpus_dir)}
    hostile_cases = [
        bombs[n]
        for n in ("png16_real_10000x10000", "png8_claims_50000x50000", "webp_claims_16384x16384")
    ] + [files[n] for n in ("fifo_named_jpg", "sparse_3gb", "symlink_loop")]
    normal = [FACES / n for n in ("img1.jpg", "img10.jpg", "img47.jpg", "img13.jpg")]
    normal.append(bombs["jpeg_real_100mp"].path)
    single = {p: decode(p) for p in normal}
    pil_limit, filters = PILImage.MAX_IMAGE_PIXELS, list(warnings.filters)
    jobs: list[hostile.Case | Path] = [*hostile_cases * 4, *normal * 2]
    random.Random(0).shuffle(jobs)
    seen: list[int] = []
    stop = threading.Event()

    def watch() -> None:
        while not stop.is_set():
            seen.append(active_decodes())
            time.sleep(0.002)

    def run(job: hostile.Case | Path) -> str:
        path = job.path if isinstance(job, hostile.Case) else job
        try:
            result = decode(path)
        except ImageError as exc:
            if isinstance(job, hostile.Case) and re.search(job.match, str(exc), re.I):
                return ""
            return f"{path}: {exc}"
        if isinstance(job, hostile.Case):
            return f"{job.name}: decoded in a thread"
        same = np.array_equal(result.image, single[path].image)
        return "" if same and result.scale == single[path].scale else f"{path}: differs"

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        with ThreadPoolExecutor(8) as pool:
            problems = [p for p in pool.map(run, jobs) if p]
    finally:
        stop.set()
        watcher.join()
    assert not problems, "\n".join(problems)
    assert pil_limit == PILImage.MAX_IMAGE_PIXELS
    assert list(warnings.filters) == filters
    assert max(seen) <= max_decodes()
