"""The limits every image decode obeys, from the environment, and the decode slots.

* ``FACEPRINT_DECODE_BUDGET``: the most memory one decode may need, in bytes or with a unit
  (``400MB``, ``1.5GB``, ``512MiB``); default 400 MB. An image whose decode would need more is
  refused before any pixel is decoded (a large JPEG is first tried at 1/2, 1/4, 1/8 size).
* ``FACEPRINT_MAX_PIXELS``: the largest image accepted, in pixels of the file (default 100 MP).
* ``FACEPRINT_MAX_FILE_BYTES``: the largest file read (default: the decode budget, since the
  encoded bytes are held in memory during the decode and count against the budget).
* ``FACEPRINT_MAX_DECODES``: how many decodes may run at once in the process (default 2), so
  that N simultaneous hostile requests cannot take N budgets.

The values are read on every call (cheap), except the number of decode slots, which is read
once, when the first image is decoded. A malformed value is a FaceprintError naming it.
"""

from __future__ import annotations

import os
import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from faceprint.errors import FaceprintError

DEFAULT_DECODE_BUDGET = 400_000_000
DEFAULT_MAX_PIXELS = 100_000_000
DEFAULT_MAX_DECODES = 2
#: A smaller budget could not decode even a small photo; it is refused as a mistake.
MIN_DECODE_BUDGET = 1_000_000

_UNITS = {
    "": 1, "b": 1,
    "kb": 10**3, "mb": 10**6, "gb": 10**9, "tb": 10**12,
    "k": 10**3, "m": 10**6, "g": 10**9, "t": 10**12,
    "kib": 2**10, "mib": 2**20, "gib": 2**30, "tib": 2**40,
}  # fmt: skip
_SIZE = re.compile(r"\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*")


def parse_size(text: str, name: str) -> int:
    """``"400MB"`` -> 400_000_000 (KB/MB/GB are powers of 1000, KiB/MiB/GiB of 1024)."""
    match = _SIZE.fullmatch(text)
    unit = match.group(2).lower() if match else ""
    if match is None or unit not in _UNITS:
        raise FaceprintError(
            f"{name}={text!r} is not a size: give bytes or a number with a unit, "
            "e.g. 400MB, 1.5GB or 512MiB"
        )
    return int(float(match.group(1)) * _UNITS[unit])


def _positive_int(name: str, default: int) -> int:
    text = os.environ.get(name, "").strip()
    if not text:
        return default
    digits = text.replace("_", "")
    if not digits.isdigit() or int(digits) < 1:
        raise FaceprintError(f"{name}={text!r} must be a whole number of at least 1")
    return int(digits)


def decode_budget() -> int:
    """The memory one decode may use, in bytes (``FACEPRINT_DECODE_BUDGET``)."""
    text = os.environ.get("FACEPRINT_DECODE_BUDGET", "").strip()
    if not text:
        return DEFAULT_DECODE_BUDGET
    value = parse_size(text, "FACEPRINT_DECODE_BUDGET")
    if value < MIN_DECODE_BUDGET:
        raise FaceprintError(
            f"FACEPRINT_DECODE_BUDGET={text!r} is too small to decode any photo; "
            f"give at least {human_bytes(MIN_DECODE_BUDGET)}"
        )
    return value


def max_pixels() -> int:
    """The largest image accepted, in pixels (``FACEPRINT_MAX_PIXELS``)."""
    return _positive_int("FACEPRINT_MAX_PIXELS", DEFAULT_MAX_PIXELS)


def max_file_bytes() -> int:
    """The largest file read for decoding (``FACEPRINT_MAX_FILE_BYTES``, else the budget)."""
    text = os.environ.get("FACEPRINT_MAX_FILE_BYTES", "").strip()
    if not text:
        return decode_budget()
    value = parse_size(text, "FACEPRINT_MAX_FILE_BYTES")
    if value < 1:
        raise FaceprintError(f"FACEPRINT_MAX_FILE_BYTES={text!r} must be at least 1 byte")
    return value


def max_decodes() -> int:
    """How many decodes may run at once (``FACEPRINT_MAX_DECODES``)."""
    return _positive_int("FACEPRINT_MAX_DECODES", DEFAULT_MAX_DECODES)


def human_bytes(n: int | float) -> str:
    """1234567 -> '1.2 MB' (powers of 1000, as the limits are given)."""
    for unit, size in (("GB", 10**9), ("MB", 10**6), ("KB", 10**3)):
        if n >= size:
            value = n / size
            whole = value >= 100 or float(value).is_integer()
            return f"{value:.0f} {unit}" if whole else f"{value:.1f} {unit}"
    return f"{int(n)} byte{'s' if int(n) != 1 else ''}"


def human_pixels(n: int) -> str:
    """100_000_000 -> '100 MP'; small counts stay in pixels ('1 pixel', '4,096 pixels')."""
    if n >= 1_000_000:
        value = n / 1e6
        return f"{value:.0f} MP" if value >= 10 or value.is_integer() else f"{value:.1f} MP"
    return f"{n:,} pixel{'s' if n != 1 else ''}"


_slots_lock = threading.Lock()
_slots: threading.BoundedSemaphore | None = None
_active = 0


def _semaphore() -> threading.BoundedSemaphore:
    global _slots
    with _slots_lock:
        if _slots is None:
            _slots = threading.BoundedSemaphore(max_decodes())
        return _slots


@contextmanager
def decode_slot() -> Iterator[None]:
    """Hold one of the process's ``FACEPRINT_MAX_DECODES`` decode slots (waits for one)."""
    global _active
    slots = _semaphore()
    with slots:
        with _slots_lock:
            _active += 1
        try:
            yield
        finally:
            with _slots_lock:
                _active -= 1


def active_decodes() -> int:
    """How many decodes hold a slot right now."""
    with _slots_lock:
        return _active
