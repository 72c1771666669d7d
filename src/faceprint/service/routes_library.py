"""The photo library over HTTP: people and clusters of a collection, face thumbnails, and
the corrections (name, merge, split, move, not, hide), by the same functions as the CLI
(:mod:`faceprint.library.people`). Photos are indexed by ``faceprint index`` on the server
(they live on its disk); the service shows and corrects what is stored.

Reading needs the ``recognise`` or ``enroll`` role on the collection, changes ``enroll``.
Ids are bounded whole numbers, names are checked like every person name; errors have the
service's one JSON shape (404 unknown face or cluster, 409 a decision that contradicts an
earlier one, 422 bad input, 403 scope).
"""

from __future__ import annotations

import hashlib
import io
from functools import lru_cache
from pathlib import Path as FilePath
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Path, Query, Request, Response
from fastapi.responses import HTMLResponse
from pydantic import BaseModel, Field

from faceprint.errors import AuthError, FaceprintError, NotFoundError
from faceprint.gallery.database import check_collection
from faceprint.library import people
from faceprint.library.store import Library
from faceprint.library.view import listing, photos_of
from faceprint.service.auth import ApiKey
from faceprint.service.deps import api_key, person_name, state, valid

router = APIRouter(tags=["library"])
Key = Annotated[ApiKey, Depends(api_key)]
PAGE = FilePath(__file__).with_name("static") / "people.html"
#: Largest id accepted (ids are 64-bit in the database).
MAX_ID = 2**62
Id = Annotated[int, Field(ge=0, le=MAX_ID)]
Name = Annotated[str, Field(min_length=1, max_length=400)]
#: Most faces one split may name.
MAX_FACES = 1000


class NameBody(BaseModel):
    cluster: Id
    name: Name


class MergeBody(BaseModel):
    a: Id
    b: Id


class SplitBody(BaseModel):
    cluster: Id
    faces: Annotated[list[Id], Field(min_length=1, max_length=MAX_FACES)]


class MoveBody(BaseModel):
    face: Id
    person: Name | None = None
    cluster: Id | None = None


class NotBody(BaseModel):
    face: Id
    person: Name


class HideBody(BaseModel):
    face: Id
    undo: bool = False


def _library(request: Request, key: ApiKey, name: str, *, change: bool) -> Library:
    name = valid(check_collection, name)
    request.state.collection = name
    if change:
        key.require("enroll", name)
    else:
        try:
            key.require("enroll", name)
        except AuthError:
            key.require("recognise", name)
    return Library(state(request).db.collection(name))


def _done(request: Request, done: people.Done) -> dict[str, Any]:
    request.state.event = done.message
    return {"message": done.message, "cluster": done.cluster}


@router.get("/people", include_in_schema=False)
def people_page() -> HTMLResponse:
    return HTMLResponse(PAGE.read_text(encoding="utf-8"))


@router.get("/collections/{name}/library/people")
def list_people(request: Request, key: Key, name: str) -> dict[str, Any]:
    """Named people and unnamed clusters with their faces, and the faces in no cluster."""
    lib = _library(request, key, name, change=False)
    with lib.db.reading() as tx:
        found = listing(lib, tx)
    request.state.result_size = len(found.people)
    return found.to_dict()


@router.get("/collections/{name}/library/photos")
def list_photos(
    request: Request,
    key: Key,
    name: str,
    person: Annotated[str, Query(max_length=400)],
    together: Annotated[str | None, Query(alias="with", max_length=400)] = None,
) -> dict[str, Any]:
    """Photos of a person (and ``with`` another), newest first."""
    lib = _library(request, key, name, change=False)
    who = person_name(person)
    other = None if together is None else person_name(together)
    with lib.db.reading() as tx:
        found = photos_of(lib, tx, who, other)
    request.state.result_size = len(found)
    return {"person": who, "with": other, "photos": found}


@router.get("/collections/{name}/library/faces/{face_id}/thumbnail")
def thumbnail(
    request: Request,
    key: Key,
    name: str,
    face_id: Annotated[int, Path(ge=0, le=MAX_ID)],
    size: Annotated[int, Query(ge=32, le=512)] = 160,
) -> Response:
    """A JPEG of the face (a square crop around its box, ``size`` pixels)."""
    lib = _library(request, key, name, change=False)
    with lib.db.reading() as tx:
        row = tx.one(
            "SELECT f.x0, f.y0, f.x1, f.y1, p.sha256, (SELECT MIN(l.path) FROM library_files l "
            "WHERE l.collection_id = p.collection_id AND l.sha256 = p.sha256) FROM "
            "library_faces f JOIN library_photos p ON p.id = f.photo_id "
            "WHERE f.collection_id = %s AND f.id = %s",
            (lib.cid, face_id),
        )
    if row is None:
        raise NotFoundError(f"no face {face_id} in the library of collection {name!r}")
    box = (float(row[0]), float(row[1]), float(row[2]), float(row[3]))
    data = _crop(str(row[5]), str(row[4]), box, size)
    return Response(
        data, media_type="image/jpeg", headers={"Cache-Control": "private, max-age=3600"}
    )


@lru_cache(maxsize=512)
def _crop(path: str, sha256: str, box: tuple[float, float, float, float], size: int) -> bytes:
    from PIL import Image

    from faceprint.io import decode, read_file

    try:
        raw = read_file(path)
        if hashlib.sha256(raw).hexdigest() != sha256:
            raise NotFoundError(f"{path} changed since it was indexed (run faceprint index)")
        decoded = decode(raw)
    except NotFoundError:
        raise
    except FaceprintError:
        raise NotFoundError("the photo of this face is no longer readable on the server") from None
    img = decoded.image
    x0, y0, x1, y1 = (v / decoded.scale for v in box)
    side = max(x1 - x0, y1 - y0) * 1.3
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    h, w = img.shape[:2]
    left, top = int(max(0, cx - side / 2)), int(max(0, cy - side / 2))
    right, bottom = int(min(w, cx + side / 2)), int(min(h, cy + side / 2))
    crop = Image.fromarray(img[top : max(bottom, top + 1), left : max(right, left + 1)])
    crop.thumbnail((size, size))
    buf = io.BytesIO()
    crop.save(buf, format="JPEG", quality=85)
    return buf.getvalue()


@router.post("/collections/{name}/library/name")
def name_cluster(request: Request, key: Key, name: str, body: NameBody) -> dict[str, Any]:
    """Name a cluster or rename a person (an existing name: merged into that person)."""
    lib = _library(request, key, name, change=True)
    return _done(request, people.name(lib, body.cluster, person_name(body.name)))


@router.post("/collections/{name}/library/merge")
def merge(request: Request, key: Key, name: str, body: MergeBody) -> dict[str, Any]:
    """Clusters (or people) ``a`` and ``b`` are one person."""
    lib = _library(request, key, name, change=True)
    return _done(request, people.merge(lib, body.a, body.b))


@router.post("/collections/{name}/library/split")
def split(request: Request, key: Key, name: str, body: SplitBody) -> dict[str, Any]:
    """These faces of the cluster are not the person the rest of it is."""
    lib = _library(request, key, name, change=True)
    return _done(request, people.split(lib, body.cluster, body.faces))


@router.post("/collections/{name}/library/move")
def move(request: Request, key: Key, name: str, body: MoveBody) -> dict[str, Any]:
    """This face is ``person`` (a name) or belongs with ``cluster``."""
    if (body.person is None) == (body.cluster is None):
        raise HTTPException(422, "give the person the face is, or the cluster, one of the two")
    lib = _library(request, key, name, change=True)
    who = None if body.person is None else person_name(body.person)
    return _done(request, people.move(lib, body.face, person=who, cluster=body.cluster))


@router.post("/collections/{name}/library/not")
def reject(request: Request, key: Key, name: str, body: NotBody) -> dict[str, Any]:
    """This face is not ``person``."""
    lib = _library(request, key, name, change=True)
    return _done(request, people.reject(lib, body.face, person_name(body.person)))


@router.post("/collections/{name}/library/hide")
def hide(request: Request, key: Key, name: str, body: HideBody) -> dict[str, Any]:
    """Never cluster or enroll this face (``undo``: show it again)."""
    lib = _library(request, key, name, change=True)
    return _done(request, people.hide(lib, body.face, undo=body.undo))
