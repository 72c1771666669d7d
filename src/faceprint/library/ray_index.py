"""``faceprint index --ray``: detection and embedding of the batches on Ray actors (each
process holds its ONNX sessions), results stored here by the driver, batch by batch and
in order, exactly as without Ray (:func:`faceprint.library.index.store_batch`). Ray is
optional (``pip install 'faceprint[scale]'``)."""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence

from faceprint.errors import FaceprintError
from faceprint.gallery.batch import _ENV_KEYS
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
    try:
        import ray
        from ray.util import ActorPool
    except ImportError as exc:
        raise FaceprintError(
            "--ray needs Ray: pip install 'faceprint[scale]' (or leave out --ray)"
        ) from exc

    def run(batches: Sequence[Sequence[Job]]) -> Iterator[list[Analysed]]:
        if not batches:
            return
        started = False
        if not ray.is_initialized():
            try:
                if address:
                    ray.init(address=address, log_to_driver=False)
                else:
                    ray.init(include_dashboard=False, log_to_driver=False,
                             object_store_memory=256 * 1024 * 1024)  # fmt: skip
            except Exception as exc:  # ray raises ConnectionError, RuntimeError, ...
                where = address or "a local Ray cluster"
                raise FaceprintError(f"cannot start or reach {where}: {exc}") from exc
            started = True
        try:
            cpus = max(1, int(ray.cluster_resources().get("CPU", 1)))
            n = max(1, min(concurrency or cpus, cpus, len(batches)))
            env = {k: os.environ[k] for k in _ENV_KEYS if k in os.environ}
            threads = int(os.environ.get("FACEPRINT_THREADS", "0")) or max(1, cpus // n)
            worker = ray.remote(num_cpus=1)(IndexWorker)
            actors = [worker.remote(pack_id, detector, model_dir, env, threads) for _ in range(n)]
            pool = ActorPool(actors)
            yield from pool.map(lambda a, b: a.analyse.remote(list(b)), list(batches))
        finally:
            if started:
                ray.shutdown()

    return run
