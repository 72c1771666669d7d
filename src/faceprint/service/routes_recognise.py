"""detect, verify and identify: the recognition queries (each spends the daily budget)."""

from __future__ import annotations

from typing import Annotated, Any

import numpy as np
from fastapi import APIRouter, Depends, File, Form, HTTPException, Request, UploadFile

from faceprint.detect import subject
from faceprint.errors import NoFaceError
from faceprint.match.verify import compare, resolve_threshold
from faceprint.models.packs import DEFAULT_PACK
from faceprint.service.auth import ApiKey
from faceprint.service.deps import (
    api_key,
    collection,
    embed,
    find_faces,
    query,
    read_upload,
    score,
)
from faceprint.types import Face

router = APIRouter(tags=["recognition"])
Key = Annotated[ApiKey, Depends(api_key)]
#: Most candidates per face any key may ask for.
MAX_TOP_K = 10


def _box(face: Face) -> list[float]:
    return [round(v, 1) for v in face.box.as_list()]


@router.post("/detect")
def detect_faces(
    request: Request,
    key: Key,
    file: Annotated[UploadFile, File()],
    attributes: Annotated[
        str, Form(description="comma-separated: expression, liveness (none by default)")
    ] = "",
) -> dict[str, Any]:
    """Every face in a photo: box, detector score, landmarks, and attributes when asked."""
    key.require("recognise")
    query(request, key)
    wanted = [a.strip() for a in attributes.split(",") if a.strip()]
    image, _, _ = read_upload(request, file)
    faces = find_faces(request, image)
    if wanted and faces:
        from faceprint.attributes import annotate

        annotate(image, faces, wanted, model_dir=request.app.state.faceprint.model_dir)
    request.state.result_size = len(faces)
    return {
        "width": int(image.shape[1]),
        "height": int(image.shape[0]),
        "faces": [
            {
                "box": _box(f),
                "score": score(key, f.score),
                "landmarks": [[round(float(x), 1), round(float(y), 1)] for x, y in f.landmarks],
                **({"attributes": f.attributes} if wanted else {}),
            }
            for f in faces
        ],
    }


def _one_face(request: Request, upload: UploadFile) -> Face:
    image, _, label = read_upload(request, upload)
    face = subject(find_faces(request, image), image.shape)
    if face is None:
        raise NoFaceError(f"{label}: no face found")
    return embed(request, image, [face])[0]


@router.post("/verify")
def verify(
    request: Request,
    key: Key,
    a: Annotated[UploadFile, File(description="a photo (its subject face is used)")],
    b: Annotated[UploadFile | None, File(description="a second photo")] = None,
    collection_name: Annotated[str | None, Form(alias="collection")] = None,
    person: Annotated[str | None, Form()] = None,
    fmr: Annotated[float | None, Form()] = None,
) -> dict[str, Any]:
    """Same person? Photo ``a`` against photo ``b``, or against ``person`` in ``collection``."""
    key.require("recognise")
    if (b is None) == (person is None) or (person is not None and not collection_name):
        raise HTTPException(422, "give either photo 'b', or 'collection' and 'person'")
    store = collection(request, key, collection_name, "recognise") if collection_name else None
    if store is not None and person is not None:
        store.get(person)  # 404 before spending any work
    query(request, key)
    face_a = _one_face(request, a)
    chosen = resolve_threshold(None, fmr)
    threshold, target = chosen.similarity, chosen.fmr
    if b is not None:
        result = compare(face_a, _one_face(request, b), threshold=threshold)
        similarity, same = result.similarity, result.same
    else:
        assert store is not None and person is not None and face_a.embedding is not None
        templates = np.stack([t.embedding for t in store.templates(person)])
        similarity = float(np.max(templates @ face_a.embedding))
        same = similarity >= threshold
    request.state.result_size = 1
    return {
        "same": bool(same),
        "similarity": score(key, similarity),
        "threshold": score(key, threshold),
        "target_fmr": target,
        "box_a": _box(face_a),
    }


@router.post("/collections/{name}/identify")
def identify(
    request: Request,
    key: Key,
    name: str,
    file: Annotated[UploadFile, File()],
    top_k: Annotated[int, Form(ge=1, le=MAX_TOP_K)] = 1,
    fmr: Annotated[float | None, Form()] = None,
) -> dict[str, Any]:
    """Who is in this photo? Every face: best match (or null below threshold) and top-k."""
    store = collection(request, key, name, "recognise")
    query(request, key)
    image, _, _ = read_upload(request, file)
    faces = find_faces(request, image)
    if not faces:
        raise NoFaceError(f"{file.filename or 'upload'}: no face found")
    faces = embed(request, image, faces)
    value = store.setting("threshold")
    if fmr is None and value is not None:
        threshold = float(value)
    else:
        threshold = resolve_threshold(None, fmr).similarity
    pack = store.pack
    if pack is not None and pack != (faces[0].pack or DEFAULT_PACK.id):
        raise HTTPException(409, f"collection {name!r} holds templates of pack {pack!r}")
    probes = np.stack([f.embedding for f in faces if f.embedding is not None])
    hits = store.search(probes, k=top_k)
    out = []
    for face, cands in zip(faces, hits, strict=True):
        best = cands[0]
        out.append(
            {
                "box": _box(face),
                "name": best.name if best.score >= threshold else None,
                "similarity": score(key, best.score),
                "candidates": [
                    {"name": c.name, "similarity": score(key, c.score)} for c in cands[:top_k]
                ],
            }
        )
    request.state.result_size = len(out)
    return {
        "width": int(image.shape[1]),
        "height": int(image.shape[0]),
        "threshold": score(key, threshold),
        "faces": out,
    }
