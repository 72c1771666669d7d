"""Batch enrollment of large photo collections, on Ray Data or in this process.

A job is (person name, photo path). Photos already in the gallery (same content hash)
are skipped, so an interrupted run is resumed by running it again. Each photo's result
is a template or an error; errors are reported, never fatal. With Ray, detection and
embedding run in a pool of actors (each holding its own ONNX sessions) and the driver
writes the templates to the gallery one transaction per person per batch.

Ray is optional (``pip install 'faceprint[scale]'``).
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from faceprint.errors import FaceprintError
from faceprint.gallery.gallery import MIN_ENROLL_QUALITY
from faceprint.gallery.sqlite import SqliteGallery

#: Photos per Ray Data batch (per actor call, and per gallery write).
BATCH_SIZE = 16
#: Environment passed on to the Ray workers (which may run on another machine).
_ENV_KEYS = (
    "FACEPRINT_CACHE_DIR",
    "FACEPRINT_MODEL_DIR",
    "FACEPRINT_OFFLINE",
    "FACEPRINT_DETECTOR",
    "FACEPRINT_MAX_PIXELS",
)

Job = tuple[str, Path]


@dataclass(frozen=True)
class PhotoResult:
    """What became of one photo: a template, or the reason it has none."""

    name: str
    path: str
    sha256: str
    embedding: np.ndarray | None
    pack: str
    quality: float | None
    error: str


@dataclass
class BatchReport:
    added: dict[str, int] = field(default_factory=dict)
    skipped: int = 0  # already in the gallery (or twice in this run)
    failures: list[tuple[str, str]] = field(default_factory=list)  # (path, reason)


def file_sha256(path: str | Path) -> str:
    """The content hash enrollment stores with a template (as ``_photo_faces``)."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def pending_jobs(
    gallery: SqliteGallery, jobs: Iterable[Job]
) -> tuple[list[tuple[str, str, str]], int, list[tuple[str, str]]]:
    """Jobs whose photo is not in the gallery yet, as (name, path, sha256); also how many
    were skipped, and the photos that could not be read."""
    todo: list[tuple[str, str, str]] = []
    seen: set[str] = set()
    skipped = 0
    unreadable: list[tuple[str, str]] = []
    for name, path in jobs:
        try:
            digest = file_sha256(path)
        except OSError as exc:
            unreadable.append((str(path), f"{path}: cannot read ({exc.strerror or exc})"))
            continue
        if digest in seen or gallery.has_image(digest):
            skipped += 1
            continue
        seen.add(digest)
        todo.append((name, str(path), digest))
    return todo, skipped, unreadable


def process_photos(
    items: Sequence[tuple[str, str, str]],
    *,
    detector: str | None = None,
    model_dir: str | Path | None = None,
    min_quality: float = MIN_ENROLL_QUALITY,
) -> list[PhotoResult]:
    """Load, detect, pick the enrollment face, check its quality and embed (all chosen
    faces in one batch), with the same rules as Gallery.enroll."""
    from faceprint.detect import detect
    from faceprint.embed import embed_many
    from faceprint.gallery.gallery import check_quality, enrollment_face
    from faceprint.io import load_image
    from faceprint.quality import fill as fill_quality

    results: list[PhotoResult | None] = [None] * len(items)
    chosen: list[tuple[int, Any, Any]] = []  # (position, image, face)
    for i, (name, path, digest) in enumerate(items):
        try:
            image = load_image(path)
            faces = detect(image, detector=detector, model_dir=model_dir)
            fill_quality(image, faces)
            face = enrollment_face(faces, path)
            check_quality(face, path, min_quality)
            chosen.append((i, image, face))
        except Exception as exc:  # one bad photo must not stop the batch
            msg = str(exc) if isinstance(exc, FaceprintError) else f"{path}: {exc!r}"
            results[i] = PhotoResult(name, path, digest, None, "", None, msg)
    if chosen:
        embed_many([(image, [face]) for _, image, face in chosen], model_dir=model_dir)
        for i, _, face in chosen:
            name, path, digest = items[i]
            results[i] = PhotoResult(
                name, path, digest, face.embedding, face.pack or "", face.quality, ""
            )
    return [r for r in results if r is not None]


def write_results(
    gallery: SqliteGallery, results: Sequence[PhotoResult], report: BatchReport
) -> None:
    """Store a batch's templates: one transaction per person in the batch."""
    by_name: dict[str, list[PhotoResult]] = {}
    for r in results:
        if r.error or r.embedding is None:
            report.failures.append((r.path, r.error or f"{r.path}: no template"))
        else:
            by_name.setdefault(r.name, []).append(r)
    for name, rows in by_name.items():
        try:
            gallery.add_templates(
                name,
                [r.embedding for r in rows if r.embedding is not None],
                pack=rows[0].pack,
                image_sha256=[r.sha256 for r in rows],
                quality=[r.quality for r in rows],
            )
        except FaceprintError as exc:
            report.failures.extend((r.path, str(exc)) for r in rows)
            continue
        report.added[name] = report.added.get(name, 0) + len(rows)


class EnrollWorker:
    """Ray Data actor: its process holds the ONNX sessions; called once per batch."""

    def __init__(
        self,
        detector: str | None,
        model_dir: str | None,
        env: dict[str, str],
        threads: int,
        min_quality: float = MIN_ENROLL_QUALITY,
    ) -> None:
        os.environ.update(env)
        os.environ.setdefault("FACEPRINT_THREADS", str(threads))
        self.detector = detector
        self.model_dir = model_dir
        self.min_quality = min_quality

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        items = list(
            zip(
                (str(x) for x in batch["name"]),
                (str(x) for x in batch["path"]),
                (str(x) for x in batch["sha256"]),
                strict=True,
            )
        )
        results = process_photos(
            items, detector=self.detector, model_dir=self.model_dir, min_quality=self.min_quality
        )
        dim = next((len(r.embedding) for r in results if r.embedding is not None), 0)
        emb = np.zeros((len(results), dim), np.float32)
        for i, r in enumerate(results):
            if r.embedding is not None:
                emb[i] = r.embedding
        return {
            "name": np.array([r.name for r in results], dtype=object),
            "path": np.array([r.path for r in results], dtype=object),
            "sha256": np.array([r.sha256 for r in results], dtype=object),
            "embedding": emb,
            "pack": np.array([r.pack for r in results], dtype=object),
            "quality": np.array(
                [np.nan if r.quality is None else r.quality for r in results], np.float64
            ),
            "error": np.array([r.error for r in results], dtype=object),
        }


def _from_columns(batch: dict[str, np.ndarray]) -> list[PhotoResult]:
    out = []
    for i in range(len(batch["path"])):
        error = str(batch["error"][i])
        quality = float(batch["quality"][i])
        out.append(
            PhotoResult(
                str(batch["name"][i]),
                str(batch["path"][i]),
                str(batch["sha256"][i]),
                None if error else np.asarray(batch["embedding"][i], np.float32),
                str(batch["pack"][i]),
                None if np.isnan(quality) else quality,
                error,
            )
        )
    return out


def enroll_local(
    gallery: SqliteGallery,
    jobs: Iterable[Job],
    *,
    detector: str | None = None,
    model_dir: str | Path | None = None,
    batch_size: int = BATCH_SIZE,
    progress: Callable[[int], None] | None = None,
    min_quality: float = MIN_ENROLL_QUALITY,
) -> BatchReport:
    """Enroll in this process, ``batch_size`` photos per embedding call and per write."""
    todo, skipped, unreadable = pending_jobs(gallery, jobs)
    report = BatchReport(skipped=skipped, failures=list(unreadable))
    for lo in range(0, len(todo), batch_size):
        part = todo[lo : lo + batch_size]
        results = process_photos(
            part, detector=detector, model_dir=model_dir, min_quality=min_quality
        )
        write_results(gallery, results, report)
        if progress:
            progress(len(part))
    return report


def enroll_ray(
    gallery: SqliteGallery,
    jobs: Iterable[Job],
    *,
    address: str | None = None,
    detector: str | None = None,
    model_dir: str | Path | None = None,
    batch_size: int = BATCH_SIZE,
    concurrency: int | None = None,
    progress: Callable[[int], None] | None = None,
    min_quality: float = MIN_ENROLL_QUALITY,
) -> BatchReport:
    """Enroll on Ray Data: the cluster at ``address`` (or the one already connected), or
    a local one started (and stopped) here."""
    try:
        import ray
        import ray.data
    except ImportError as exc:
        raise FaceprintError(
            "--ray needs Ray: pip install 'faceprint[scale]' (or leave out --ray)"
        ) from exc
    todo, skipped, unreadable = pending_jobs(gallery, jobs)
    report = BatchReport(skipped=skipped, failures=list(unreadable))
    if not todo:
        return report
    started = False
    if not ray.is_initialized():
        try:
            if address:
                ray.init(address=address, log_to_driver=False)
            else:
                ray.init(
                    include_dashboard=False,
                    object_store_memory=256 * 1024 * 1024,
                    log_to_driver=False,
                )
        except Exception as exc:  # ray raises ConnectionError, RuntimeError, ...
            where = address or "a local Ray cluster"
            raise FaceprintError(f"cannot start or reach {where}: {exc}") from exc
        started = True
    try:
        ray.data.DataContext.get_current().enable_progress_bars = False
        cpus = max(1, int(ray.cluster_resources().get("CPU", 1)))
        actors = max(1, min(concurrency or cpus, cpus, len(todo)))
        env = {k: os.environ[k] for k in _ENV_KEYS if k in os.environ}
        threads = int(os.environ.get("FACEPRINT_THREADS", "0")) or max(1, cpus // actors)
        ds = ray.data.from_items(
            [{"name": n, "path": p, "sha256": d} for n, p, d in todo],
            override_num_blocks=max(1, min(len(todo) // batch_size, 4 * actors)),
        ).map_batches(
            EnrollWorker,
            fn_constructor_kwargs={
                "detector": detector,
                "model_dir": None if model_dir is None else str(model_dir),
                "env": env,
                "threads": threads,
                "min_quality": min_quality,
            },
            batch_size=batch_size,
            batch_format="numpy",
            compute=ray.data.ActorPoolStrategy(size=actors),
            num_cpus=1,
        )
        for batch in ds.iter_batches(batch_size=batch_size, batch_format="numpy"):
            results = _from_columns(batch)
            write_results(gallery, results, report)
            if progress:
                progress(len(results))
    finally:
        if started:
            ray.shutdown()
    return report
