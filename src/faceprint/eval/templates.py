"""Templates of the images of an evaluation, with a cache and an explicit no-face policy.

Each image gets the template of its subject face (:mod:`faceprint.detect.subject`: whole
faces first, then size, centrality and detector confidence); images in which several faces
were found are counted. When no face is found, ``on_no_face``
decides: ``"fail"`` leaves it without a template (every comparison with it counts as a
rejection), ``"centre"`` aligns a centre crop (a square of half the shorter side, with the
landmark predictor run on it) as is usual for pre-cropped sets like LFW. Either way the
image is listed, so no failure goes unreported.

Besides the template, each image keeps its subject face as the evaluation found it (box,
landmarks, detector score and :func:`faceprint.quality.assess` score, on the image as
evaluated, degraded or not): the automatic slices (:mod:`faceprint.eval.face_slices`)
are cut on these.

The cache is one .npz file keyed by (file content sha256, pack, detector, subject rule,
no-face policy, degradation, seed): a second run over the same images is only file
hashing. A cache of another :data:`CACHE_FORMAT` is recomputed.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from faceprint.errors import FaceprintError
from faceprint.eval.degrade import Degradation
from faceprint.log import note
from faceprint.models.packs import DEFAULT_PACK
from faceprint.types import Box, Face, Image

ON_NO_FACE = ("fail", "centre")
#: Names the face-choice rule in reports and in the cache key (change it with the rule).
SUBJECT_RULE = "subject-v1: whole faces first; size x centrality x sqrt(confidence)"
#: Layout of the cache file; a file of another format (or none, before 2) is recomputed.
CACHE_FORMAT = 2
#: Images detected (and embedded) per batch.
CHUNK = 16

FOUND, CENTRE, NONE = 0, 1, 2


@dataclass(frozen=True)
class FaceRecord:
    """The subject face of an image as the evaluation detected it: ``box`` (left, top,
    right, bottom), ``landmarks`` (5 x 2, :data:`faceprint.types.LANDMARKS` order),
    detector ``score`` and quality ``quality`` (:func:`faceprint.quality.assess`)."""

    box: tuple[float, float, float, float]
    landmarks: np.ndarray
    score: float
    quality: float


@dataclass
class Entry:
    """One cached image: template (NaN without one), status, faces found, subject face
    (box 4, landmarks 10, score, quality; NaN when no face was detected)."""

    vector: np.ndarray
    status: int
    n_faces: int
    face: np.ndarray  # 16 floats


@dataclass
class Templates:
    """Per-image templates of one condition; ``vectors[path]`` is None without a face,
    ``faces[path]`` is the detected subject face (None when none was detected, also when
    a centre crop stood in for it)."""

    condition: str
    vectors: dict[Path, np.ndarray | None] = field(default_factory=dict)
    faces: dict[Path, FaceRecord | None] = field(default_factory=dict)
    no_face: list[Path] = field(default_factory=list)  # no face detected (whatever the policy)
    several: list[Path] = field(default_factory=list)  # several faces found: the rule chose
    computed: int = 0  # how many were not in the cache

    def get(self, path: Path) -> np.ndarray | None:
        return self.vectors[path]


class TemplateCache:
    """One .npz file of keys -> :class:`Entry`."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self.entries: dict[str, Entry] = {}
        if path is not None and path.is_file():
            try:
                with np.load(path, allow_pickle=False) as data:
                    version = int(data["format"]) if "format" in data.files else 1
                    if version != CACHE_FORMAT:
                        note(
                            f"{path} is an older template cache (format {version}, "
                            f"now {CACHE_FORMAT}): recomputing"
                        )
                        return
                    rows = zip(
                        data["keys"],
                        data["vectors"],
                        data["status"],
                        data["faces"],
                        data["subject"],
                        strict=True,
                    )
                    for k, v, s, n, f in rows:
                        self.entries[str(k)] = Entry(v, int(s), int(n), f)
            except (OSError, ValueError, KeyError) as exc:
                note(f"ignoring unreadable cache {path} ({exc})")
                self.entries = {}

    def save(self) -> None:
        if self.path is None or not self.entries:
            return
        keys = sorted(self.entries)
        tmp = self.path.with_name(self.path.name + ".tmp.npz")
        np.savez(
            tmp,
            format=np.array(CACHE_FORMAT),
            keys=np.array(keys),
            vectors=np.stack([self.entries[k].vector for k in keys]).astype(np.float32),
            status=np.array([self.entries[k].status for k in keys], dtype=np.int8),
            faces=np.array([self.entries[k].n_faces for k in keys], dtype=np.int32),
            subject=np.stack([self.entries[k].face for k in keys]).astype(np.float64),
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


def _subject(image: Image, face: Face | None) -> np.ndarray:
    """The 16 numbers kept of a detected subject face (NaN when there is none)."""
    from faceprint.quality import assess

    if face is None:
        return np.full(16, np.nan)
    marks = np.asarray(face.landmarks, dtype=np.float64).reshape(10)
    quality = assess(image, face).score
    return np.r_[face.box.as_list(), marks, float(face.score), quality].astype(np.float64)


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
    from faceprint.io import file_sha256, load_image

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
        key = f"{file_sha256(path)}|{suffix}"  # capped, regular files only (io.files)
        if key in cache.entries:
            _record(out, path, cache.entries[key])
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
        subjects: list[np.ndarray] = []
        for path, _ in chunk:
            image = load_image(path)
            if degradation is not None:
                image = degradation.apply(image, seed)
            found = detect(image, detector=detector, model_dir=model_dir)
            face = found[0] if found else None  # detect() puts the subject face first
            counts.append(len(found))
            subjects.append(_subject(image, face))
            status = FOUND
            if face is None:
                status = NONE
                if on_no_face == "centre":
                    face, status = centre_face(image, model_dir), CENTRE
            items.append((image, [face] if face is not None else []))
            statuses.append(status)
            bar.update(1)
        embedded = embed_many(items, model_dir=model_dir)
        for (path, key), faces, status, n_faces, subject in zip(
            chunk, embedded, statuses, counts, subjects, strict=True
        ):
            vec = (
                faces[0].embedding
                if faces and faces[0].embedding is not None
                else np.full(DEFAULT_PACK.dim, np.nan, dtype=np.float32)
            )
            entry = Entry(vec, status, n_faces, subject)
            cache.entries[key] = entry
            _record(out, path, entry)
            out.computed += 1
    bar.close()
    if out.computed:
        cache.save()
    return out


def _record(out: Templates, path: Path, entry: Entry) -> None:
    status = entry.status
    out.vectors[path] = None if status == NONE else np.asarray(entry.vector, dtype=np.float32)
    f = np.asarray(entry.face, dtype=np.float64)
    out.faces[path] = (
        None
        if status != FOUND or not np.isfinite(f).all()
        else FaceRecord(
            (float(f[0]), float(f[1]), float(f[2]), float(f[3])),
            f[4:14].reshape(5, 2),
            float(f[14]),
            float(f[15]),
        )
    )
    if status != FOUND:
        out.no_face.append(path)
    if entry.n_faces > 1:
        out.several.append(path)
