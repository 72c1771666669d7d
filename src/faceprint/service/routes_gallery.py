"""Collections, people and their face templates (enrollment goes through the core's one
enrollment path: face choice, quality gate, duplicates, all or nothing)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, File, HTTPException, Path, Request, UploadFile

from faceprint.gallery.database import check_collection
from faceprint.service.auth import ApiKey
from faceprint.service.deps import api_key, gallery, person_name, read_upload, state, valid

router = APIRouter(tags=["gallery"])
Key = Annotated[ApiKey, Depends(api_key)]
#: Most photos one enrollment request may carry.
MAX_FILES = 10


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
    request: Request, key: Key, name: Annotated[str, Body(embed=True, max_length=200)]
) -> dict[str, str]:
    """Create a collection (admin keys, within their collection scope)."""
    name = valid(check_collection, name)
    request.state.collection = name
    key.require("admin", name)
    state(request).db.create_collection(name)
    return {"name": name}


@router.delete("/collections/{name}")
def delete_collection(request: Request, key: Key, name: str) -> dict[str, str]:
    name = valid(check_collection, name)
    request.state.collection = name
    key.require("admin", name)
    state(request).db.delete_collection(name)
    return {"deleted": name}


@router.get("/collections/{name}/people")
def list_people(request: Request, key: Key, name: str) -> dict[str, Any]:
    people = gallery(request, key, name, "enroll").people()
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
    """Enroll photos of a person (created if new): one template per photo, all or nothing;
    a photo already enrolled for this person is skipped."""
    g = gallery(request, key, name, "enroll")
    person = person_name(person)
    if len(files) > MAX_FILES:
        raise HTTPException(413, f"at most {MAX_FILES} photos per request")
    uploads = [read_upload(request, f) for f in files]
    added = g.enroll(person, *[data for data, _ in uploads], labels=[lb for _, lb in uploads])
    request.state.result_size = len(added.ids)
    return {"person": person, "templates": added.ids, "already_enrolled": len(added.already)}


@router.get("/collections/{name}/people/{person}/faces")
def list_faces(request: Request, key: Key, name: str, person: str) -> dict[str, Any]:
    found = gallery(request, key, name, "enroll").store.templates(person_name(person))
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
    request: Request,
    key: Key,
    name: str,
    person: str,
    template_id: Annotated[int, Path(ge=1, le=2**63 - 1)],  # ids are 64-bit
) -> dict[str, Any]:
    g = gallery(request, key, name, "enroll")
    g.store.remove_template(template_id, person=person_name(person))
    return {"deleted": template_id}


@router.delete("/collections/{name}/people/{person}")
def delete_person(request: Request, key: Key, name: str, person: str) -> dict[str, Any]:
    removed = gallery(request, key, name, "enroll").forget(person_name(person))
    return {"deleted": person, "templates": removed}
