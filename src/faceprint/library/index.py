"""Indexing a photo library: every face of every photo below some folders, stored with its
template and clustered into people (``faceprint index``).

1. **Plan** (:func:`plan`): walk the folders (:func:`faceprint.io.folders.photos_below`); a
   file whose path, size and mtime are as last time is skipped unread; any other is hashed:
   content already in the library (a copy, a touched file) is only recorded, new content
   is to be analysed. Files gone from below the folders are forgotten, and with them the
   faces of content no file shows any more.
2. **Analyse** (:func:`analyse`, in process or on Ray workers): decode (EXIF orientation
   applied, capture time, embedded XMP), detect every face, quality, and templates in
   batches (:func:`faceprint.embed.embed_many`).
3. **Store** (:func:`store_batch`): each batch of photos in one transaction: photos, faces
   (awaiting clustering), the files, and names from XMP face regions (a region's name
   labels the detected face it overlaps best), with the gallery templates those names make.
   A run killed at any moment leaves whole batches; running it again continues.
4. **Cluster** (:func:`faceprint.library.regroup.assign_pending`): once, at the end, every
   face awaiting it joins the existing people and clusters or forms new ones.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from faceprint.errors import FaceprintError, ImageError
from faceprint.gallery.records import check_name
from faceprint.library.cluster import Params
from faceprint.library.records import PhotoMeta
from faceprint.library.regroup import Regrouped, assign_pending
from faceprint.library.store import Library
from faceprint.library.sync import sync
from faceprint.library.xmp import Region, XmpError, read_regions, read_sidecar
from faceprint.log import note
from faceprint.models.packs import Pack
from faceprint.types import Face, Image

#: Photos analysed and stored per transaction.
BATCH_SIZE = 16
#: A face region of another tool names the detected face it overlaps at least this much.
REGION_IOU = 0.3


@dataclass(frozen=True)
class Job:
    """A file to analyse: its path, size, mtime and content hash when planned."""

    path: str
    size: int
    mtime_ns: int
    sha256: str


@dataclass
class Analysed:
    job: Job
    meta: PhotoMeta | None = None
    faces: list[Face] = field(default_factory=list)
    regions: list[Region] = field(default_factory=list)
    error: str | None = None


@dataclass
class Plan:
    todo: list[Job] = field(default_factory=list)  # new content, one job per content
    copies: dict[str, list[Job]] = field(default_factory=dict)  # sha -> more files of it
    known: list[Job] = field(default_factory=list)  # content already in the library
    removed: list[str] = field(default_factory=list)  # files gone
    unchanged: int = 0
    problems: list[tuple[str, str]] = field(default_factory=list)


@dataclass
class IndexReport:
    photos: int = 0  # photo files found
    unchanged: int = 0
    analysed: int = 0  # new contents read
    copies: int = 0  # files whose content was already known or read once this run
    removed: int = 0  # files gone
    faces: int = 0  # faces added
    faces_removed: int = 0
    named_from_xmp: int = 0
    failures: list[tuple[str, str]] = field(default_factory=list)
    regrouped: Regrouped | None = None


def _under(path: str, roots: Sequence[Path]) -> bool:
    return any(Path(path).is_relative_to(r) for r in roots)


def plan(lib: Library, roots: Sequence[Path]) -> Plan:
    """What a run has to do (see the module docstring)."""
    from faceprint.io import file_sha256
    from faceprint.io.folders import photos_below

    roots = [Path(os.path.abspath(r)) for r in roots]
    walk = photos_below(roots)
    out = Plan(problems=list(walk.problems))
    with lib.db.reading() as tx:
        files = lib.files(tx)
        contents = {sha for _, _, sha in files.values()}
    fresh: dict[str, Job] = {}
    seen: set[str] = set()
    for path in walk.photos:
        name = str(path)
        seen.add(name)
        try:
            st = path.stat()
            before = files.get(name)
            if before is not None and before[:2] == (st.st_size, st.st_mtime_ns):
                out.unchanged += 1
                continue
            sha = file_sha256(path)
        except (OSError, FaceprintError) as exc:
            out.problems.append((name, str(exc)))
            continue
        job = Job(name, st.st_size, st.st_mtime_ns, sha)
        if sha in contents:
            out.known.append(job)
        elif sha in fresh:
            out.copies.setdefault(sha, []).append(job)
        else:
            fresh[sha] = job
            out.todo.append(job)
    unreadable = [p for p, _ in out.problems]
    out.removed = sorted(
        p for p in files
        if _under(p, roots) and p not in seen and not any(_under(p, [Path(u)]) for u in unreadable)
    )  # fmt: skip
    return out


def _regions(path: str, packet: bytes | None) -> list[Region]:
    """Named face regions of the photo's sidecar and its embedded XMP."""
    found: list[Region] = []
    try:
        found += read_sidecar(path)
    except (XmpError, OSError) as exc:
        note(f"{path}: its XMP sidecar is ignored ({exc})")
    if packet:
        try:
            found += read_regions(packet.rstrip(b"\x00"))
        except XmpError as exc:
            note(f"{path}: its embedded XMP is ignored ({exc})")
    return [r for r in found if r.name]


def analyse(
    jobs: Sequence[Job], pack: Pack, detector: str | None = None, model_dir: str | None = None
) -> list[Analysed]:
    """Decode, detect, assess and embed the photos of a batch (faces in full-size pixels of
    the upright image). A photo that cannot be read gets ``error``; nothing else is caught."""
    from faceprint.detect import detect
    from faceprint.embed import embed_many
    from faceprint.io import decode, read_file
    from faceprint.quality import fill

    out = [Analysed(job) for job in jobs]
    scales: list[float] = []

    def images() -> Iterator[tuple[Image, list[Face]]]:
        for item in out:
            path = item.job.path
            try:
                data = read_file(path)
                decoded = decode(data)
            except ImageError as exc:
                item.error = str(exc).replace("uploaded image", path, 1)
                continue
            sha = hashlib.sha256(data).hexdigest()
            del data
            taken = decoded.captured_at.timestamp() if decoded.captured_at else None
            width, height = decoded.original_size
            item.meta = PhotoMeta(sha, width, height, taken, item.job.mtime_ns / 1e9)
            item.regions = _regions(path, decoded.xmp)
            item.faces = detect(decoded.image, detector=detector, model_dir=model_dir)
            fill(decoded.image, item.faces)
            scales.append(decoded.scale)
            yield decoded.image, item.faces

    embed_many(images(), pack=pack, model_dir=model_dir)
    ready = [item for item in out if item.meta is not None]
    for item, scale in zip(ready, scales, strict=True):
        for face in item.faces:
            face.scale_by(scale)
    return out


def _match(regions: Sequence[Region], faces: Sequence[Face], width: int, height: int,
           keys: Sequence[str | None]) -> list[tuple[str, str]]:  # fmt: skip
    """(face key, name): each named region names the face it overlaps best (IoU in the
    upright image), each face at most once, best overlaps first."""
    pairs = []
    for r_i, region in enumerate(regions):
        box = region.box(width, height)
        for f_i, face in enumerate(faces):
            iou = box.iou(face.box)
            if iou >= REGION_IOU and keys[f_i] is not None:
                pairs.append((-iou, r_i, f_i))
    out, used_r, used_f = [], set(), set()
    for _, r_i, f_i in sorted(pairs):
        if r_i in used_r or f_i in used_f:
            continue
        used_r.add(r_i)
        used_f.add(f_i)
        try:
            name = check_name(str(regions[r_i].name))
        except FaceprintError:
            continue
        out.append((str(keys[f_i]), name))
    return out


def store_batch(lib: Library, batch: Sequence[Analysed], plan_: Plan, report: IndexReport) -> None:
    """Store one batch in one transaction (see the module docstring)."""
    touched: set[str] = set()
    with lib.store.write() as tx:
        labels = lib.labels(tx)
        rejected = set(lib.rejections(tx))
        for item in batch:
            if item.meta is None:
                report.failures.append((item.job.path, item.error or "could not be read"))
                continue
            report.analysed += 1
            for job in [item.job, *plan_.copies.get(item.job.sha256, [])]:
                lib.set_file(tx, job.path, job.size, job.mtime_ns, item.meta.sha256)
            if lib.has_photo(tx, item.meta.sha256):  # it changed into known content meanwhile
                continue
            keys = lib.add_photo(tx, item.meta, item.faces)
            report.faces += sum(k is not None for k in keys)
            m = item.meta
            for key, name in _match(item.regions, item.faces, m.width, m.height, keys):
                if key not in labels and (key, name) not in rejected:
                    lib.set_label(tx, key, name, source="xmp")
                    touched.add(key)
                    report.named_from_xmp += 1
        gone = lib.drop_orphans(tx)  # the old content of files that changed
        report.faces_removed += len(gone)
        erased = sync(lib, tx, touched | set(gone))
    if erased:
        lib.db.after_erase()


def forget_gone(lib: Library, plan_: Plan, report: IndexReport) -> None:
    """Forget files that are gone and record files of known content (one transaction)."""
    if not plan_.removed and not plan_.known:
        return
    with lib.store.write() as tx:
        lib.remove_files(tx, plan_.removed)
        for job in plan_.known:
            lib.set_file(tx, job.path, job.size, job.mtime_ns, job.sha256)
        gone = lib.drop_orphans(tx)
        erased = sync(lib, tx, gone)
    if erased:
        lib.db.after_erase()
    report.removed += len(plan_.removed)
    report.copies += len(plan_.known)
    report.faces_removed += len(gone)


Analyser = Callable[[Sequence[Sequence[Job]]], Iterator[list[Analysed]]]


def index(
    lib: Library,
    roots: Sequence[Path],
    pack: Pack,
    *,
    detector: str | None = None,
    model_dir: str | None = None,
    batch_size: int = BATCH_SIZE,
    params: Params | None = None,
    analyser: Analyser | None = None,
    progress: Callable[[int, int], None] | None = None,
    planned: Plan | None = None,
) -> IndexReport:
    """Index the photos below ``roots`` into the library (see the module docstring).
    ``analyser`` maps batches of jobs to their analyses (default: in this process, in
    order); ``progress(photos, faces)`` is called after each stored batch."""
    p = planned if planned is not None else plan(lib, roots)
    report = IndexReport(photos=p.unchanged + len(p.todo) + len(p.known) +
                         sum(len(c) for c in p.copies.values()), unchanged=p.unchanged)  # fmt: skip
    report.failures.extend(p.problems)
    forget_gone(lib, p, report)
    size = max(1, batch_size)
    batches = [p.todo[i : i + size] for i in range(0, len(p.todo), size)]
    if analyser is None:

        def analyser(parts: Sequence[Sequence[Job]]) -> Iterator[list[Analysed]]:
            for part in parts:
                yield analyse(part, pack, detector, model_dir)

    for done in analyser(batches):
        store_batch(lib, done, p, report)
        report.copies += sum(len(p.copies.get(a.job.sha256, [])) for a in done if a.meta)
        if progress:
            progress(len(done), sum(len(a.faces) for a in done))
    report.regrouped = assign_pending(lib, params)
    return report
