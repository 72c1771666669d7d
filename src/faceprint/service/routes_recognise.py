"""detect, verify and identify: the recognition queries (each spends the daily budget).
The decisions are the core's (Gallery.identify_faces, Gallery.verify, verify).

The score-leak defences (:mod:`faceprint.service.defences`) apply here: similarities are
shown as the key's ``scores`` setting allows; a non-admin key locked for probing is
refused (429) before any work, and every probe against a gallery person is remembered
(the one that locks the key is refused and audited as ``probing``); each query aimed at a
person (identify's top candidate, verify's claimed person) spends the key's per-target
budget (429 past it)."""

from __future__ import annotations

from typing import Annotated, Any

import numpy as np
from fastapi import APIRouter, Depends, File, Form, HTTPException, Request, UploadFile

from faceprint.detect import detect
from faceprint.detect.subject import subject
from faceprint.errors import AuthError, ImageError, NoFaceError
from faceprint.gallery import Gallery
from faceprint.io import load_image
from faceprint.match.verify import compare
from faceprint.service.auth import MAX_COUNT, ApiKey
from faceprint.service.defences import LOCK, MAX_CLIENT_FMR, spend_target
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
                "score": round(float(f.score), 4 if key.scores == "full" else 2),
                "landmarks": [[round(float(x), 1), round(float(y), 1)] for x, y in f.landmarks],
                **({"attributes": f.attributes} if wanted else {}),
            }
            for f in faces
        ],
    }


def _watch(request: Request, key: ApiKey) -> None:
    """429 while a non-admin key is locked for probing (admin keys are not watched)."""
    if not key.admin:
        state(request).watch.check(key.id)


def _fmr(key: ApiKey, fmr: float | None) -> float | None:
    """The FMR asked for; a non-admin key may not loosen the threshold past MAX_CLIENT_FMR."""
    if fmr is not None and fmr > MAX_CLIENT_FMR and not key.admin:
        raise AuthError(
            f"fmr {fmr:g} is looser than this API key may ask for (at most {MAX_CLIENT_FMR:g})",
            403,
        )
    return fmr


def _aimed(request: Request, key: ApiKey, collection: str, person: str) -> None:
    """Spend one query of the key's daily budget aimed at ``person`` (429 past it); an
    unlimited budget (admin keys) is not counted, so it costs no database write."""
    if key.target_quota >= MAX_COUNT:
        return
    spend_target(state(request).db, key.id, key.target_quota, collection, person)


def _record(request: Request, key: ApiKey, face: Face, person: str, accepted: bool) -> None:
    """Remember a probe of a non-admin key; the probe that locks the key is refused (429)
    and audited as ``probing``."""
    if key.admin or face.embedding is None:
        return
    vec = np.asarray(face.embedding, dtype=np.float32).reshape(-1)
    vec = vec / max(float(np.linalg.norm(vec)), 1e-12)
    if state(request).watch.record(key.id, vec, person, accepted):
        request.state.event = "probing"
        raise AuthError("this API key is locked: its queries look like probing", 429, LOCK)


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
    fmr = _fmr(key, fmr)
    if (b is None) == (person is None) or (person is not None and not collection_name):
        raise HTTPException(422, "give either photo 'b', or 'collection' and 'person'")
    if collection_name is not None and person is not None:
        g = gallery(request, key, collection_name, "recognise")
        name = person_name(person)
        g.get(name)  # 404 before spending any work
        _watch(request, key)
        query(request, key)
        _aimed(request, key, request.state.collection, name)
        face_a = _subject(request, g, a)
        result = g.verify(face_a, name, fmr=fmr)
        _record(request, key, face_a, name, bool(result.same))
    else:
        assert b is not None
        _watch(request, key)
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
    fmr = _fmr(key, fmr)
    _watch(request, key)
    query(request, key)
    image, label = _image(request, file)
    faces = _faces(request, g, image)
    if not faces:
        raise NoFaceError(f"{label}: no face found")
    results = g.identify_faces(faces, top_k=top_k, fmr=fmr)
    tops = [r.candidates[0].name if r.candidates else r.name for r in results]
    for person in dict.fromkeys(t for t in tops if t is not None):
        _aimed(request, key, request.state.collection, person)
    for r, top in zip(results, tops, strict=True):
        if top is not None:
            _record(request, key, r.face, top, r.name is not None)
    request.state.result_size = len(results)
    threshold = results[0].threshold
    decision_only = key.scores == "none"
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
                "candidates": []
                if decision_only
                else [
                    {"name": c.name, "similarity": score(key, c.similarity)} for c in r.candidates
                ],
            }
            for r in results
        ],
    }
