"""Hostile command lines: each a :class:`Run` of ``faceprint ...`` with the exit code the
README documents for it, built at test time (nothing binary is committed).

Builders register under a category with :func:`run_builder` and get a :class:`Kit`: a
directory to write into, an enrolled reference gallery, the image corpus of
``tests/hostile.py``, and key files when the privacy extra is installed::

    @run_builder("numbers")
    def top_k(kit: Kit) -> list[Run]:
        return [Run("top_k_zero", ("identify", photo, "--top-k", "0", *kit.ref), USAGE,
                    "from 1 to 100")]

This registry is separate from the image corpus's (which tests/test_io_hostile.py runs
through decoding): these are whole command lines, not inputs of one kind. The modules that
register runs are :data:`MODULES`. Plain Python, no pytest inside.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

from tests.hostile import Case

#: Exit codes (README "Command line"; src/faceprint/cli/args.py).
OK, USAGE, SOME, IMAGE, NO_FACE, MODEL, GALLERY, SPOOF, KEYS = range(9)
#: Modules whose import registers the runs.
MODULES = ("tests.hostile_galleries", "tests.hostile_inputs", "tests.hostile_places")
#: Removes root's override of permission bits (CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH) from
#: the process it starts, so a chmod 000 file is unreadable to a test running as root.
_UNPRIVILEGED = (
    "import ctypes, os, sys\n"
    "libc = ctypes.CDLL(None, use_errno=True)\n"
    "for cap in (1, 2):\n"
    "    if libc.prctl(24, cap, 0, 0, 0) != 0:  # PR_CAPBSET_DROP\n"
    "        raise OSError(ctypes.get_errno(), 'prctl(PR_CAPBSET_DROP)')\n"
    "os.execv(sys.argv[1], sys.argv[1:])\n"
)


@dataclass(frozen=True)
class Run:
    """One command line and what it must do."""

    name: str
    argv: tuple[str, ...]  # the arguments after ``faceprint``
    expect: int  # the exit code
    match: str = ""  # a regex stderr must contain (case-insensitive)
    category: str = ""
    env: tuple[tuple[str, str], ...] = ()  # extra environment
    untouched: tuple[Path, ...] = ()  # files byte-identical afterwards
    unprivileged: bool = False  # holds without root's override of permission bits
    timeout: float = 90.0
    skip: str = ""  # why this run cannot be made here ("" = usable)
    #: With ``--json`` over several photos: whether each photo's entry is an error.
    report: tuple[bool, ...] | None = None

    @property
    def command(self) -> str:
        """The sub-command (``eval pairs`` for nested ones)."""
        words = [a for a in self.argv[:2] if not a.startswith("-")]
        if not words:
            return ""
        return " ".join(words[:2]) if words[:1] in (["eval"],) else words[0]


@dataclass(frozen=True)
class Kit:
    """What run builders get."""

    dir: Path  # where to write (a sub-folder per category)
    gallery: Path  # the reference gallery: people enrolled, must never change
    faces: Path  # real photos (../shared/faces)
    images: dict[str, Case]  # the image corpus (tests/hostile.py) by name
    keys: Path | None = None  # a key set (None without the privacy extra)
    enc: Path | None = None  # the reference gallery encrypted with ``keys``
    attribute_models: str = ""  # --model-dir with the liveness and expression models
    video: Path | None = None  # a short, valid video without faces
    commands: frozenset[str] = frozenset()  # every sub-command faceprint has
    extra: dict[str, object] = field(default_factory=dict)

    @property
    def ref(self) -> tuple[str, str]:
        return ("--gallery", str(self.gallery))

    def photo(self, name: str = "img13.jpg") -> str:
        return str(self.faces / name)

    def image(self, name: str) -> str:
        return str(self.images[name].path)

    def copy(self, name: str) -> Path:
        """A private copy of the reference gallery, for a run that may write."""
        target = self.dir / f"{name}.db"
        shutil.copy(self.gallery, target)
        target.chmod(0o600)
        return target


RunBuilder = Callable[[Kit], list[Run]]
REGISTRY: dict[str, list[RunBuilder]] = {}


def run_builder(category: str) -> Callable[[RunBuilder], RunBuilder]:
    def register(fn: RunBuilder) -> RunBuilder:
        REGISTRY.setdefault(category, []).append(fn)
        return fn

    return register


def categories() -> list[str]:
    for module in MODULES:
        importlib.import_module(module)
    return sorted(REGISTRY)


def build(kit: Kit, chosen: Iterable[str]) -> list[Run]:
    """Every run of the chosen categories (each category writes in its own folder)."""
    categories()
    runs: list[Run] = []
    for category in sorted(set(chosen)):
        sub = replace(kit, dir=kit.dir / category)
        sub.dir.mkdir(parents=True, exist_ok=True)
        for fn in REGISTRY[category]:
            runs += [replace(r, category=category) for r in fn(sub)]
    names = [r.name for r in runs]
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise ValueError(f"hostile runs named twice: {twice}")
    return runs


def commands(parser: argparse.ArgumentParser) -> set[str]:
    """Every sub-command of the parser: ``enroll``, ``eval pairs``, ..."""
    found: set[str] = set()
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                nested = commands(sub)
                found |= {f"{name} {n}" for n in nested} if nested else {name}
    return found


@dataclass(frozen=True)
class Outcome:
    code: int | None  # None: killed at the timeout
    stdout: str
    stderr: str
    seconds: float


def execute(run: Run, env: dict[str, str], cwd: Path) -> Outcome:
    """Run ``python -m faceprint.cli.main`` with the run's arguments, under its timeout."""
    cmd = [sys.executable, "-m", "faceprint.cli.main", *run.argv]
    if run.unprivileged and os.geteuid() == 0:
        cmd = [sys.executable, "-c", _UNPRIVILEGED, *cmd]
    start = time.perf_counter()
    with subprocess.Popen(
        cmd, cwd=cwd, env={**env, **dict(run.env)}, stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True,
    ) as proc:  # fmt: skip
        try:
            out, err = proc.communicate(timeout=run.timeout)
            code: int | None = proc.returncode
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, 9)  # the command and anything it started
            out, err = proc.communicate()
            code = None
    decode = lambda b: b.decode("utf-8", "backslashreplace")  # noqa: E731
    return Outcome(code, decode(out), decode(err), time.perf_counter() - start)


def fingerprint(path: Path, collection: str = "default") -> tuple[object, ...]:
    """A gallery's content as faceprint reads it: people with their metadata, and every
    template's id, owner, bytes, pack, photo hash and quality."""
    from faceprint.gallery import open_store

    store = open_store(path, collection=collection, read_only=True)
    try:
        people = tuple(
            (p.name, p.templates, repr(sorted(p.metadata.items()))) for p in store.people()
        )
        templates = tuple(
            (t.id, t.name, t.embedding.tobytes(), t.pack, t.image_sha256, t.quality)
            for t in store.templates()
        )
    finally:
        store.close()
    return people, templates


def stripped(text: str, limit: int = 600) -> str:
    return text if len(text) <= limit else "..." + text[-limit:]


def files_of(paths: Sequence[Path]) -> dict[Path, bytes | str]:
    """The bytes of each file (a folder or FIFO: its kind), to compare after a run."""
    out: dict[Path, bytes | str] = {}
    for p in paths:
        if p.is_file() and not p.is_symlink():
            out[p] = p.read_bytes()
        else:
            out[p] = "dir" if p.is_dir() else "other" if p.exists() else "missing"
    return out
