"""``faceprint index --ray``: detection and embedding of the batches on Ray actors (each
process holds its ONNX sessions), results stored here by the driver, batch by batch and
in order, exactly as without Ray (:func:`faceprint.library.index.store_batch`). Ray is
optional (``pip install 'faceprint[scale]'``)."""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence

from faceprint.gallery.batch import import_ray, ray_session
from faceprint.library.index import Analysed, Analyser, Job, analyse
from faceprint.models.packs import pack


class IndexWorker:
    """A Ray actor analysing batches of photos (faceprint.library.index.analyse)."""

    def __init__(self, pack_id: str, detector: str | None, model_dir: str | None,
                 env: dict[str, str], threads: int) -> None:  # fmt: skip
        os.environ.update(env)
        os.environ.setdefault("FACEPRINT_THREADS", str(threads))
        self.pack = pack(pack_id)
        self.detector = detector
        self.model_dir = model_dir

    def analyse(self, jobs: list[Job]) -> list[Analysed]:
        return analyse(jobs, self.pack, self.detector, self.model_dir)


def ray_analyser(
    pack_id: str,
    detector: str | None = None,
    model_dir: str | None = None,
    *,
    address: str | None = None,
    concurrency: int | None = None,
) -> Analyser:
    """An analyser for :func:`faceprint.library.index.index` running on the Ray cluster at
    ``address`` (or the one connected, or a local one started and stopped here)."""
    import_ray()
    from ray.util import ActorPool

    def run(batches: Sequence[Sequence[Job]]) -> Iterator[list[Analysed]]:
        if not batches:
            return
        with ray_session(address, len(batches), concurrency) as session:
            worker = session.ray.remote(num_cpus=1)(IndexWorker)
            actors = [
                worker.remote(pack_id, detector, model_dir, session.env, session.threads)
                for _ in range(session.actors)
            ]
            pool = ActorPool(actors)
            yield from pool.map(lambda a, b: a.analyse.remote(list(b)), list(batches))

    return run
