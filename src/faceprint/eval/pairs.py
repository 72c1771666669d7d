"""Pair lists for verification: LFW's ``pairs.txt`` and simple CSV files.

``pairs.txt`` (LFW View 2): a first line ``FOLDS N`` and then, for each fold, N matched
lines ``name n1 n2`` followed by N mismatched lines ``name1 n1 name2 n2``; images are
``ROOT/name/name_%04d.jpg``. The folds are LFW's own.

CSV: a header naming two file columns and a label column (e.g. ``file_x,file_y,Decision``
as in deepface's master.csv); labels Yes/No, 1/0, true/false, same/different. Paths are
relative to ROOT. Folds are assigned by :func:`faceprint.eval.metrics.assign_folds`.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

from faceprint.errors import FaceprintError, ImageError
from faceprint.eval.metrics import assign_folds

_TRUE = {"yes", "y", "1", "true", "t", "same", "match", "genuine", "mated"}
_FALSE = {"no", "n", "0", "false", "f", "different", "diff", "nonmatch", "impostor", "nonmated"}
#: Largest pairs file read (a million pairs of long paths fit).
MAX_PAIRS_BYTES = 256 * 1024 * 1024


@dataclass(frozen=True)
class Pair:
    a: Path
    b: Path  # the probe side: degradations are applied to b
    same: bool
    fold: int


def lfw_path(root: Path, name: str, number: str) -> Path:
    try:
        n = int(number)
    except ValueError:
        raise FaceprintError(f"image number {number!r} is not an integer") from None
    return root / name / f"{name}_{n:04d}.jpg"


def read_lfw(root: Path, path: Path) -> list[Pair]:
    """LFW pairs.txt -> pairs with LFW's folds."""
    lines = [ln.split() for ln in _read_text(path).splitlines() if ln.strip()]
    if not lines:
        raise FaceprintError(f"{path}: empty pairs file")
    head = lines[0]
    if len(head) == 1:  # pairsDevTest.txt style: just the number of pairs per class
        head = ["1", head[0]]
    try:
        folds, per = int(head[0]), int(head[1])
    except (ValueError, IndexError):
        raise FaceprintError(
            f"{path}: first line must be 'FOLDS PAIRS_PER_CLASS' (e.g. '10 300'), got "
            f"{' '.join(lines[0])!r}"
        ) from None
    body = lines[1:]
    if folds < 1 or per < 1 or len(body) != 2 * folds * per:
        raise FaceprintError(
            f"{path}: header says {folds} folds x 2 x {per} pairs = {2 * folds * per} lines, "
            f"found {len(body)}"
        )
    pairs: list[Pair] = []
    for i, fields in enumerate(body):
        fold, within = divmod(i, 2 * per)
        lineno = i + 2
        matched = within < per
        if matched and len(fields) == 3:
            a, b = lfw_path(root, fields[0], fields[1]), lfw_path(root, fields[0], fields[2])
        elif not matched and len(fields) == 4:
            a, b = lfw_path(root, fields[0], fields[1]), lfw_path(root, fields[2], fields[3])
        else:
            want = "'name n1 n2'" if matched else "'name1 n1 name2 n2'"
            raise FaceprintError(
                f"{path}, line {lineno}: expected a {'matched' if matched else 'mismatched'} "
                f"pair {want}, got {' '.join(fields)!r}"
            )
        pairs.append(Pair(a, b, matched, fold))
    return pairs


def parse_label(value: str) -> bool:
    v = value.strip().lower()
    if v in _TRUE:
        return True
    if v in _FALSE:
        return False
    raise FaceprintError(f"label {value!r} is not one of yes/no, 1/0, true/false, same/different")


def read_csv(root: Path, path: Path, folds: int = 10, seed: int = 0) -> list[Pair]:
    """CSV of (file_a, file_b, label) -> pairs with seeded folds."""
    rows = _csv_rows(_read_text(path), path)
    rows = [r for r in rows if r and any(c.strip() for c in r)]
    if len(rows) < 2:
        raise FaceprintError(f"{path}: no pairs (expected a header and rows file_a,file_b,same)")
    header, body = rows[0], rows[1:]
    if len(header) < 3:
        raise FaceprintError(f"{path}: expected 3 columns (file_a, file_b, same), got {header}")
    triples: list[tuple[Path, Path, bool]] = []
    for lineno, row in enumerate(body, start=2):
        if len(row) < 3:
            raise FaceprintError(f"{path}, line {lineno}: expected file_a,file_b,same")
        try:
            same = parse_label(row[2])
        except FaceprintError as exc:
            raise FaceprintError(f"{path}, line {lineno}: {exc}") from None
        triples.append((root / row[0].strip(), root / row[1].strip(), same))
    k = min(folds, len(triples))
    fold_of = assign_folds(len(triples), k=k, seed=seed)
    return [Pair(a, b, s, int(f)) for (a, b, s), f in zip(triples, fold_of, strict=True)]


def read_pairs(root: Path, path: Path, *, folds: int = 10, seed: int = 0) -> list[Pair]:
    """Either format (CSV by suffix or a comma in the first line), images checked to exist."""
    if not root.is_dir():
        raise FaceprintError(f"{root}: not a directory (the root the pairs' images are under)")
    text = _read_text(path)
    first = text.lstrip().split("\n", 1)[0]
    is_csv = path.suffix.lower() == ".csv" or "," in first
    pairs = read_csv(root, path, folds, seed) if is_csv else read_lfw(root, path)
    missing = sorted({str(p) for pair in pairs for p in (pair.a, pair.b) if not p.is_file()})
    if missing:
        more = f" (and {len(missing) - 5} more)" if len(missing) > 5 else ""
        raise ImageError(
            f"{path}: {len(missing)} image(s) named in the pairs do not exist under {root}: "
            f"{', '.join(missing[:5])}{more}"
        )
    if not any(p.same for p in pairs) or all(p.same for p in pairs):
        raise FaceprintError(f"{path}: need both same-person and different-person pairs")
    return pairs


def _read_text(path: Path) -> str:
    """The pairs file's text: a regular file of at most MAX_PAIRS_BYTES (a FIFO, a device or
    a huge file is refused without being read), in UTF-8."""
    from faceprint.io import read_file

    if not path.exists() and not path.is_symlink():
        raise FaceprintError(f"{path}: pairs file not found")
    data = read_file(path, MAX_PAIRS_BYTES, error=FaceprintError)
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise FaceprintError(f"{path}: cannot read the pairs file ({exc})") from None


def _csv_rows(text: str, path: Path) -> list[list[str]]:
    try:
        return list(csv.reader(text.splitlines()))
    except csv.Error as exc:  # e.g. a field longer than the csv module's limit
        raise FaceprintError(f"{path}: cannot read the pairs file ({exc})") from None
