"""Notes for the person running faceprint (a fallback taken, a file ignored), through the
standard ``logging`` module: the library never prints; the ``faceprint`` command shows
them on stderr as ``faceprint: note: ...``; an application decides for itself."""

from __future__ import annotations

import logging

logger = logging.getLogger("faceprint")


def note(message: str) -> None:
    """Tell the user something they should know but that is not an error."""
    logger.warning(message)


class _Stderr(logging.StreamHandler):  # type: ignore[type-arg,unused-ignore]
    """Writes to whatever ``sys.stderr`` is at the time (tests capture it)."""

    def __init__(self) -> None:
        super().__init__()
        self.setFormatter(logging.Formatter("faceprint: note: %(message)s"))

    def emit(self, record: logging.LogRecord) -> None:
        import sys

        self.stream = sys.stderr
        super().emit(record)


def show_notes_on_stderr() -> None:
    """What the ``faceprint`` command does: notes as ``faceprint: note: ...`` lines."""
    if not any(isinstance(h, _Stderr) for h in logger.handlers):
        logger.addHandler(_Stderr())
        logger.propagate = False
