"""Templates of the images of an evaluation, with a cache and an explicit no-face policy.

Each image gets the template of its subject face (:mod:`faceprint.detect.subject`: whole
faces first, then size, centrality and detector confidence); images in which several faces
were found are counted. When no face is found, ``on_no_face``
decides: ``"fail"`` leaves it without a template (every comparison with it counts as a
rejection), ``"centre"`` aligns a centre crop (a square of half the shorter side, with the
landmark predictor run on it) as is usual for pre-cropped sets like LFW. Either way the
image is listed, so no failure goes unreported.

The cache is one .npz file keyed by (file content sha256, pack, detector, no-face policy,
degradation, seed): a second run over the same images is only file hashing.
"""

from __future__ import annotations

import hashlib
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from faceprint.errors import FaceprintError
from faceprint.eval.degrade import Degradation
from faceprint.models.packs import DEFAULT_PACK
from faceprint.types import Box, Face, Image

ON_NO_FACE = ("fail", "centre")
#: Names the face-choice rule in reports and in the cache key (change it with the rule).
SUBJECT_RULE = "subject-v1: whole faces first; size x centrality x sqrt(confidence)"
#: Images detected (and embedded) per batch.
CHUNK = 16

FOUND, CENTRE, NONE = 0, 1, 2


@dataclass
class Templates:
    """Per-image templates of one condition; ``vectors[path]`` is None without a face."""

    condition: str
    vectors: dict[Path, np.ndarray | None] = field(default_factory=dict)
    no_face: list[Path] = field(default_factory=list)  # no face detected (whatever the policy)
    several: list[Path] = field(default_factory=list)  # several faces found: the rule chose
    computed: int = 0  # how many were not in the cache

    def get(self, path: Path) -> np.ndarray | None:
        return self.vectors[path]


class TemplateCache:
    """One .npz file of keys -> (template, status)."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self.entries: dict[str, tuple[np.ndarray, int, int]] = {}
        if path is not None and path.is_file():
            try:
                with np.load(path, allow_pickle=False) as data:
                    rows = zip(
                        data["keys"], data["vectors"], data["status"], data["faces"], strict=True
                    )
                    for k, v, s, n in rows:
                        self.entries[str(k)] = (v, int(s), int(n))
            except (OSError, ValueError, KeyError) as exc:
                print(f"faceprint: ignoring unreadable cache {path} ({exc})", file=sys.stderr)
                self.entries = {}

    def save(self) -> None:
        if self.path is None or not self.entries:
            return
        keys = sorted(self.entries)
        tmp = self.path.with_name(self.path.name + ".tmp.npz")
        np.savez(
            tmp,
            keys=np.array(keys),
            vectors=np.stack([self.entries[k][0] for k in keys]).astype(np.float32),
            status=np.array([self.entries[k][1] for k in keys], dtype=np.int8),
            faces=np.array([self.entries[k][2] for k in keys], dtype=np.int32),
        )
        tmp.replace(self.path)


def centre_face(image: Image, model_dir: str | Path | None = None) -> Face:
    """A face for the centre of the image: a centred square of half the shorter side."""
    from faceprint.align.shape_predictor import ShapePredictor

    h, w = image.shape[:2]
    side = min(h, w) / 2
    box = Box((w - side) / 2, (h - side) / 2, (w + side) / 2, (h + side) / 2)
    shape = ShapePredictor.load(model_dir).predict_many(image, [box.as_list()])[0]
    return Face(box, 0.0, np.asarray(shape, dtype=np.float32).reshape(5, 2))


def compute(
    files: Sequence[Path],
    *,
    degradation: Degradation | None = None,
    seed: int = 0,
    on_no_face: str = "fail",
    detector: str,
    model_dir: str | Path | None = None,
    cache: TemplateCache | None = None,
    quiet: bool = False,
) -> Templates:
    """Templates of ``files`` (degraded first, if asked), from the cache where possible."""
    from tqdm import tqdm

    from faceprint.detect import detect
    from faceprint.embed import embed_many
    from faceprint.io import load_image

    if on_no_face not in ON_NO_FACE:
        raise FaceprintError(f"--on-no-face must be one of {', '.join(ON_NO_FACE)}")
    cache = cache or TemplateCache(None)
    condition = degradation.name if degradation else "clean"
    suffix = (
        f"{DEFAULT_PACK.id}|{detector}|{SUBJECT_RULE}|{on_no_face}|{condition}|"
        f"{seed if degradation else ''}"
    )
    out = Templates(condition)
    todo: list[tuple[Path, str]] = []
    for path in dict.fromkeys(files):
        key = f"{hashlib.sha256(path.read_bytes()).hexdigest()}|{suffix}"
        if key in cache.entries:
            vec, status, n_faces = cache.entries[key]
            _record(out, path, vec, status, n_faces)
        else:
            todo.append((path, key))
    bar = tqdm(
        total=len(todo),
        desc=f"embedding ({condition})",
        unit="photo",
        file=sys.stderr,
        disable=quiet or len(todo) < 2,
    )
    for start in range(0, len(todo), CHUNK):
        chunk = todo[start : start + CHUNK]
        items: list[tuple[Image, list[Face]]] = []
        statuses: list[int] = []
        counts: list[int] = []
        for path, _ in chunk:
            image = load_image(path)
            if degradation is not None:
                image = degradation.apply(image, seed)
            found = detect(image, detector=detector, model_dir=model_dir)
            face = found[0] if found else None  # detect() puts the subject face first
            counts.append(len(found))
            status = FOUND
            if face is None:
                status = NONE
                if on_no_face == "centre":
                    face, status = centre_face(image, model_dir), CENTRE
            items.append((image, [face] if face is not None else []))
            statuses.append(status)
            bar.update(1)
        embedded = embed_many(items, model_dir=model_dir)
        for (path, key), faces, status, n_faces in zip(
            chunk, embedded, statuses, counts, strict=True
        ):
            vec = (
                faces[0].embedding
                if faces and faces[0].embedding is not None
                else np.full(DEFAULT_PACK.dim, np.nan, dtype=np.float32)
            )
            cache.entries[key] = (vec, status, n_faces)
            _record(out, path, vec, status, n_faces)
            out.computed += 1
    bar.close()
    if out.computed:
        cache.save()
    return out


def _record(out: Templates, path: Path, vec: np.ndarray, status: int, n_faces: int) -> None:
    out.vectors[path] = None if status == NONE else np.asarray(vec, dtype=np.float32)
    if status != FOUND:
        out.no_face.append(path)
    if n_faces > 1:
        out.several.append(path)
