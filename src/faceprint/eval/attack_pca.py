"""The attacker's face space: eigenfaces of aligned chips, and full photos made from them.

The score-only reconstruction attack (:mod:`faceprint.eval.attack`) searches a PCA
("eigenface") space built at run time from photos of people who are not the target: each
photo goes through faceprint's own detection and alignment (``faceprint.detect.detect``,
``faceprint.align.chip.extract_chips``, the default pack's chip geometry), and the chips'
mean and principal components span the space. A point ``z`` of the space (whitened: one
unit is one standard deviation of the photos along that component) is a chip.

The service never sees a chip: it detects and aligns faces itself. A chip is therefore
warped back into the face region of a real photo of someone else (the *carrier*, scaled so
its chip region is about chip-sized, so the service cuts nearly the chip it was given) with
a feathered edge, and the whole photo is sent. Whatever the detector and aligner make of
it is what gets measured.

The basis is derived from the photos and is cached in a work directory (never shipped).
"""

from __future__ import annotations

import hashlib
import io
import json
import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import numpy.typing as npt

from faceprint.errors import FaceprintError

PHOTO_SUFFIXES = (".jpg", ".jpeg", ".png")
#: Version of the cached face-space file layout (bump to rebuild old caches).
_LAYOUT = 1
#: Share of the chip side over which a pasted chip fades into the carrier photo.
FEATHER = 0.12

FloatArray = npt.NDArray[np.float32]


def folder_name(label: str) -> str:
    """A person's name as a comparable key: lower case, words joined by underscores
    (``George_Clooney``, ``george clooney`` and ``george_clooney`` are one person)."""
    return "_".join(label.strip().lower().replace("-", "_").split())


def person_photos(root: Path, exclude: Iterable[str] = ()) -> list[Path]:
    """Photos of ``root/NAME/*`` (sorted), without the people named in ``exclude``."""
    if not root.is_dir():
        raise FaceprintError(f"{root}: not a directory of NAME/photo folders")
    skip = {folder_name(n) for n in exclude}
    photos = [
        p
        for sub in sorted(root.iterdir())
        if sub.is_dir() and folder_name(sub.name) not in skip
        for p in sorted(sub.iterdir())
        if p.suffix.lower() in PHOTO_SUFFIXES
    ]
    if not photos:
        raise FaceprintError(f"{root}: no photos in NAME/ folders")
    return photos


@dataclass(frozen=True)
class FaceSpace:
    """Eigenfaces of chips: ``chip = mean + (z * scales) @ components``."""

    mean: FloatArray  # (D,) mean chip, D = size * size * 3
    components: FloatArray  # (k, D), orthonormal rows
    scales: FloatArray  # (k,) standard deviation of the photos along each component
    size: int
    padding: float
    photos: tuple[str, ...]  # the photos it was built from (relative to their root)
    faces: npt.NDArray[np.int32]  # faces found in each photo
    detector_score: FloatArray  # the subject face's detector score in each photo
    frontal_error: FloatArray  # landmark distance from the photos' mean layout (chip px)

    @property
    def dim(self) -> int:
        return int(self.components.shape[0])

    def chip(self, z: npt.ArrayLike) -> npt.NDArray[np.uint8]:
        """The chip of point ``z`` (uint8, size x size x 3)."""
        coeffs = np.asarray(z, dtype=np.float32) * self.scales
        flat = self.mean + coeffs @ self.components
        out = np.clip(np.rint(flat), 0, 255).astype(np.uint8)
        return out.reshape(self.size, self.size, 3)

    def project(self, chip: npt.NDArray[np.uint8]) -> FloatArray:
        """The point of the space nearest a chip (whitened coordinates)."""
        flat = chip.reshape(-1).astype(np.float32) - self.mean
        return np.asarray((self.components @ flat) / self.scales, dtype=np.float32)


def _key(root: Path, photos: Sequence[Path], components: int, detector: str | None) -> str:
    from faceprint.models.packs import DEFAULT_PACK

    h = hashlib.sha256()
    h.update(json.dumps([_LAYOUT, components, detector, DEFAULT_PACK.id]).encode())
    for p in photos:
        st = p.stat()
        h.update(f"{p.relative_to(root)}|{st.st_size}|{st.st_mtime_ns}\n".encode())
    return h.hexdigest()[:16]


def face_space(
    root: Path,
    photos: Sequence[Path],
    work: Path,
    *,
    components: int = 128,
    detector: str | None = None,
    model_dir: str | Path | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> FaceSpace:
    """The face space of ``photos`` (under ``root``), from ``work``'s cache or built now."""
    if components < 1 or components >= len(photos):
        raise FaceprintError(
            f"--components must be between 1 and the number of photos - 1 ({len(photos) - 1})"
        )
    from faceprint.detect import default_detector

    detector = detector or default_detector(model_dir)
    work.mkdir(parents=True, exist_ok=True)
    path = work / f"facespace-{_key(root, photos, components, detector)}.npz"
    if path.exists():
        with np.load(path) as f:
            return FaceSpace(
                f["mean"], f["components"], f["scales"], int(f["size"]), float(f["padding"]),
                tuple(str(s) for s in f["photos"]), f["faces"], f["detector_score"],
                f["frontal_error"],
            )  # fmt: skip
    space = _build(root, photos, components, detector, model_dir, progress)
    tmp = path.with_suffix(".tmp.npz")
    np.savez(
        tmp, mean=space.mean, components=space.components, scales=space.scales,
        size=space.size, padding=space.padding, photos=np.array(space.photos),
        faces=space.faces, detector_score=space.detector_score,
        frontal_error=space.frontal_error,
    )  # fmt: skip
    tmp.replace(path)
    return space


def _build(
    root: Path,
    photos: Sequence[Path],
    components: int,
    detector: str | None,
    model_dir: str | Path | None,
    progress: Callable[[int, int], None] | None,
) -> FaceSpace:
    from faceprint.align.chip import chip_transform, extract_chips
    from faceprint.detect import detect, subject
    from faceprint.io import load_image
    from faceprint.models.packs import DEFAULT_PACK

    size, padding = DEFAULT_PACK.chip_size, DEFAULT_PACK.chip_padding
    chips: list[npt.NDArray[np.uint8]] = []
    names: list[str] = []
    counts, scores, layouts = [], [], []
    for i, photo in enumerate(photos):
        if progress:
            progress(i, len(photos))
        try:
            image = load_image(photo)
        except FaceprintError:
            continue
        faces = detect(image, detector=detector, model_dir=model_dir)
        face = subject(faces, image.shape)
        if face is None:
            continue
        chips.append(extract_chips(image, [face.landmarks], size, padding)[0])
        m = chip_transform(face.landmarks, size, padding)
        marks = np.hstack([face.landmarks, np.ones((5, 1))]) @ m.T
        names.append(str(photo.relative_to(root)))
        counts.append(len(faces))
        scores.append(float(face.score))
        layouts.append(marks.reshape(-1))
    if len(chips) <= components:
        raise FaceprintError(
            f"only {len(chips)} of {len(photos)} photos have a face: too few for "
            f"{components} components"
        )
    data = np.stack(chips).reshape(len(chips), -1).astype(np.float32)
    mean = data.mean(axis=0)
    data -= mean
    # Eigenfaces through the (photos x photos) Gram matrix: far smaller than pixels^2.
    gram = data @ data.T
    values, vectors = np.linalg.eigh(gram.astype(np.float64))
    order = np.argsort(values)[::-1][:components]
    values, vectors = values[order], vectors[:, order]
    basis = (vectors.T.astype(np.float32) @ data) / np.sqrt(values)[:, None].astype(np.float32)
    scales = np.sqrt(values / (len(chips) - 1)).astype(np.float32)
    lay = np.stack(layouts)
    error = np.sqrt(((lay - lay.mean(axis=0)) ** 2).reshape(len(lay), 5, 2).sum(-1)).mean(-1)
    return FaceSpace(
        mean.astype(np.float32), basis.astype(np.float32), scales, size, padding, tuple(names),
        np.array(counts, np.int32), np.array(scores, np.float32), error.astype(np.float32),
    )  # fmt: skip


@dataclass(frozen=True)
class Carrier:
    """A real photo whose face region chips are pasted into."""

    photo: str
    image: npt.NDArray[np.uint8]  # the photo, scaled so its chip region is about chip-sized
    to_chip: npt.NDArray[np.float64]  # 2x3: image (x, y) -> chip (x, y)
    alpha: npt.NDArray[np.float32]  # image-sized: 1 where the chip replaces the photo

    def compose(self, chip: npt.NDArray[np.uint8]) -> npt.NDArray[np.uint8]:
        """The carrier photo with ``chip`` warped into its face region."""
        h, w = self.image.shape[:2]
        flags = cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP
        warped = cv2.warpAffine(chip, self.to_chip, (w, h), flags=flags)
        a = self.alpha[..., None]
        out = a * warped.astype(np.float32) + (1 - a) * self.image.astype(np.float32)
        return np.clip(np.rint(out), 0, 255).astype(np.uint8)


def feather_mask(size: int, feather: float = FEATHER) -> npt.NDArray[np.float32]:
    """1 inside the chip, falling smoothly to 0 over the outer ``feather`` of each side."""
    ramp = max(1.0, feather * size)
    idx = np.arange(size, dtype=np.float32)
    edge = np.minimum(idx, size - 1 - idx)
    one = np.clip(edge / ramp, 0.0, 1.0)
    one = 0.5 - 0.5 * np.cos(np.pi * one)
    return np.asarray(np.outer(one, one), dtype=np.float32)


def pick_carrier(space: FaceSpace, avoid: Iterable[str] = ()) -> str:
    """The most frontal one-face photo with a confident detection (not in ``avoid``)."""
    skip = set(avoid)
    ok = [
        i
        for i in range(len(space.photos))
        if space.faces[i] == 1 and space.detector_score[i] >= 0.9 and space.photos[i] not in skip
    ]
    if not ok:
        raise FaceprintError("no photo with exactly one clear face to carry the probes")
    return space.photos[min(ok, key=lambda i: float(space.frontal_error[i]))]


def carrier(
    root: Path,
    photo: str,
    space: FaceSpace,
    *,
    detector: str | None = None,
    model_dir: str | Path | None = None,
) -> Carrier:
    """The carrier made of ``root/photo``: scaled so one chip pixel is one photo pixel."""
    from faceprint.align.chip import chip_transform
    from faceprint.detect import detect, subject
    from faceprint.io import load_image

    image = load_image(root / photo)
    face = subject(detect(image, detector=detector, model_dir=model_dir), image.shape)
    if face is None:
        raise FaceprintError(f"{photo}: no face found for the carrier photo")
    m = chip_transform(face.landmarks, space.size, space.padding)
    zoom = math.sqrt(abs(float(np.linalg.det(m[:, :2]))))  # chip pixels per photo pixel
    h, w = image.shape[:2]
    big = cv2.resize(image, (round(w * zoom), round(h * zoom)), interpolation=cv2.INTER_CUBIC)
    m = chip_transform(np.asarray(face.landmarks) * zoom, space.size, space.padding)
    flags = cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP
    mask = feather_mask(space.size)
    alpha = cv2.warpAffine(mask, m, (big.shape[1], big.shape[0]), flags=flags)
    return Carrier(photo, np.ascontiguousarray(big), m, np.asarray(alpha, np.float32))


def png(image: npt.NDArray[np.uint8]) -> bytes:
    """Lossless PNG bytes of an RGB image (what the probes are sent as)."""
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(image).save(buf, format="PNG", compress_level=1)
    return buf.getvalue()
