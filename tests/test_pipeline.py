"""End to end on real photos: detect -> align -> embed -> verify / enroll / identify."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

import faceprint
from faceprint import Gallery, NoFaceError
from faceprint.errors import GalleryError
from faceprint.io import load_image
from faceprint.models.packs import DEFAULT_PACK

from .conftest import FACES


@pytest.fixture(scope="module")
def embedded() -> dict[str, faceprint.Face]:
    """The largest face of each labelled photo, embedded once."""
    names = [
        "img1.jpg", "img2.jpg", "img4.jpg", "img10.jpg", "img11.jpg",
        "img13.jpg", "img14.jpg", "img15.jpg", "img16.jpg", "img17.jpg",
        "img18.jpg", "img19.jpg",
    ]  # fmt: skip
    out = {}
    for name in names:
        faces = faceprint.embed_faces(FACES / name)
        assert faces, f"no face found in {name}"
        out[name] = faces[0]
    return out


def test_face_record(embedded: dict[str, faceprint.Face]) -> None:
    face = embedded["img1.jpg"]
    assert face.embedding is not None and face.embedding.dtype == np.float32
    assert face.embedding.shape == (128,)
    assert np.linalg.norm(face.embedding) == pytest.approx(1.0, abs=1e-5)
    assert face.landmarks.shape == (5, 2)
    assert face.pack == DEFAULT_PACK.id and face.detector in ("mmod", "yunet")
    assert face.box.width > 100 and face.score > 0


def test_embedding_reproduces_dlib(
    embedded: dict[str, faceprint.Face], reference: dict[str, Any]
) -> None:
    """Our whole pipeline (box, landmarks, chip, ResNet) against dlib's own descriptor."""
    for name, face in embedded.items():
        want = np.asarray(reference[name]["faces"][0]["descriptor"], np.float64)
        assert face.embedding is not None
        cos = float(face.embedding @ want / np.linalg.norm(want))
        assert cos >= 0.99, (name, cos)


def test_verify_same_and_different(embedded: dict[str, faceprint.Face]) -> None:
    same = faceprint.verify(embedded["img1.jpg"], embedded["img2.jpg"])
    assert same.same and same.similarity > same.threshold.similarity
    diff = faceprint.verify(embedded["img1.jpg"], embedded["img13.jpg"])
    assert not diff.same and diff.similarity < diff.threshold.similarity
    assert same.threshold.fmr == pytest.approx(1e-3)
    explicit = faceprint.verify(embedded["img1.jpg"], embedded["img13.jpg"], threshold=-1.0)
    assert explicit.same and explicit.threshold.similarity == -1.0


def test_verify_paths_and_no_face(tmp_path: Path) -> None:
    result = faceprint.verify(FACES / "img13.jpg", FACES / "img14.jpg")
    assert result.same
    blank = tmp_path / "blank.png"
    from PIL import Image

    Image.new("RGB", (400, 300), (120, 130, 140)).save(blank)
    with pytest.raises(NoFaceError, match="no face"):
        faceprint.verify(blank, FACES / "img14.jpg")


def test_gallery_enroll_identify_forget(
    tmp_path: Path, embedded: dict[str, faceprint.Face]
) -> None:
    path = tmp_path / "people.db"
    with Gallery.open(path, create=True) as g:
        g.enroll("angelina", embedded["img1.jpg"], embedded["img2.jpg"])
        g.enroll("mark", embedded["img13.jpg"], embedded["img14.jpg"])
        g.enroll("jack", embedded["img16.jpg"])
        assert [(p.name, p.templates) for p in g.people()] == [
            ("angelina", 2), ("jack", 1), ("mark", 2),
        ]  # fmt: skip
        for probe, want in [("img10.jpg", "angelina"), ("img15.jpg", "mark"),
                            ("img17.jpg", "jack"), ("img18.jpg", None)]:  # fmt: skip
            (result,) = g.identify_faces([embedded[probe]], top_k=3)
            assert result.name == want, (probe, result)
            assert len(result.candidates) == 3
        assert g.forget("jack") == 1
        (result,) = g.identify_faces([embedded["img17.jpg"]])
        assert result.name is None


def test_gallery_enroll_from_photo_files(tmp_path: Path) -> None:
    with Gallery.open(tmp_path / "g.db", create=True) as g:
        added = g.enroll("mark", FACES / "img13.jpg", load_image(FACES / "img14.jpg"))
        assert len(added.ids) == 2
        again = g.enroll("mark", FACES / "img13.jpg")  # the same file again: skipped
        assert again.ids == [] and len(again.already) == 1
        results = g.identify(FACES / "img15.jpg")
        assert [r.name for r in results] == ["mark"]
        # one bad photo: nothing of the call is stored
        with pytest.raises(faceprint.ImageError):
            g.enroll("mark", FACES / "img15.jpg", FACES / "missing.jpg")
        assert g.people()[0].templates == 2


def test_group_photo_is_not_enrolled(tmp_path: Path) -> None:
    path = tmp_path / "g.db"
    with (
        Gallery.open(path, create=True) as g,
        pytest.raises(GalleryError, match="faces of similar"),
    ):
        g.enroll("someone", FACES / "couple.jpg")
    with Gallery.open(tmp_path / "g.db", create=True) as g:
        assert len(g) == 0


def test_batched_embedding_equals_one_by_one() -> None:
    from faceprint.embed import embed as embed_faces
    from faceprint.embed import embed_many

    image = load_image(FACES / "img59.jpg")  # two faces
    faces = faceprint.detect_faces(image)
    assert len(faces) >= 2
    together = [f.embedding for f in embed_faces(image, faces)]
    alone = [embed_many([(image, [f])])[0][0].embedding for f in faceprint.detect_faces(image)]
    for a, b in zip(together, alone, strict=True):
        assert a is not None and b is not None
        assert float(a @ b) > 0.9999


def test_threads_share_one_engine_and_agree() -> None:
    """Several threads embedding at once get the same templates as one thread alone."""
    from concurrent.futures import ThreadPoolExecutor

    from faceprint import runtime

    names = ["img1.jpg", "img13.jpg", "img16.jpg", "img20.jpg", "img24.jpg", "img38.jpg"]
    images = [load_image(FACES / n) for n in names]
    alone = [faceprint.embed_faces(img)[0].embedding for img in images]
    sessions_before = len(runtime._sessions)
    with ThreadPoolExecutor(max_workers=6) as pool:
        together = list(pool.map(lambda img: faceprint.embed_faces(img)[0].embedding, images * 2))
    assert len(runtime._sessions) == sessions_before  # no new sessions per thread
    for i, vec in enumerate(together):
        ref = alone[i % len(names)]
        assert vec is not None and ref is not None
        assert float(vec @ ref) > 0.99999
