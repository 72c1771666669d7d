"""``Gallery``: enroll people from photos and identify faces, on top of the SQLite store."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from faceprint.errors import GalleryError, NoFaceError
from faceprint.gallery.sqlite import Candidate, Person, SqliteGallery
from faceprint.io import load_image
from faceprint.match.verify import resolve_threshold
from faceprint.models.packs import DEFAULT_PACK
from faceprint.quality import fill as fill_quality
from faceprint.types import Face, Image

Photo = str | Path | Image | Face

#: A second face this large (relative to the largest) makes an enrollment photo ambiguous.
AMBIGUOUS_SECOND_FACE = 0.5
#: Faces below this quality (faceprint.quality, 0..1) are not enrolled by default.
MIN_ENROLL_QUALITY = 0.4


@dataclass
class Identification:
    """The decision for one face: a gallery name, or None for "unknown"."""

    face: Face
    name: str | None
    score: float
    threshold: float
    candidates: list[Candidate] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            **self.face.to_dict(),
            "name": self.name,
            "similarity": round(self.score, 4),
            "threshold": round(self.threshold, 4),
            "candidates": [
                {"name": c.name, "similarity": round(c.score, 4)} for c in self.candidates
            ],
        }


def _photo_faces(
    photo: Photo, *, detector: str | None, model_dir: str | Path | None, liveness: bool = False
) -> tuple[list[Face], str | None, str]:
    """Detect and embed the faces of a photo; also its content hash and a display name."""
    from faceprint.detect import detect
    from faceprint.embed import embed as embed_faces

    if isinstance(photo, Face):
        if photo.embedding is None:
            raise GalleryError("a Face given for enrollment must already be embedded")
        return [photo], None, "face"
    if isinstance(photo, np.ndarray):
        image = photo
        digest = hashlib.sha256(np.ascontiguousarray(image).tobytes()).hexdigest()
        label = "image"
    else:
        path = Path(photo)
        image = load_image(path)
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        label = str(path)
    faces = detect(image, detector=detector, model_dir=model_dir)
    fill_quality(image, faces)
    if liveness:
        from faceprint.liveness import annotate

        annotate(image, faces, model_dir=model_dir)
    return embed_faces(image, faces, model_dir=model_dir), digest, label


def enrollment_face(faces: list[Face], label: str) -> Face:
    """The one face an enrollment photo is about: the largest, unless it is ambiguous."""
    if not faces:
        raise NoFaceError(f"{label}: no face found")
    faces = sorted(faces, key=lambda f: f.box.width * f.box.height, reverse=True)
    if len(faces) > 1:
        first = faces[0].box.width * faces[0].box.height
        second = faces[1].box.width * faces[1].box.height
        if second > AMBIGUOUS_SECOND_FACE * first:
            raise GalleryError(
                f"{label}: {len(faces)} faces of similar size; use a photo with one face "
                f"(or crop it) so the wrong person is not enrolled"
            )
    return faces[0]


def check_quality(face: Face, label: str, min_quality: float) -> None:
    """Refuse a face whose quality (faceprint.quality) is below ``min_quality``."""
    if face.quality is None or face.quality >= min_quality:
        return
    reasons = face.attributes.get("quality", {}).get("reasons") or ["low quality"]
    raise GalleryError(
        f"{label}: face quality {face.quality:.2f} is below {min_quality:.2f} "
        f"({', '.join(reasons)}); enroll a sharper, larger, more frontal photo"
    )


class Gallery:
    """Known people and their face templates, in one SQLite file.

    >>> g = Gallery("people.db")
    >>> g.enroll("alice", "alice1.jpg", "alice2.jpg")
    >>> [r.name for r in g.identify("group.jpg")]
    """

    def __init__(
        self,
        path: str | Path,
        *,
        create: bool = True,
        detector: str | None = None,
        model_dir: str | Path | None = None,
    ) -> None:
        self.store = SqliteGallery(path, create=create)
        self.detector = detector
        self.model_dir = model_dir

    def close(self) -> None:
        self.store.close()

    def __enter__(self) -> Gallery:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def threshold(self) -> float:
        """The gallery's identification threshold: its calibrated setting, else the pack's."""
        value = self.store.setting("threshold")
        return float(value) if value is not None else DEFAULT_PACK.threshold().similarity

    def enroll(
        self,
        name: str,
        *photos: Photo,
        metadata: dict[str, Any] | None = None,
        require_live: bool = False,
        min_quality: float = MIN_ENROLL_QUALITY,
    ) -> list[int]:
        """Add one template per photo (the photo's one clear face). All or nothing.

        With ``require_live`` a face judged a photo/screen raises SpoofError (nothing added).
        A face of quality below ``min_quality`` (faceprint.quality) raises GalleryError
        naming the reasons; a Face given without a quality is taken as it is.
        """
        if not photos:
            raise GalleryError("enroll needs at least one photo")
        faces: list[Face] = []
        digests: list[str | None] = []
        for photo in photos:
            found, digest, label = _photo_faces(
                photo, detector=self.detector, model_dir=self.model_dir, liveness=require_live
            )
            faces.append(enrollment_face(found, label))
            check_quality(faces[-1], label, min_quality)
            if require_live:
                from faceprint.liveness import ensure_live

                ensure_live(faces[-1], label)
            digests.append(digest)
        return self.store.add_templates(
            name,
            [f.embedding for f in faces if f.embedding is not None],
            pack=faces[0].pack or DEFAULT_PACK.id,
            image_sha256=digests,
            quality=[f.quality for f in faces],
            metadata=metadata,
        )

    def identify(
        self,
        photo: Photo,
        *,
        top_k: int = 1,
        threshold: float | None = None,
        fmr: float | None = None,
    ) -> list[Identification]:
        """Identify every face in a photo: best match per face, or None when below threshold."""
        faces, _, _ = _photo_faces(photo, detector=self.detector, model_dir=self.model_dir)
        if not faces:
            return []
        return self.identify_faces(faces, top_k=top_k, threshold=threshold, fmr=fmr)

    def identify_faces(
        self,
        faces: list[Face],
        *,
        top_k: int = 1,
        threshold: float | None = None,
        fmr: float | None = None,
    ) -> list[Identification]:
        if threshold is None and fmr is None:
            thr = self.threshold
        else:
            thr = resolve_threshold(threshold, fmr).similarity
        pack = self.store.pack
        for f in faces:
            if pack is not None and f.pack != pack:
                raise GalleryError(
                    f"face template of pack {f.pack!r} cannot be searched in a gallery of {pack!r}"
                )
        probes = np.stack([f.embedding for f in faces if f.embedding is not None])
        results: list[Identification] = []
        hits: list[list[Candidate]] = self.store.search(probes, k=max(1, top_k))
        for face, cands in zip(faces, hits, strict=True):
            best = cands[0]
            name = best.name if best.score >= thr else None
            results.append(Identification(face, name, best.score, thr, cands[:top_k]))
        return results

    def remove(self, name: str) -> int:
        return self.store.remove(name)

    def list(self) -> list[Person]:
        return self.store.people()

    def __len__(self) -> int:
        return len(self.store)
