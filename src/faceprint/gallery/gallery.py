"""``Gallery``: enroll people from photos, identify and verify faces, over any store.

A Gallery wraps a :class:`~faceprint.gallery.store.Store` (one collection of a SQLite file
or a PostgreSQL database), as an HTTP client wraps its transport::

    with Gallery.open("people.db", create=True) as g:          # embedded
        g.enroll("alice", "alice1.jpg", "alice2.jpg")
    g = Gallery.open("postgresql://db/faceprint", collection="team")   # a server

Its model pack is the pack of the templates it holds (the default pack while empty):
probes are embedded the same way, so templates made differently are never compared.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from faceprint.errors import GalleryError, NoFaceError, NotFoundError
from faceprint.gallery import enroll as enrollment
from faceprint.gallery.database import DEFAULT_COLLECTION
from faceprint.gallery.store import Added, Candidate, Person, Store
from faceprint.match.search import person_score
from faceprint.match.verify import Verification, resolve_threshold
from faceprint.models.packs import Pack, pack
from faceprint.models.thresholds import Threshold
from faceprint.types import Face, Image

Photo = enrollment.Photo
#: Embeds the faces of an image with a pack (the service injects its micro-batcher).
Embedder = Callable[[Image, list[Face], Pack], list[Face]]


@dataclass
class Identification:
    """The decision for one face: a gallery name, or None for "unknown"."""

    face: Face
    name: str | None
    similarity: float
    threshold: Threshold
    candidates: list[Candidate] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            **self.face.to_dict(),
            "name": self.name,
            "similarity": round(self.similarity, 4),
            **self.threshold.to_dict(),
            "candidates": [
                {"name": c.name, "similarity": round(c.similarity, 4)} for c in self.candidates
            ],
        }


def open_store(
    target: str | Path,
    *,
    collection: str = DEFAULT_COLLECTION,
    create: bool = False,
    read_only: bool = False,
) -> Store:
    """The store of a gallery file path or a ``postgresql://`` URL (one collection)."""
    text = str(target)
    if text.startswith(("postgresql://", "postgres://")):
        from faceprint.gallery.postgres import PostgresDatabase

        db: Any = PostgresDatabase(text)
    else:
        from faceprint.gallery.sqlite import SqliteDatabase

        db = SqliteDatabase(target, create=create, read_only=read_only)
    try:
        store: Store = db.collection(collection, create=create and not read_only)
        return store
    except BaseException:
        db.close()
        raise


class Gallery:
    """Known people and their face templates, over an injected store."""

    def __init__(
        self,
        store: Store,
        *,
        detector: str | None = None,
        model_dir: str | Path | None = None,
        embedder: Embedder | None = None,
    ) -> None:
        self.store = store
        self.detector = detector
        self.model_dir = model_dir
        self.embedder = embedder

    @classmethod
    def open(
        cls,
        target: str | Path,
        *,
        collection: str = DEFAULT_COLLECTION,
        create: bool = False,
        read_only: bool = False,
        detector: str | None = None,
        model_dir: str | Path | None = None,
    ) -> Gallery:
        """A gallery file (SQLite; ``create`` makes it) or a PostgreSQL URL."""
        store = open_store(target, collection=collection, create=create, read_only=read_only)
        return cls(store, detector=detector, model_dir=model_dir)

    def close(self) -> None:
        self.store.close()

    def __enter__(self) -> Gallery:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- what decisions use ----------------------------------------------------------------
    @property
    def pack(self) -> Pack:
        """The model pack of the stored templates (the default one while empty)."""
        return pack(self.store.pack)

    @property
    def threshold(self) -> Threshold:
        """The gallery's identification threshold: its calibration
        (``faceprint calibrate --store``), else the pack's default."""
        return self.resolve(None, None)

    def resolve(self, threshold: float | None, fmr: float | None) -> Threshold:
        """The threshold a decision uses: explicit, else the gallery's calibration when it
        is for the asked FMR (or none was asked), else the pack's for the FMR."""
        if threshold is None:
            value, at = self.store.setting("threshold"), self.store.setting("threshold_fmr")
            if value is not None:
                try:
                    similarity, calibrated = float(value), float(at) if at else None
                except ValueError:
                    raise GalleryError(
                        f"{self.store.where}: its stored threshold is damaged"
                    ) from None
                if not -1.0 <= similarity <= 1.0:
                    raise GalleryError(f"{self.store.where}: its stored threshold is damaged")
                if fmr is None or (calibrated is not None and abs(fmr - calibrated) <= 1e-12):
                    return Threshold(similarity, calibrated, "gallery calibration")
        return resolve_threshold(threshold, fmr, self.pack)

    def rules(self, **kw: Any) -> enrollment.Rules:
        return enrollment.Rules(detector=self.detector, model_dir=self.model_dir, **kw)

    # -- enrollment ------------------------------------------------------------------------
    def enroll(
        self,
        name: str,
        *photos: Photo,
        metadata: dict[str, Any] | None = None,
        require_live: bool = False,
        min_quality: float = enrollment.MIN_QUALITY,
        labels: list[str] | None = None,
    ) -> Added:
        """Add one template per photo (its subject face), all or nothing; photos already
        enrolled for this person are skipped (``Added.already``). ``labels`` name the photos
        in messages (default: their paths)."""
        rules = self.rules(min_quality=min_quality, require_live=require_live)
        return enrollment.enroll(
            self.store, name, photos, self.pack, rules, metadata=metadata, labels=labels
        )

    def enroll_jobs(
        self,
        jobs: Iterable[tuple[str, Path]],
        *,
        require_live: bool = False,
        min_quality: float = enrollment.MIN_QUALITY,
        batch_size: int = enrollment.BATCH_SIZE,
        progress: Callable[[int], None] | None = None,
    ) -> enrollment.BatchReport:
        """Enroll many (person, photo file) jobs, each photo on its own (folders)."""
        rules = self.rules(min_quality=min_quality, require_live=require_live)
        return enrollment.enroll_jobs(
            self.store, jobs, self.pack, rules, batch_size=batch_size, progress=progress
        )

    # -- recognition -----------------------------------------------------------------------
    def faces(self, image: Image) -> list[Face]:
        """Every face of an image, embedded with this gallery's pack, subject first."""
        from faceprint.detect import detect
        from faceprint.embed import embed

        faces = detect(image, detector=self.detector, model_dir=self.model_dir)
        if self.embedder is not None:
            return self.embedder(image, faces, self.pack)
        return embed(image, faces, pack=self.pack, model_dir=self.model_dir)

    def identify(
        self,
        photo: str | Path | Image,
        *,
        top_k: int = 1,
        threshold: float | None = None,
        fmr: float | None = None,
    ) -> list[Identification]:
        """Identify every face in a photo: best match, or None below the threshold."""
        from faceprint.io import load_image

        image = photo if isinstance(photo, np.ndarray) else load_image(photo)
        faces = self.faces(image)
        return self.identify_faces(faces, top_k=top_k, threshold=threshold, fmr=fmr)

    def identify_faces(
        self,
        faces: list[Face],
        *,
        top_k: int = 1,
        threshold: float | None = None,
        fmr: float | None = None,
    ) -> list[Identification]:
        if isinstance(top_k, bool) or not isinstance(top_k, int) or top_k < 1:
            raise GalleryError(f"top_k must be a whole number of at least 1 (got {top_k!r})")
        thr = self.resolve(threshold, fmr)
        if not faces:
            return []
        probes = np.stack([_template(f, self.pack) for f in faces])
        hits = self.store.search(probes, k=top_k)
        results = []
        for face, cands in zip(faces, hits, strict=True):
            best = cands[0]
            name = best.name if best.similarity >= thr.similarity else None
            results.append(Identification(face, name, best.similarity, thr, cands[:top_k]))
        return results

    def verify(
        self,
        photo: str | Path | Image | Face,
        name: str,
        *,
        threshold: float | None = None,
        fmr: float | None = None,
    ) -> Verification:
        """Is the subject face of ``photo`` the person ``name``? (The person score of
        identification: :func:`faceprint.match.search.person_score`.)"""
        from faceprint.detect.subject import subject
        from faceprint.io import load_image

        if self.store.get(name).templates == 0:  # NotFoundError before any work
            raise NotFoundError(f"{name!r} has no face templates in {self.store.where}")
        if isinstance(photo, Face):
            face: Face | None = photo
        else:
            image = photo if isinstance(photo, np.ndarray) else load_image(photo)
            face = subject(self.faces(image), image.shape)
        if face is None:
            raise NoFaceError(f"{enrollment.label_of(photo)}: no face found")
        probe = _template(face, self.pack)
        mine = self.store.templates(name)
        quality = [np.nan if t.quality is None else t.quality for t in mine]
        similarity = person_score(np.stack([t.embedding for t in mine]), probe, quality)
        thr = self.resolve(threshold, fmr)
        return Verification(similarity >= thr.similarity, similarity, thr)

    # -- people ----------------------------------------------------------------------------
    def people(self) -> list[Person]:
        return self.store.people()

    def get(self, name: str) -> Person:
        return self.store.get(name)

    def forget(self, name: str) -> int:
        """Erase a person and all their templates; returns how many templates went."""
        return self.store.remove(name)

    def __len__(self) -> int:
        return len(self.store)


def _template(face: Face, of: Pack) -> np.ndarray:
    if face.embedding is None:
        raise GalleryError("a face must be embedded before it can be searched")
    if face.pack != of.id:
        raise GalleryError(
            f"a template of pack {face.pack!r} cannot be searched in a gallery of {of.id!r}"
        )
    return np.asarray(face.embedding, dtype=np.float32)
