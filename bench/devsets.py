"""The project's development sets, as the benches and the README figures use them.

* ``faces``: the 62 labelled photos of 13 people in ../shared/faces
  (tests/data/identities.csv; the named person is the photo's main face);
* ``lfw-dev``: the 1,548 LFW photos of 1,467 people in ../shared/lfw-dev that are in no
  pair of LFW's test file (../shared/PROVENANCE.md; the named person is the face nearest
  the centre).

``python bench/devsets.py OUT`` writes what ``faceprint eval`` needs into OUT (never into
the repository): ``lfw-dev-pairs.csv`` (every genuine pair of the multi-photo people and
every impostor pair of the first photo of each person with the first photos of others, a
seeded sample of at least 100,000), ``faces-pairs.csv`` (every pair of the labelled
photos), and folder-per-person trees ``faces-people/`` and ``lfw-dev-people/`` (symlinks).
"""

from __future__ import annotations

import argparse
import csv
import itertools
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
SHARED = HERE.parent.parent / "shared"
FACES = SHARED / "faces"
LFW_DEV = SHARED / "lfw-dev"
LABELS = HERE.parent / "tests" / "data" / "identities.csv"


@dataclass(frozen=True)
class Photo:
    path: Path
    person: str
    dataset: str  # "faces" or "lfw-dev"

    @property
    def rel(self) -> str:
        root = FACES if self.dataset == "faces" else LFW_DEV
        return str(self.path.relative_to(root))


def faces_photos() -> list[Photo]:
    with LABELS.open() as fh:
        rows = list(csv.DictReader(line for line in fh if not line.startswith("#")))
    return [Photo(FACES / r["file"], r["person"], "faces") for r in rows]


def lfw_photos() -> list[Photo]:
    return [
        Photo(p, p.parent.name, "lfw-dev")
        for d in sorted(LFW_DEV.iterdir())
        if d.is_dir()
        for p in sorted(d.glob("*.jpg"))
    ]


def all_pairs(photos: list[Photo]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Index pairs (i, j), i < j, of every two photos, and whether they are the same person."""
    n = len(photos)
    i, j = np.triu_indices(n, k=1)
    people = np.array([p.person for p in photos])
    return i, j, people[i] == people[j]


def lfw_pairs(photos: list[Photo], impostors: int = 120_000, seed: int = 0) -> list[tuple]:
    """(a, b, same) over lfw-dev: every genuine pair plus a seeded impostor sample."""
    by_person: dict[str, list[Photo]] = {}
    for p in photos:
        by_person.setdefault(p.person, []).append(p)
    genuine = [(a, b, True) for ps in by_person.values() for a, b in itertools.combinations(ps, 2)]
    rng = np.random.default_rng(seed)
    n = len(photos)
    chosen: set[tuple[int, int]] = set()
    while len(chosen) < impostors:
        i, j = (int(v) for v in rng.integers(0, n, size=2))
        if i == j or photos[i].person == photos[j].person:
            continue
        chosen.add((min(i, j), max(i, j)))
    return genuine + [(photos[i], photos[j], False) for i, j in sorted(chosen)]


def _write_pairs(path: Path, pairs: list[tuple]) -> None:
    with path.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["file_a", "file_b", "same"])
        for a, b, same in pairs:
            w.writerow([a.rel, b.rel, "yes" if same else "no"])


def _tree(root: Path, photos: list[Photo]) -> None:
    for p in photos:
        d = root / p.person
        d.mkdir(parents=True, exist_ok=True)
        link = d / p.path.name
        if not link.exists():
            os.symlink(p.path, link)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("out", type=Path, help="output directory (outside the repository)")
    parser.add_argument("--impostors", type=int, default=120_000)
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    lfw, faces = lfw_photos(), faces_photos()
    pairs = lfw_pairs(lfw, args.impostors)
    _write_pairs(args.out / "lfw-dev-pairs.csv", pairs)
    fi, fj, fs = all_pairs(faces)
    _write_pairs(
        args.out / "faces-pairs.csv",
        [(faces[a], faces[b], bool(s)) for a, b, s in zip(fi, fj, fs, strict=True)],
    )
    _tree(args.out / "faces-people", faces)
    _tree(args.out / "lfw-dev-people", lfw)
    n_gen = sum(1 for p in pairs if p[2])
    print(f"lfw-dev: {len(lfw)} photos, {n_gen} genuine + {len(pairs) - n_gen} impostor pairs")
    print(f"faces: {len(faces)} photos, {int(fs.sum())} genuine + {int((~fs).sum())} impostor")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
