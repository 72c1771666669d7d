"""What the routes share: the service state, the API-key dependency, uploads and faces."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from fastapi import HTTPException, Request, UploadFile

from faceprint.detect import detect
from faceprint.errors import ImageError
from faceprint.gallery.postgres import PostgresDatabase, PostgresGallery
from faceprint.io import load_image
from faceprint.service.auth import ApiKey, KeyRing
from faceprint.service.batching import MicroBatcher
from faceprint.types import Face, Image

#: Default upload limit per file (bytes); ``faceprint serve --max-upload`` changes it.
DEFAULT_MAX_UPLOAD = 10 * 1024 * 1024


@dataclass
class ServiceState:
    db: PostgresDatabase
    keys: KeyRing
    batcher: MicroBatcher
    max_upload: int = DEFAULT_MAX_UPLOAD
    detector: str | None = None
    model_dir: str | Path | None = None


def state(request: Request) -> ServiceState:
    st: ServiceState = request.app.state.faceprint
    return st


def _token(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    if header.lower().startswith("bearer "):
        return header[7:].strip()
    return request.headers.get("x-api-key")


def api_key(request: Request) -> ApiKey:
    """FastAPI dependency: the caller's key (401 without one), after its rate limit."""
    keys = state(request).keys
    key = keys.authenticate(_token(request))
    request.state.key_id = key.id
    keys.throttle(key)
    return key


def collection(request: Request, key: ApiKey, name: str, role: str) -> PostgresGallery:
    """The named collection, once the key may use it for ``role`` (403), if it exists (404)."""
    request.state.collection = name
    key.require(role, name)
    return state(request).db.collection(name)


def query(request: Request, key: ApiKey) -> None:
    """Spend one recognition query of the key's daily budget."""
    state(request).keys.spend_query(key)


def read_upload(request: Request, upload: UploadFile) -> tuple[Image, str, str]:
    """Decode an uploaded image: (RGB array, sha256 of the bytes, display name)."""
    limit = state(request).max_upload
    data = upload.file.read(limit + 1)
    label = upload.filename or "upload"
    if len(data) > limit:
        raise HTTPException(413, f"{label}: upload is larger than the {limit} byte limit")
    try:
        image = load_image(data)
    except ImageError as exc:
        raise HTTPException(415, f"{label}: {str(exc).removeprefix('uploaded image: ')}") from exc
    return image, hashlib.sha256(data).hexdigest(), label


def find_faces(request: Request, image: Image) -> list[Face]:
    """Detect faces (largest first) without embedding them."""
    st = state(request)
    return detect(image, detector=st.detector, model_dir=st.model_dir)


def embed(request: Request, image: Image, faces: list[Face]) -> list[Face]:
    """Embed faces through the shared micro-batcher."""
    return state(request).batcher.embed(image, faces)


def score(key: ApiKey, value: float) -> float:
    """Scores as a key may see them: 4 decimals for admins, 2 for everyone else."""
    return round(float(value), 4 if key.admin else 2)
