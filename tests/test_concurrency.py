"""Threads at once, as in the HTTP service: some decode hostile and normal images, some
enroll, some identify, on one shared gallery. Every guard holds in every thread and every
result equals what one thread alone gets."""

from __future__ import annotations

import random
import warnings
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
from PIL import Image as PILImage

from faceprint.errors import ImageError
from faceprint.gallery import Gallery
from faceprint.io import decode
from tests import hostile
from tests.conftest import FACES

ENROLL = {"mark": "img13.jpg", "jack": "img16.jpg", "angelina": "img1.jpg", "jenn": "img54.jpg"}
PROBES = {"img14.jpg": "mark", "img17.jpg": "jack", "img2.jpg": "angelina", "img56.jpg": "jenn"}


@pytest.fixture(scope="module")
def bombs(tmp_path_factory: pytest.TempPathFactory) -> list[hostile.Case]:
    cases = hostile.build(tmp_path_factory.mktemp("hostile"), categories={"bomb", "filesystem"})
    wanted = {"png16_real_10000x10000", "png8_claims_50000x50000", "fifo_named_jpg", "sparse_3gb"}
    return [c for c in cases if c.name in wanted and not c.skip]


def test_decode_enroll_identify_at_once(bombs: list[hostile.Case], tmp_path: Path) -> None:
    # one thread alone: the reference
    with Gallery.open(tmp_path / "alone.db", create=True) as g:
        for name, photo in ENROLL.items():
            g.enroll(name, FACES / photo)
        alone = {p: [(r.name, round(r.similarity, 5)) for r in g.identify(FACES / p)]
                 for p in PROBES}  # fmt: skip
    normal = {p: decode(FACES / p).image for p in PROBES}
    pil_limit, filters = PILImage.MAX_IMAGE_PIXELS, list(warnings.filters)

    gallery = Gallery.open(tmp_path / "shared.db", create=True)
    jobs: list[tuple[str, object]] = [("enroll", item) for item in ENROLL.items()]
    jobs += [("identify", p) for p in PROBES] * 3
    jobs += [("decode", c) for c in bombs] * 3 + [("decode", p) for p in PROBES] * 2
    random.Random(1).shuffle(jobs)

    def run(job: tuple[str, object]) -> str:
        kind, what = job
        if kind == "enroll":
            name, photo = what  # type: ignore[misc]
            gallery.enroll(name, FACES / photo)
            return ""
        if kind == "identify":
            return str(what)  # identified after every enrollment, below
        if isinstance(what, hostile.Case):
            try:
                decode(what.path)
            except ImageError:
                return ""
            return f"{what.name} decoded in a thread"
        same = np.array_equal(decode(FACES / str(what)).image, normal[str(what)])
        return "" if same else f"{what} decoded differently"

    with ThreadPoolExecutor(8) as pool:
        problems = [r for r in pool.map(run, [j for j in jobs if j[0] != "identify"]) if r]
        # identification while decodes of bombs run in other threads
        mixed = [("identify", p) for p in PROBES] * 3 + [("decode", c) for c in bombs] * 2

        def identify_or_decode(job: tuple[str, object]) -> tuple[str | None, object]:
            if job[0] != "identify":
                return None, run(job)
            results = gallery.identify(FACES / str(job[1]))
            return str(job[1]), [(r.name, round(r.similarity, 5)) for r in results]

        found = list(pool.map(identify_or_decode, mixed))
    gallery.close()
    assert not problems, problems
    for photo, result in found:
        if photo is None:
            assert result == "", result
        else:
            assert result == alone[photo] and result[0][0] == PROBES[photo], (photo, result)
    assert pil_limit == PILImage.MAX_IMAGE_PIXELS and list(warnings.filters) == filters
