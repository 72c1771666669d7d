"""The groups file of ``faceprint eval --groups``: labels per photo, one column per attribute.

A CSV with a header: the first column names the photo (relative to ``--root``, as in a
pairs file), each further column is an attribute the user labels (skin tone, age band,
sex, camera, ...), e.g.::

    file,sex,age
    alice/1.jpg,female,30-44
    bob/2.jpg,male,45+

Lines starting with ``#`` are comments. Every cell must be filled (write ``unknown`` when
a label is not known: it becomes a group of its own); a photo may be listed once. Photos
of the evaluation without a row are left out of the slices (and counted); rows for photos
not in the evaluation are ignored (and counted).
"""

from __future__ import annotations

import csv
import os
from dataclasses import dataclass
from pathlib import Path

from faceprint.errors import FaceprintError

#: Shown in messages: what a groups file looks like.
EXAMPLE = "file,sex,age (then one row per photo, e.g. alice/1.jpg,female,30-44)"
#: At most this many names are listed in one message.
SHOWN = 5


@dataclass(frozen=True)
class Labels:
    """The groups of each photo: ``by_file[path]`` holds one label per attribute."""

    source: str
    attributes: tuple[str, ...]
    by_file: dict[Path, tuple[str, ...]]

    def of(self, path: Path) -> tuple[str, ...] | None:
        return self.by_file.get(key(path))


def key(path: Path) -> Path:
    """The form paths are compared in (``a/./b.jpg`` and ``a/b.jpg`` are one photo)."""
    return Path(os.path.normpath(path))


def _names(items: list[str]) -> str:
    more = f" (and {len(items) - SHOWN} more)" if len(items) > SHOWN else ""
    return ", ".join(items[:SHOWN]) + more


def _read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise FaceprintError(f"{path}: groups file not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise FaceprintError(f"{path}: cannot read the groups file ({exc})") from None


def _header(path: Path, root: Path, header: list[str]) -> tuple[str, ...]:
    cells = [c.strip() for c in header]
    if len(cells) < 2:
        raise FaceprintError(
            f"{path}: the first line must name the file column and at least one attribute, "
            f"like {EXAMPLE}; got {','.join(cells)!r}"
        )
    if (root / cells[0]).is_file():
        raise FaceprintError(
            f"{path}: the first line names a photo ({cells[0]}); it must be a header naming "
            f"the attributes, like {EXAMPLE}"
        )
    attributes = cells[1:]
    if any(not a for a in attributes):
        raise FaceprintError(f"{path}, line 1: an attribute column has no name")
    dupes = sorted({a for a in attributes if attributes.count(a) > 1})
    if dupes:
        raise FaceprintError(f"{path}, line 1: attribute named twice: {', '.join(dupes)}")
    return tuple(attributes)


def read_groups(root: Path, path: Path) -> Labels:
    """Read and check a groups file (every problem is a FaceprintError naming the line)."""
    lines = [
        (n, line)
        for n, line in enumerate(_read_text(path).splitlines(), start=1)
        if line.strip() and not line.lstrip().startswith("#")
    ]
    if not lines:
        raise FaceprintError(f"{path}: empty groups file (expected a header like {EXAMPLE})")
    parsed = [
        (n, row) for (n, _), row in zip(lines, csv.reader(ln for _, ln in lines), strict=True)
    ]
    _, header = parsed[0]
    attributes = _header(path, root, header)
    if len(parsed) < 2:
        raise FaceprintError(f"{path}: no photos after the header line")
    by_file: dict[Path, tuple[str, ...]] = {}
    first_line: dict[Path, int] = {}
    missing: list[str] = []
    width = 1 + len(attributes)
    for lineno, row in parsed[1:]:
        cells = [c.strip() for c in row]
        if len(cells) != width:
            names = ",".join(("file", *attributes))
            raise FaceprintError(
                f"{path}, line {lineno}: expected {width} values ({names}), got {len(cells)}"
            )
        if not cells[0]:
            raise FaceprintError(f"{path}, line {lineno}: no file named")
        empty = [a for a, v in zip(attributes, cells[1:], strict=True) if not v]
        if empty:
            raise FaceprintError(
                f"{path}, line {lineno}: no label for {', '.join(empty)} ({cells[0]}); write "
                f"a label such as 'unknown' (it becomes a group of its own) or leave the "
                f"photo out"
            )
        photo = key(root / cells[0])
        if photo in first_line:
            raise FaceprintError(
                f"{path}, line {lineno}: {cells[0]} is already listed on line "
                f"{first_line[photo]}; list each photo once"
            )
        first_line[photo] = lineno
        if not photo.is_file():
            missing.append(cells[0])
        by_file[photo] = tuple(cells[1:])
    if missing:
        raise FaceprintError(
            f"{path}: {len(missing)} photo(s) named in the groups file do not exist under "
            f"{root}: {_names(missing)}"
        )
    return Labels(str(path), attributes, by_file)


def coverage(labels: Labels, images: list[Path], root: Path) -> dict[str, object]:
    """What the groups file covers of an evaluation's images, for the report."""
    from faceprint.eval.verification import relative

    used = {key(p) for p in images}
    unlabelled = sorted(relative(p, root) for p in images if labels.of(p) is None)
    return {
        "file": labels.source,
        "attributes": list(labels.attributes),
        "labelled images": len(used) - len(unlabelled),
        "unlabelled images": unlabelled,
        "rows not in this evaluation": sum(1 for p in labels.by_file if p not in used),
    }
