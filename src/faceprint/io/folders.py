"""Walking folders of photos safely: symlink loops, unreadable folders and non-regular
files are reported or skipped, never followed forever or opened.

Used by ``enroll --from-folders`` and ``eval identify`` (one sub-folder per person) and by
the photo-library indexer (every photo below some folders).
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from faceprint.errors import FaceprintError

#: File name endings taken for photos (the content decides the format when decoding).
PHOTO_SUFFIXES = frozenset(
    {".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff", ".gif", ".heic", ".heif",
     ".avif"}
)  # fmt: skip


@dataclass
class Walk:
    """Photos found, and the places that could not be read (path, reason)."""

    photos: list[Path] = field(default_factory=list)
    problems: list[tuple[str, str]] = field(default_factory=list)


def _entries(folder: Path, walk: Walk) -> list[os.DirEntry[str]]:
    try:
        with os.scandir(folder) as it:
            return sorted(it, key=lambda e: e.name)
    except OSError as exc:
        walk.problems.append((str(folder), f"cannot read folder ({exc.strerror or exc})"))
        return []


def _is_photo(entry: os.DirEntry[str], walk: Walk) -> bool:
    if Path(entry.name).suffix.lower() not in PHOTO_SUFFIXES:
        return False
    try:
        st = entry.stat()  # follows a symlink to its target
    except OSError as exc:
        walk.problems.append((entry.path, f"cannot read ({exc.strerror or exc})"))
        return False
    if not stat.S_ISREG(st.st_mode):
        walk.problems.append((entry.path, "not a regular file, skipped"))
        return False
    return True


def photos_below(roots: list[Path], *, recursive: bool = True) -> Walk:
    """Every photo file below ``roots`` (sorted, each once), following folder symlinks
    but never into a folder already visited."""
    walk = Walk()
    seen_dirs: set[tuple[int, int]] = set()
    seen_files: set[tuple[int, int]] = set()

    def visit(folder: Path) -> Iterator[Path]:
        try:
            st = folder.stat()
        except OSError as exc:
            walk.problems.append((str(folder), f"cannot read folder ({exc.strerror or exc})"))
            return
        key = (st.st_dev, st.st_ino)
        if key in seen_dirs:
            return  # a loop, or a folder reached twice
        seen_dirs.add(key)
        for entry in _entries(folder, walk):
            try:
                is_dir = entry.is_dir()
            except OSError:
                is_dir = False
            if is_dir:
                if recursive:
                    yield from visit(Path(entry.path))
            elif _is_photo(entry, walk):
                fst = entry.stat()
                if (fst.st_dev, fst.st_ino) not in seen_files:
                    seen_files.add((fst.st_dev, fst.st_ino))
                    yield Path(entry.path)

    for root in roots:
        if not root.is_dir():
            raise FaceprintError(f"{root}: not a folder of photos")
        walk.photos.extend(visit(root))
    return walk


def people_folders(root: Path) -> tuple[list[tuple[str, list[Path]]], list[tuple[str, str]]]:
    """``root/NAME/photo`` trees: (name, photos) per sub-folder with photos, and problems."""
    if not root.is_dir():
        raise FaceprintError(f"{root}: not a directory (expected one sub-folder per person)")
    walk = Walk()
    people = []
    for entry in _entries(root, walk):
        try:
            if not entry.is_dir():
                continue
        except OSError:
            continue
        found = photos_below([Path(entry.path)], recursive=False)
        walk.problems.extend(found.problems)
        if found.photos:
            people.append((entry.name, found.photos))
    if not people:
        raise FaceprintError(f"{root}: no sub-folders with photos (expected DIR/NAME/photo.jpg)")
    return people, walk.problems
