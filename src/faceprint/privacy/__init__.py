"""Privacy: encrypted 1:N search (CKKS through TenSEAL) and erasure of a person.

    create_keys(keydir)                                  key holder: a new key set
    encrypt_gallery(gallery_db, keydir, out)             key holder: G.enc from a gallery
    identify_encrypted(photo, out, keydir, encrypted_probe=False) -> Decision
    forget_encrypted(out, keydir, name)                  key holder: erase a person

The roles are also separate objects: ``KeyHolder``, ``MatchingServer``, ``CaptureClient``.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np

from faceprint.errors import GalleryError, NoFaceError
from faceprint.privacy.encrypted_gallery import (
    CaptureClient,
    Decision,
    EncryptedGallery,
    KeyHolder,
    MatchingServer,
)
from faceprint.privacy.he import He, KeyFileError, create_keys


def encrypt_gallery(gallery: str | Path, keys: str | Path, out: str | Path) -> EncryptedGallery:
    """Encrypt every template of a SQLite gallery into the encrypted gallery ``out``."""
    from faceprint.gallery.gallery import Gallery

    with Gallery.open(gallery, read_only=True) as g:
        templates = g.store.templates()
        if not templates:
            raise GalleryError(f"{gallery}: the gallery is empty; enroll someone first")
        threshold = g.threshold.similarity
    return KeyHolder(keys).encrypt_gallery(
        out,
        np.stack([t.embedding for t in templates]),
        [t.name for t in templates],
        [t.id for t in templates],
        pack=templates[0].pack,
        threshold=threshold,
        quality=[t.quality for t in templates],
    )


def identify_encrypted(
    photo: str | Path | np.ndarray,
    enc: str | Path,
    keys: str | Path,
    *,
    encrypted_probe: bool = False,
    threshold: float | None = None,
) -> Decision:
    """The decision for the subject face of a photo, playing all three roles in turn."""
    from faceprint import embed_faces

    he = He()
    server = MatchingServer(enc, keys, he)
    faces = embed_faces(photo)
    face = faces[0] if faces else None
    if face is None or face.embedding is None:
        raise NoFaceError(f"{photo if isinstance(photo, str | Path) else 'image'}: no face found")
    if face.pack != server.gallery.pack:
        raise GalleryError(f"probe of pack {face.pack!r}, gallery of {server.gallery.pack!r}")
    if encrypted_probe:
        blocks = server.score_encrypted(CaptureClient(keys, he).encrypt_probe(face.embedding))
    else:
        blocks = server.score(face.embedding)
    return KeyHolder(keys, he).decide(server.gallery, blocks, threshold)


def forget_encrypted(enc: str | Path, keys: str | Path, name: str) -> int:
    """Erase a person from an encrypted gallery; returns how many templates went."""
    return KeyHolder(keys).forget(enc, name)


def plan_forget_encrypted(enc: str | Path, keys: str | Path, name: str) -> Callable[[], int]:
    """Check erasing a person from an encrypted gallery; the returned call erases."""
    return KeyHolder(keys).plan_forget(enc, name)


__all__ = [
    "CaptureClient",
    "Decision",
    "EncryptedGallery",
    "KeyFileError",
    "KeyHolder",
    "MatchingServer",
    "create_keys",
    "encrypt_gallery",
    "forget_encrypted",
    "plan_forget_encrypted",
    "identify_encrypted",
]
