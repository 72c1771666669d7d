"""What the routes share: the service state, the API-key dependency, uploads, and the
Gallery of a collection (the core does the work; routes only translate HTTP)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from fastapi import HTTPException, Request, UploadFile

from faceprint.errors import FaceprintError, GalleryError
from faceprint.gallery import Gallery
from faceprint.gallery.database import Database, check_collection
from faceprint.gallery.store import check_name
from faceprint.models.packs import Pack
from faceprint.service.auth import ApiKey, KeyRing
from faceprint.service.batching import MicroBatcher
from faceprint.service.defences import ProbeWatch, shown
from faceprint.types import Face, Image

#: Default upload limit per file (bytes); ``faceprint serve --max-upload`` changes it.
DEFAULT_MAX_UPLOAD = 10 * 1024 * 1024


@dataclass
class ServiceState:
    db: Database
    keys: KeyRing
    batcher: MicroBatcher
    max_upload: int = DEFAULT_MAX_UPLOAD
    detector: str | None = None
    model_dir: str | Path | None = None
    watch: ProbeWatch = field(default_factory=ProbeWatch)  # probing detection (one per app)


def state(request: Request) -> ServiceState:
    st: ServiceState = request.app.state.faceprint
    return st


def _token(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    if header.lower().startswith("bearer "):
        return header[7:].strip()
    return request.headers.get("x-api-key")


def client_address(request: Request) -> str:
    return request.client.host if request.client else ""


def api_key(request: Request) -> ApiKey:
    """FastAPI dependency: the caller's key (401 without one), after its rate limit."""
    keys = state(request).keys
    key = keys.authenticate(_token(request), client_address(request))
    request.state.key_id = key.id
    keys.throttle(key)
    return key


def valid(check: object, value: str) -> str:
    """A name from the URL or a form, checked (422 with the reason)."""
    try:
        return check(value)  # type: ignore[operator]
    except GalleryError as exc:
        raise HTTPException(422, str(exc)) from exc


def gallery(request: Request, key: ApiKey, name: str, role: str) -> Gallery:
    """The named collection's Gallery, once the key may use it for ``role`` (403), if it
    exists (404)."""
    name = valid(check_collection, name)
    request.state.collection = name
    key.require(role, name)
    st = state(request)

    def embedder(image: Image, faces: list[Face], pack: Pack) -> list[Face]:
        return st.batcher.embed(image, faces, pack=pack)

    return Gallery(
        st.db.collection(name), detector=st.detector, model_dir=st.model_dir, embedder=embedder
    )


def person_name(value: str) -> str:
    return valid(check_name, value)


def query(request: Request, key: ApiKey) -> None:
    """Spend one recognition query of the key's daily budget."""
    state(request).keys.spend_query(key)


def read_upload(request: Request, upload: UploadFile) -> tuple[bytes, str]:
    """An uploaded file's bytes (413 over the limit) and a display name."""
    limit = state(request).max_upload
    data = upload.file.read(limit + 1)
    label = (upload.filename or "upload")[:200]
    if not label.isprintable():
        label = "upload"
    if len(data) > limit:
        raise HTTPException(413, f"{label}: upload is larger than the {limit} byte limit")
    if not data:
        raise HTTPException(415, f"{label}: the upload is empty")
    return data, label


def score(key: ApiKey, value: float) -> float | None:
    """A similarity as the key may see it (its ``scores`` setting: 4 decimals, 2, or none)."""
    return shown(key.scores, value)


def labelled(exc: FaceprintError, label: str) -> FaceprintError:
    """The same error class, its message naming the upload instead of 'uploaded image'."""
    exc.args = (str(exc).replace("uploaded image", label, 1),)
    return exc
