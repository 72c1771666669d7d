"""Enrollment, the one path every front end takes (Python API, CLI, batch and Ray, HTTP
service, video): read the photo, choose its face, check quality (and liveness when asked),
embed, and store with the photo's content hash so a photo is enrolled once.

* **Face choice**: the subject face (:mod:`faceprint.detect.subject`); a photo in which a
  second face is nearly as prominent is refused, so the wrong person is never enrolled.
* **Quality gate**: faces below ``min_quality`` (:mod:`faceprint.quality`) are refused with
  the reasons.
* **Liveness** (``require_live``): a face judged a photo or screen raises SpoofError.
* **Duplicates**: a photo is identified by the sha256 of its file (or of the uploaded
  bytes); one already enrolled for the person is skipped, for someone else refused. The
  check and the insert are one transaction (:meth:`Store.add_templates`).
* :func:`enroll` is all or nothing: if any photo fails, nothing of the call is stored.
  :func:`enroll_jobs` (folders, batches) treats each photo on its own and reports failures.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from faceprint.errors import FaceprintError, GalleryError, ImageError, NoFaceError
from faceprint.gallery.store import Added, NewTemplate, Store
from faceprint.models.packs import Pack
from faceprint.types import Face, Image

#: Faces below this quality (faceprint.quality, 0..1) are not enrolled by default.
MIN_QUALITY = 0.4
#: Photos decoded and embedded together in a batch.
BATCH_SIZE = 16

Photo = str | Path | bytes | Image | Face


@dataclass(frozen=True)
class Rules:
    """The settings of the enrollment rules."""

    min_quality: float = MIN_QUALITY
    require_live: bool = False
    detector: str | None = None
    model_dir: str | Path | None = None

    def __post_init__(self) -> None:
        if not (isinstance(self.min_quality, float | int) and 0.0 <= self.min_quality <= 1.0):
            raise FaceprintError(f"minimum quality {self.min_quality} must be between 0 and 1")


@dataclass
class Prepared:
    """One photo's enrollment face, embedded and ready to store."""

    label: str
    sha256: str | None
    face: Face

    def template(self) -> NewTemplate:
        assert self.face.embedding is not None
        return NewTemplate(self.face.embedding, self.sha256, self.face.quality)


@dataclass
class Failed:
    label: str
    error: FaceprintError


@dataclass
class BatchReport:
    added: dict[str, int] = field(default_factory=dict)
    skipped: int = 0  # already in the gallery (or twice in this run)
    failures: list[tuple[str, str]] = field(default_factory=list)  # (photo, reason)


def label_of(photo: Photo) -> str:
    if isinstance(photo, str | Path):
        return str(photo)
    return "face" if isinstance(photo, Face) else "image"


def photo_sha256(photo: Photo) -> str | None:
    """The content hash stored with a template: of the file or the bytes as given. Arrays
    and Faces have no file, so they have no hash (and are never taken for a duplicate)."""
    from faceprint.io import file_sha256

    if isinstance(photo, str | Path):
        return file_sha256(photo)
    if isinstance(photo, bytes):
        return hashlib.sha256(photo).hexdigest()
    return None


def choose_face(faces: Sequence[Face], shape: tuple[int, ...], label: str) -> Face:
    """The one face an enrollment photo is about, or NoFaceError / GalleryError."""
    from faceprint.detect.subject import ambiguous, subject

    chosen = subject(faces, shape)
    if chosen is None:
        raise NoFaceError(f"{label}: no face found")
    if ambiguous(faces, shape):
        raise GalleryError(
            f"{label}: {len(faces)} faces of similar prominence; use a photo with one clear "
            f"face (or crop it) so the wrong person is not enrolled"
        )
    return chosen


def check_quality(face: Face, label: str, min_quality: float) -> None:
    """Refuse a face whose quality (faceprint.quality) is below ``min_quality``."""
    if face.quality is None or face.quality >= min_quality:
        return
    reasons = face.attributes.get("quality", {}).get("reasons") or ["low quality"]
    raise GalleryError(
        f"{label}: face quality {face.quality:.2f} is below {min_quality:.2f} "
        f"({', '.join(reasons)}); enroll a sharper, larger, more frontal photo"
    )


def _face_of(photo: Photo, label: str, rules: Rules) -> tuple[Image | None, Face]:
    """Decode and detect; the chosen face, quality-checked (not yet embedded)."""
    from faceprint.detect import detect
    from faceprint.io import load_image
    from faceprint.quality import fill

    if isinstance(photo, Face):
        if photo.embedding is None:
            raise GalleryError(f"{label}: a Face given for enrollment must already be embedded")
        check_quality(photo, label, rules.min_quality)
        return None, photo
    try:
        image = photo if isinstance(photo, np.ndarray) else load_image(photo)
    except ImageError as exc:
        raise ImageError(str(exc).replace("uploaded image", label, 1)) from None
    faces = detect(image, detector=rules.detector, model_dir=rules.model_dir)
    face = choose_face(faces, image.shape, label)
    fill(image, [face])
    check_quality(face, label, rules.min_quality)
    if rules.require_live:
        from faceprint.liveness import ensure_live

        ensure_live(face, label, image, model_dir=rules.model_dir)
    return image, face


def prepare(
    photos: Sequence[tuple[str, Photo]], pack: Pack, rules: Rules
) -> list[Prepared | Failed]:
    """Every rule but storage, for (label, photo) pairs; faces embedded in one batch."""
    from faceprint.embed import embed_many

    out: list[Prepared | Failed] = []
    to_embed: list[tuple[Image, list[Face]]] = []
    for label, photo in photos:
        try:
            sha = photo_sha256(photo)
            image, face = _face_of(photo, label, rules)
        except FaceprintError as exc:
            out.append(Failed(label, exc))
            continue
        if image is not None:
            to_embed.append((image, [face]))
        elif face.pack != pack.id:
            out.append(Failed(label, GalleryError(f"{label}: template of pack {face.pack!r}")))
            continue
        out.append(Prepared(label, sha, face))
    if to_embed:
        embed_many(to_embed, pack=pack, model_dir=rules.model_dir)
    return out


def enroll(
    store: Store,
    name: str,
    photos: Sequence[Photo],
    pack: Pack,
    rules: Rules,
    *,
    metadata: dict[str, Any] | None = None,
    labels: Sequence[str] | None = None,
) -> Added:
    """Enroll ``photos`` of ``name``, all or nothing (the first failure is raised)."""
    if not photos:
        raise GalleryError("enroll needs at least one photo")
    names = list(labels) if labels is not None else [label_of(p) for p in photos]
    if len(names) != len(photos):
        raise GalleryError("one label per photo, or none")
    done = prepare(list(zip(names, photos, strict=True)), pack, rules)
    failed = [d for d in done if isinstance(d, Failed)]
    if failed:
        first = failed[0].error  # its class (and exit code) stands for the call
        if len(photos) > 1:
            why = "; ".join(str(f.error) for f in failed)
            first.args = (f"{why}; nothing of this enrollment was stored",)
        raise first
    ready = [d for d in done if isinstance(d, Prepared)]
    return store.add_templates(name, [p.template() for p in ready], pack=pack.id, metadata=metadata)


def write(
    store: Store, name: str, ready: Sequence[Prepared], pack: Pack, report: BatchReport
) -> None:
    """Store one person's prepared photos of a batch (one transaction), into ``report``."""
    try:
        added = store.add_templates(name, [p.template() for p in ready], pack=pack.id)
    except FaceprintError as exc:
        report.failures.extend((p.label, str(exc)) for p in ready)
        return
    report.skipped += len(added.already)
    if added.ids:
        report.added[name] = report.added.get(name, 0) + len(added.ids)


def pending(
    store: Store, jobs: Iterable[tuple[str, Path]], report: BatchReport
) -> list[tuple[str, Path]]:
    """Jobs whose photo is not in the gallery yet (by content hash, before decoding)."""
    from faceprint.io import file_sha256

    todo: list[tuple[str, Path]] = []
    seen: set[str] = set()
    for name, path in jobs:
        try:
            digest = file_sha256(path)
        except FaceprintError as exc:
            report.failures.append((str(path), str(exc)))
            continue
        if digest in seen or store.has_image(digest):
            report.skipped += 1
            continue
        seen.add(digest)
        todo.append((name, path))
    return todo


def enroll_jobs(
    store: Store,
    jobs: Iterable[tuple[str, Path]],
    pack: Pack,
    rules: Rules,
    *,
    batch_size: int = BATCH_SIZE,
    progress: Callable[[int], None] | None = None,
) -> BatchReport:
    """Enroll (person, photo) jobs in batches, each photo on its own; reruns add nothing."""
    report = BatchReport()
    todo = pending(store, jobs, report)
    for lo in range(0, len(todo), max(1, batch_size)):
        part = todo[lo : lo + max(1, batch_size)]
        done = prepare([(str(p), p) for _, p in part], pack, rules)
        by_name: dict[str, list[Prepared]] = {}
        for (name, _), d in zip(part, done, strict=True):
            if isinstance(d, Failed):
                report.failures.append((d.label, str(d.error)))
            else:
                by_name.setdefault(name, []).append(d)
        for name, ready in by_name.items():
            write(store, name, ready, pack, report)
        if progress:
            progress(len(part))
    return report
