"""What every command shares: the parser (usage errors exit 1), option groups, checked
number types, output folders and the exit-code rule for batches of photos.

Exit codes (README): 0 done; 1 usage; 2 some photos of a batch failed; 3 unreadable image;
4 no face; 5 model file; 6 gallery; 7 spoof; 8 key files. A command given ONE photo exits
with that photo's own code; given several, with 2 when any failed.
"""

from __future__ import annotations

import argparse
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import NoReturn

import platformdirs

from faceprint.errors import FaceprintError

USAGE = 1
SOME_FAILED = 2
#: Most candidates a face may ask for.
MAX_TOP_K = 100


class UsageError(FaceprintError):
    """A command line that does not make sense (exit 1)."""

    exit_code = USAGE


class Parser(argparse.ArgumentParser):
    """argparse with usage errors raised (exit 1, one line), not printed with exit 2."""

    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{message} (see faceprint {self.prog.split(' ', 1)[-1]} --help)")


@dataclass(frozen=True)
class Parents:
    """Option groups shared by sub-commands (pass as ``parents=[...]``)."""

    common: argparse.ArgumentParser  # --gallery --collection --model-dir --detector --quiet
    thresholds: argparse.ArgumentParser  # --threshold --fmr


def default_gallery() -> Path:
    env = os.environ.get("FACEPRINT_GALLERY")
    return Path(env) if env else Path(platformdirs.user_data_dir("faceprint")) / "gallery.db"


def _number(text: str, kind: type[int] | type[float]) -> float:
    try:
        value = kind(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if isinstance(value, float) and not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"{text!r} is not a finite number")
    return value


def positive_int(text: str) -> int:
    value = int(_number(text, int))
    if value < 1 or value > 1_000_000:
        raise argparse.ArgumentTypeError(f"{text} must be a whole number from 1 to 1000000")
    return value


#: Largest per-photo upload a service may accept.
MAX_UPLOAD_BYTES = 1 << 30
_UNITS = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30}


def byte_size(text: str) -> int:
    """A size in bytes, optionally with a unit (``10M``, ``512k``, ``1G``): 1 KiB to 1 GiB."""
    raw = text.strip().lower().removesuffix("b").removesuffix("i")
    unit = raw[-1:] if raw[-1:] in ("k", "m", "g") else ""
    value = int(_number(raw[: len(raw) - len(unit)], int)) * _UNITS[unit]
    if not 1024 <= value <= MAX_UPLOAD_BYTES:
        raise argparse.ArgumentTypeError(f"{text} must be a size from 1K to 1G (bytes)")
    return value


def count(text: str) -> int:
    """A whole number stored in a 32-bit column (1 .. 2,000,000,000)."""
    value = int(_number(text, int))
    if not 1 <= value <= 2_000_000_000:
        raise argparse.ArgumentTypeError(f"{text} must be a whole number from 1 to 2000000000")
    return value


def at_least_zero(text: str) -> int:
    """A whole number from 0 to 1000000."""
    value = int(_number(text, int))
    if value < 0 or value > 1_000_000:
        raise argparse.ArgumentTypeError(f"{text} must be a whole number from 0 to 1000000")
    return value


def seed(text: str) -> int:
    """A random seed: a whole number from 0 to 2**32 - 1."""
    value = int(_number(text, int))
    if not 0 <= value < 2**32:
        raise argparse.ArgumentTypeError(f"{text} must be a whole number from 0 to {2**32 - 1}")
    return value


def top_k(text: str) -> int:
    value = int(_number(text, int))
    if not 1 <= value <= MAX_TOP_K:
        raise argparse.ArgumentTypeError(f"{text} must be from 1 to {MAX_TOP_K}")
    return value


def unit_float(text: str) -> float:
    value = _number(text, float)
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"{text} must be between 0 and 1")
    return value


def rate(text: str) -> float:
    value = _number(text, float)
    if not 0.0 < value < 1.0:
        raise argparse.ArgumentTypeError(f"{text} must be a rate between 0 and 1, e.g. 1e-3")
    return value


def similarity(text: str) -> float:
    value = _number(text, float)
    if not -1.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"{text} is not a cosine similarity in [-1, 1]")
    return value


def base_parser() -> tuple[argparse.ArgumentParser, Parents]:
    parser = Parser(
        prog="faceprint", description="Offline face recognition: enroll, identify, verify."
    )
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--gallery", type=Path, default=default_gallery(),
        help="gallery file (default: $FACEPRINT_GALLERY or the user data dir)",
    )  # fmt: skip
    common.add_argument(
        "--collection", default="default", help="collection inside the gallery (default)"
    )
    common.add_argument(
        "--model-dir", default=None,
        help="directories with model files, ':'-separated (default: $FACEPRINT_MODEL_DIR)",
    )  # fmt: skip
    common.add_argument(
        "--detector", choices=["mmod", "yunet"], default=None,
        help="face detector (default: $FACEPRINT_DETECTOR, else yunet when its model file "
        "is available, else mmod)",
    )  # fmt: skip
    common.add_argument("--quiet", "-q", action="store_true", help="no progress bar")
    thresholds = argparse.ArgumentParser(add_help=False)
    thresholds.add_argument(
        "--threshold", type=similarity, default=None,
        help="cosine similarity threshold (overrides --fmr)",
    )  # fmt: skip
    thresholds.add_argument(
        "--fmr", type=rate, default=None,
        help="target false-match rate, e.g. 1e-4 (calibrated points, or interpolated between)",
    )  # fmt: skip
    return parser, Parents(common, thresholds)


def out_dir(path: Path) -> Path:
    """An output folder, made if needed; a clear error when it cannot be."""
    if path.exists() and not path.is_dir():
        raise UsageError(f"{path}: exists and is not a folder")
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise FaceprintError(f"{path}: cannot create the folder ({exc.strerror or exc})") from None
    if not os.access(path, os.W_OK | os.X_OK):
        raise FaceprintError(f"{path}: the folder is not writable")
    return path


def batch_exit(failures: list[FaceprintError], photos: int) -> int:
    """0, the one photo's own code, or 2 when some of several photos failed."""
    if not failures:
        return 0
    if photos == 1:
        return failures[0].exit_code
    return SOME_FAILED
