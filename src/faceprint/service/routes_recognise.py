"""detect, verify and identify: the recognition queries (each spends the daily budget).
The decisions are the core's (Gallery.identify_faces, Gallery.verify, verify)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, File, Form, HTTPException, Request, UploadFile

from faceprint.detect import detect
from faceprint.detect.subject import subject
from faceprint.errors import ImageError, NoFaceError
from faceprint.gallery import Gallery
from faceprint.io import load_image
from faceprint.match.verify import compare
from faceprint.service.auth import ApiKey
from faceprint.service.deps import (
    api_key,
    gallery,
    labelled,
    person_name,
    query,
    read_upload,
    score,
    state,
)  # fmt: skip
from faceprint.types import Face, Image

router = APIRouter(tags=["recognition"])
Key = Annotated[ApiKey, Depends(api_key)]
#: Most candidates per face any key may ask for.
MAX_TOP_K = 10
#: What ``attributes`` may ask for on /detect.
ATTRIBUTES = ("expression", "liveness")


def _box(face: Face) -> list[float]:
    return [round(v, 1) for v in face.box.as_list()]


def _image(request: Request, upload: UploadFile) -> tuple[Image, str]:
    data, label = read_upload(request, upload)
    try:
        return load_image(data), label
    except ImageError as exc:
        raise labelled(exc, label) from None


def _faces(request: Request, g: Gallery | None, image: Image) -> list[Face]:
    """Every face of the image, embedded (micro-batched) with the gallery's pack."""
    st = state(request)
    if g is not None:
        return g.faces(image)
    faces = detect(image, detector=st.detector, model_dir=st.model_dir)
    return st.batcher.embed(image, faces)


@router.post("/detect")
def detect_faces(
    request: Request,
    key: Key,
    file: Annotated[UploadFile, File()],
    attributes: Annotated[
        str, Form(max_length=100, description="comma-separated: expression, liveness")
    ] = "",
) -> dict[str, Any]:
    """Every face in a photo: box, detector probability, landmarks, attributes when asked."""
    key.require("recognise")
    wanted = [a.strip() for a in attributes.split(",") if a.strip()]
    for a in wanted:
        if a not in ATTRIBUTES:
            choose = ", ".join(ATTRIBUTES)
            raise HTTPException(422, f"unknown attribute {a[:40]!r}; choose {choose}")
    query(request, key)
    image, _ = _image(request, file)
    st = state(request)
    faces = detect(image, detector=st.detector, model_dir=st.model_dir)
    if wanted and faces:
        from faceprint.attributes import annotate

        annotate(image, faces, wanted, model_dir=st.model_dir)
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


def _subject(request: Request, g: Gallery | None, upload: UploadFile) -> Face:
    image, label = _image(request, upload)
    face = subject(_faces(request, g, image), image.shape)
    if face is None:
        raise NoFaceError(f"{label}: no face found")
    return face


@router.post("/verify")
def verify(
    request: Request,
    key: Key,
    a: Annotated[UploadFile, File(description="a photo (its subject face is used)")],
    b: Annotated[UploadFile | None, File(description="a second photo")] = None,
    collection_name: Annotated[str | None, Form(alias="collection", max_length=200)] = None,
    person: Annotated[str | None, Form(max_length=400)] = None,
    fmr: Annotated[float | None, Form(gt=0, lt=1)] = None,
) -> dict[str, Any]:
    """Same person? Photo ``a`` against photo ``b``, or against ``person`` in ``collection``."""
    key.require("recognise")
    if (b is None) == (person is None) or (person is not None and not collection_name):
        raise HTTPException(422, "give either photo 'b', or 'collection' and 'person'")
    if collection_name is not None and person is not None:
        g = gallery(request, key, collection_name, "recognise")
        name = person_name(person)
        g.get(name)  # 404 before spending any work
        query(request, key)
        face_a = _subject(request, g, a)
        result = g.verify(face_a, name, fmr=fmr)
    else:
        assert b is not None
        query(request, key)
        face_a = _subject(request, None, a)
        result = compare(face_a, _subject(request, None, b), fmr=fmr)
    request.state.result_size = 1
    out: dict[str, Any] = {
        "same": bool(result.same),
        "similarity": score(key, result.similarity),
        "threshold": score(key, result.threshold.similarity),
        "fmr": result.threshold.fmr,
        "threshold_rule": result.threshold.how,
        "box_a": _box(face_a),
    }
    return out


@router.post("/collections/{name}/identify")
def identify(
    request: Request,
    key: Key,
    name: str,
    file: Annotated[UploadFile, File()],
    top_k: Annotated[int, Form(ge=1, le=MAX_TOP_K)] = 1,
    fmr: Annotated[float | None, Form(gt=0, lt=1)] = None,
) -> dict[str, Any]:
    """Who is in this photo? Every face: best match (or null below threshold) and top-k."""
    g = gallery(request, key, name, "recognise")
    query(request, key)
    image, label = _image(request, file)
    faces = _faces(request, g, image)
    if not faces:
        raise NoFaceError(f"{label}: no face found")
    results = g.identify_faces(faces, top_k=top_k, fmr=fmr)
    request.state.result_size = len(results)
    threshold = results[0].threshold
    return {
        "width": int(image.shape[1]),
        "height": int(image.shape[0]),
        "threshold": score(key, threshold.similarity),
        "fmr": threshold.fmr,
        "faces": [
            {
                "box": _box(r.face),
                "name": r.name,
                "similarity": score(key, r.similarity),
                "candidates": [
                    {"name": c.name, "similarity": score(key, c.similarity)} for c in r.candidates
                ],
            }
            for r in results
        ],
    }
