"""Batch enrollment on Ray Data, for photo collections too big for one machine.

The rules are those of :mod:`faceprint.gallery.enroll` (the workers run its ``prepare``:
face choice, quality, liveness, embedding); the driver stores each batch with its
``write`` (one transaction per person per batch, photos already enrolled skipped). Photos
whose content hash is already in the gallery are skipped before any work, so an
interrupted run is resumed by running it again.

Ray is optional (``pip install 'faceprint[scale]'``).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from faceprint.errors import FaceprintError
from faceprint.gallery import enroll as enrollment
from faceprint.gallery.store import Store
from faceprint.models.packs import Pack, pack
from faceprint.types import Box, Face

#: Environment passed on to the Ray workers (which may run on another machine).
_ENV_KEYS = (
    "FACEPRINT_CACHE_DIR",
    "FACEPRINT_MODEL_DIR",
    "FACEPRINT_OFFLINE",
    "FACEPRINT_DETECTOR",
    "FACEPRINT_MAX_PIXELS",
    "FACEPRINT_DECODE_BUDGET",
    "FACEPRINT_MAX_FILE_BYTES",
    "FACEPRINT_MAX_DECODES",
    "FACEPRINT_PROVIDERS",
)


@dataclass(frozen=True)
class RaySession:
    ray: Any  # the ray module, connected
    actors: int  # workers to start: one CPU each, at most one per piece of work
    env: dict[str, str]  # FACEPRINT_* settings for the workers
    threads: int  # ONNX Runtime threads per worker


def import_ray() -> Any:
    try:
        import ray
    except ImportError as exc:
        raise FaceprintError(
            "--ray needs Ray: pip install 'faceprint[scale]' (or leave out --ray)"
        ) from exc
    return ray


@contextmanager
def ray_session(address: str | None, work: int, concurrency: int | None) -> Iterator[RaySession]:
    """Ray on the cluster at ``address``, the one already connected, or a local one started
    (and stopped) here, sized for ``work`` pieces of work (enrollment and indexing)."""
    ray = import_ray()
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
        actors = max(1, min(concurrency or cpus, cpus, work))
        env = {k: os.environ[k] for k in _ENV_KEYS if k in os.environ}
        threads = int(os.environ.get("FACEPRINT_THREADS", "0")) or max(1, cpus // actors)
        yield RaySession(ray, actors, env, threads)
    finally:
        if started:
            ray.shutdown()


class EnrollWorker:
    """Ray Data actor: its process holds the ONNX sessions; called once per batch."""

    def __init__(self, pack_id: str, rules: enrollment.Rules, env: dict[str, str], threads: int):
        os.environ.update(env)
        os.environ.setdefault("FACEPRINT_THREADS", str(threads))
        self.pack = pack(pack_id)
        self.rules = rules

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        paths = [str(p) for p in batch["path"]]
        done = enrollment.prepare([(p, Path(p)) for p in paths], self.pack, self.rules)
        dim = self.pack.dim
        emb = np.zeros((len(done), dim), np.float32)
        sha, quality, error = [], [], []
        for i, d in enumerate(done):
            if isinstance(d, enrollment.Prepared) and d.face.embedding is not None:
                emb[i] = d.face.embedding
                sha.append(d.sha256 or "")
                quality.append(np.nan if d.face.quality is None else d.face.quality)
                error.append("")
            else:
                sha.append("")
                quality.append(np.nan)
                error.append(str(d.error) if isinstance(d, enrollment.Failed) else "no template")
        return {
            "name": batch["name"],
            "path": np.array(paths, dtype=object),
            "sha256": np.array(sha, dtype=object),
            "embedding": emb,
            "quality": np.array(quality, np.float64),
            "error": np.array(error, dtype=object),
        }


def _prepared(batch: dict[str, np.ndarray], of: Pack) -> list[tuple[str, object]]:
    """A result batch back into (name, Prepared | Failed)."""
    out: list[tuple[str, object]] = []
    for i in range(len(batch["path"])):
        name, path, error = str(batch["name"][i]), str(batch["path"][i]), str(batch["error"][i])
        if error:
            out.append((name, enrollment.Failed(path, FaceprintError(error))))
            continue
        q = float(batch["quality"][i])
        face = Face(
            Box(0, 0, 0, 0), 1.0, np.zeros((5, 2), np.float32),
            embedding=np.asarray(batch["embedding"][i], np.float32), pack=of.id,
            quality=None if np.isnan(q) else q,
        )  # fmt: skip
        out.append((name, enrollment.Prepared(path, str(batch["sha256"][i]), face)))
    return out


def enroll_ray(
    store: Store,
    jobs: Iterable[tuple[str, Path]],
    rules: enrollment.Rules,
    *,
    address: str | None = None,
    batch_size: int = enrollment.BATCH_SIZE,
    concurrency: int | None = None,
    progress: Callable[[int], None] | None = None,
) -> enrollment.BatchReport:
    """Enroll on Ray Data: the cluster at ``address`` (or the one already connected), or
    a local one started (and stopped) here."""
    import_ray()
    import ray.data

    of = pack(store.pack)
    report = enrollment.BatchReport()
    todo = enrollment.pending(store, jobs, report)
    if not todo:
        return report
    with ray_session(address, len(todo), concurrency) as session:
        ray.data.DataContext.get_current().enable_progress_bars = False
        ds = ray.data.from_items(
            [{"name": n, "path": str(p)} for n, p in todo],
            override_num_blocks=max(1, min(len(todo) // batch_size, 4 * session.actors)),
        ).map_batches(
            EnrollWorker,
            fn_constructor_kwargs={
                "pack_id": of.id,
                "rules": rules,
                "env": session.env,
                "threads": session.threads,
            },
            batch_size=batch_size,
            batch_format="numpy",
            compute=ray.data.ActorPoolStrategy(size=session.actors),
            num_cpus=1,
        )
        for batch in ds.iter_batches(batch_size=batch_size, batch_format="numpy"):
            by_name: dict[str, list[enrollment.Prepared]] = {}
            rows = _prepared(batch, of)
            for name, d in rows:
                if isinstance(d, enrollment.Failed):
                    report.failures.append((d.label, str(d.error)))
                elif isinstance(d, enrollment.Prepared):
                    by_name.setdefault(name, []).append(d)
            for name, ready in by_name.items():
                enrollment.write(store, name, ready, of, report)
            if progress:
                progress(len(rows))
    return report
