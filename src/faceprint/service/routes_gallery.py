"""Collections, people and their face templates."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, File, HTTPException, Request, UploadFile

from faceprint.errors import GalleryError
from faceprint.gallery.gallery import enrollment_face
from faceprint.gallery.postgres import _check_collection
from faceprint.gallery.sqlite import check_name
from faceprint.gallery.store import NotFoundError
from faceprint.models.packs import DEFAULT_PACK
from faceprint.service.auth import ApiKey
from faceprint.service.deps import api_key, collection, embed, find_faces, read_upload, state

router = APIRouter(tags=["gallery"])
Key = Annotated[ApiKey, Depends(api_key)]
#: Most photos one enrollment request may carry.
MAX_FILES = 10


def _valid(check: Callable[[str], str], value: str) -> str:
    try:
        return check(value)
    except GalleryError as exc:
        raise HTTPException(422, str(exc)) from exc


@router.get("/collections")
def list_collections(request: Request, key: Key) -> dict[str, Any]:
    """The collections this key may use."""
    found = [c for c in state(request).db.collections() if key.can_see(c.name)]
    request.state.result_size = len(found)
    return {
        "collections": [
            {"name": c.name, "people": c.people, "templates": c.templates} for c in found
        ]
    }


@router.post("/collections", status_code=201)
def create_collection(
    request: Request, key: Key, name: Annotated[str, Body(embed=True)]
) -> dict[str, str]:
    request.state.collection = name
    key.require("admin")
    name = _valid(_check_collection, name)
    state(request).db.create_collection(name)
    return {"name": name}


@router.delete("/collections/{name}")
def delete_collection(request: Request, key: Key, name: str) -> dict[str, str]:
    request.state.collection = name
    key.require("admin", name)
    state(request).db.delete_collection(name)
    return {"deleted": name}


@router.get("/collections/{name}/people")
def list_people(request: Request, key: Key, name: str) -> dict[str, Any]:
    store = collection(request, key, name, "enroll")
    people = store.people()
    request.state.result_size = len(people)
    return {
        "people": [
            {"name": p.name, "templates": p.templates, "metadata": p.metadata} for p in people
        ]
    }


@router.post("/collections/{name}/people/{person}/faces", status_code=201)
def add_faces(
    request: Request,
    key: Key,
    name: str,
    person: str,
    files: Annotated[list[UploadFile], File(description="photos with this person's face")],
) -> dict[str, Any]:
    """Enroll photos of a person (created if new): one template per photo, all or nothing."""
    store = collection(request, key, name, "enroll")
    person = _valid(check_name, person)
    if len(files) > MAX_FILES:
        raise HTTPException(413, f"at most {MAX_FILES} photos per request")
    chosen = []
    for upload in files:
        image, digest, label = read_upload(request, upload)
        face = enrollment_face(find_faces(request, image), label)
        chosen.append((image, face, digest))
    faces = [embed(request, image, [face])[0] for image, face, _ in chosen]
    ids = store.add_templates(
        person,
        [f.embedding for f in faces if f.embedding is not None],
        pack=faces[0].pack or DEFAULT_PACK.id,
        image_sha256=[digest for _, _, digest in chosen],
        quality=[f.quality for f in faces],
    )
    request.state.result_size = len(ids)
    return {
        "person": person,
        "templates": ids,
        "faces": [{"box": [round(v, 1) for v in f.box.as_list()]} for f in faces],
    }


@router.get("/collections/{name}/people/{person}/faces")
def list_faces(request: Request, key: Key, name: str, person: str) -> dict[str, Any]:
    store = collection(request, key, name, "enroll")
    found = store.templates(person)
    request.state.result_size = len(found)
    return {
        "person": person,
        "templates": [
            {"id": t.id, "pack": t.pack, "image_sha256": t.image_sha256, "created": t.created}
            for t in found
        ],
    }


@router.delete("/collections/{name}/people/{person}/faces/{template_id}")
def delete_face(
    request: Request, key: Key, name: str, person: str, template_id: int
) -> dict[str, Any]:
    store = collection(request, key, name, "enroll")
    if template_id not in {t.id for t in store.templates(person)}:
        raise NotFoundError(f"person {person!r} has no template {template_id}")
    store.remove_template(template_id)
    return {"deleted": template_id}


@router.delete("/collections/{name}/people/{person}")
def delete_person(request: Request, key: Key, name: str, person: str) -> dict[str, Any]:
    store = collection(request, key, name, "enroll")
    removed = store.remove(person)
    return {"deleted": person, "templates": removed}
