"""The ``faceprint`` command."""

from __future__ import annotations

import argparse
import importlib
import json
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import platformdirs

from faceprint.errors import FaceprintError, GalleryError, NoFaceError

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff"}


def default_gallery() -> Path:
    env = os.environ.get("FACEPRINT_GALLERY")
    return Path(env) if env else Path(platformdirs.user_data_dir("faceprint")) / "gallery.db"


def _progress(items: Sequence[Any], desc: str, quiet: bool) -> Any:
    from tqdm import tqdm

    return tqdm(items, desc=desc, unit="photo", disable=quiet or len(items) < 2, file=sys.stderr)


def _err(msg: str) -> None:
    print(f"faceprint: {msg}", file=sys.stderr)


def _folder_people(root: Path) -> list[tuple[str, list[Path]]]:
    if not root.is_dir():
        raise FaceprintError(f"{root}: not a directory (expected one sub-folder per person)")
    people = []
    for sub in sorted(p for p in root.iterdir() if p.is_dir()):
        photos = sorted(p for p in sub.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        if photos:
            people.append((sub.name, photos))
    if not people:
        raise FaceprintError(f"{root}: no sub-folders with photos (expected DIR/NAME/photo.jpg)")
    return people


def cmd_enroll(args: argparse.Namespace) -> int:
    from faceprint.gallery.gallery import Gallery

    if args.from_folders:
        if args.name or args.photos:
            raise FaceprintError("give either NAME PHOTO... or --from-folders DIR, not both")
        jobs = [
            (name, p) for name, photos in _folder_people(Path(args.from_folders)) for p in photos
        ]
    else:
        if not args.name or not args.photos:
            raise FaceprintError("usage: faceprint enroll NAME PHOTO... | --from-folders DIR")
        jobs = [(args.name, Path(p)) for p in args.photos]
    if args.ray or args.ray_address:
        return _enroll_ray(args, jobs)
    failures = skipped = 0
    added: dict[str, int] = {}
    with Gallery(args.gallery, detector=args.detector, model_dir=args.model_dir) as gallery:
        for name, path in _progress(jobs, "enrolling", args.quiet):
            try:
                if _already_enrolled(gallery.store, path):
                    skipped += 1
                    continue
                gallery.enroll(
                    name, path, require_live=args.require_live, min_quality=args.min_quality
                )
                added[name] = added.get(name, 0) + 1
            except FaceprintError as exc:
                failures += 1
                _err(f"skipped: {exc}")
    return _enroll_summary(added, skipped, failures, len(jobs))


def _already_enrolled(store: Any, path: Path) -> bool:
    """Is this photo (by content hash) in the gallery already? (So reruns resume.)"""
    from faceprint.gallery.batch import file_sha256

    try:
        return bool(store.has_image(file_sha256(path)))
    except OSError:
        return False  # unreadable: enrolling it reports why


def _enroll_summary(added: dict[str, int], skipped: int, failures: int, total: int) -> int:
    for name, n in sorted(added.items()):
        print(f"enrolled {name}: {n} photo{'s' if n != 1 else ''}")
    if skipped:
        print(f"{skipped} photo{'s' if skipped != 1 else ''} already enrolled, skipped")
    if failures:
        _err(f"{failures} of {total} photos were not enrolled")
        return 2
    return 0


def _enroll_ray(args: argparse.Namespace, jobs: list[tuple[str, Path]]) -> int:
    """enroll --ray: detection and embedding on Ray Data, templates written here."""
    from tqdm import tqdm

    from faceprint.gallery.batch import enroll_ray
    from faceprint.gallery.sqlite import SqliteGallery

    if args.require_live:
        raise FaceprintError("--require-live is not available with --ray")
    if args.batch_size < 1:
        raise FaceprintError("--batch-size must be at least 1")
    with (
        SqliteGallery(args.gallery) as store,
        tqdm(total=len(jobs), desc="enrolling", unit="photo", disable=args.quiet) as bar,
    ):
        report = enroll_ray(
            store,
            jobs,
            address=args.ray_address,
            detector=args.detector,
            model_dir=args.model_dir,
            batch_size=args.batch_size,
            progress=bar.update,
            min_quality=args.min_quality,
        )
    for _, reason in report.failures:
        _err(f"skipped: {reason}")
    return _enroll_summary(report.added, report.skipped, len(report.failures), len(jobs))


def cmd_identify(args: argparse.Namespace) -> int:
    from faceprint.cli.draw import draw_faces
    from faceprint.gallery.gallery import Gallery
    from faceprint.io import load_image, save_image

    draw_dir = None
    if args.draw and (len(args.photos) > 1 or Path(args.draw).is_dir() or args.draw.endswith("/")):
        draw_dir = Path(args.draw)
        draw_dir.mkdir(parents=True, exist_ok=True)
    failures = no_face = 0
    failure_code = 2  # some photos of a batch failed; one photo: its own error's code
    report: list[dict[str, Any]] = []
    with Gallery(
        args.gallery, create=False, detector=args.detector, model_dir=args.model_dir
    ) as gallery:
        if len(gallery) == 0:
            raise GalleryError(f"{args.gallery}: the gallery is empty; enroll someone first")
        for photo in _progress(args.photos, "identifying", args.quiet or args.json):
            try:
                image = load_image(photo)
                results = gallery.identify(
                    image, top_k=args.top_k, threshold=args.threshold, fmr=args.fmr
                )
            except FaceprintError as exc:
                failures += 1
                failure_code = exc.exit_code if len(args.photos) == 1 else 2
                _err(str(exc))
                report.append({"photo": photo, "error": str(exc)})
                continue
            report.append({"photo": photo, "faces": [r.to_dict() for r in results]})
            if not results:
                no_face += 1
                _err(f"{photo}: no face found")
            if not args.json:
                for i, r in enumerate(results):
                    box = ",".join(str(round(v)) for v in r.face.box.as_list())
                    who = r.name if r.name is not None else "unknown"
                    print(
                        f"{photo}\tface {i}\tbox {box}\t{who}\tsimilarity {r.score:.3f}"
                        f" (threshold {r.threshold:.3f})"
                    )
            if args.draw:
                labels = [
                    f"{r.name} {r.score:.2f}" if r.name else f"unknown {r.score:.2f}"
                    for r in results
                ]
                out = draw_dir / f"{Path(photo).stem}.jpg" if draw_dir else Path(args.draw)
                save_image(out, draw_faces(image, [r.face for r in results], labels))
                if not args.json:
                    print(f"wrote {out}")
    if args.json:
        print(json.dumps(report if len(report) != 1 else report[0], indent=2))
    if failures:
        return failure_code
    return NoFaceError.exit_code if no_face else 0


def cmd_verify(args: argparse.Namespace) -> int:
    from faceprint import verify

    result = verify(
        args.a,
        args.b,
        threshold=args.threshold,
        fmr=args.fmr,
        detector=args.detector,
        model_dir=args.model_dir,
        require_live=args.require_live,
    )
    if args.json:
        print(json.dumps(result.to_dict()))
    else:
        verdict = "same person" if result.same else "different people"
        thr = result.threshold
        fmr = f" ({thr.how} for false-match rate {thr.fmr:g})" if thr.fmr else ""
        print(f"{verdict}: similarity {result.similarity:.3f}, threshold {thr.similarity:.3f}{fmr}")
    return 0


def cmd_people(args: argparse.Namespace) -> int:
    from faceprint.gallery.sqlite import SqliteGallery

    with SqliteGallery(args.gallery, create=False) as store:
        people = store.people()
        if args.json:
            print(
                json.dumps(
                    [
                        {"name": p.name, "templates": p.templates, "metadata": p.metadata}
                        for p in people
                    ],
                    indent=2,
                )
            )
        else:
            for p in people:
                print(f"{p.name}\t{p.templates} template{'s' if p.templates != 1 else ''}")
            print(f"{len(people)} people in {args.gallery}", file=sys.stderr)
    return 0


def cmd_forget(args: argparse.Namespace) -> int:
    """Erase a person from every store named: the gallery, and encrypted galleries."""
    from faceprint.gallery.sqlite import SqliteGallery

    if args.enc and not args.keys:
        raise FaceprintError("--enc needs --keys (the key set that encrypted it)")
    erased = 0
    if args.gallery.exists() or not args.enc:
        with SqliteGallery(args.gallery, create=False) as store:
            try:
                n = store.remove(args.name)
                erased += 1
                print(f"forgot {args.name}: {n} template{'s' if n != 1 else ''} removed")
            except GalleryError:
                if not args.enc:
                    raise
    for enc in args.enc or []:
        from faceprint.privacy import forget_encrypted

        try:
            n = forget_encrypted(enc, args.keys, args.name)
        except GalleryError as exc:
            _err(f"{enc}: {exc}")
            continue
        erased += 1
        print(f"forgot {args.name} in {enc}: {n} encrypted template{'s' if n != 1 else ''} erased")
    if not erased:
        raise GalleryError(f"no person named {args.name!r} in any of the stores given")
    return 0


@dataclass(frozen=True)
class Parents:
    """Option groups shared by sub-commands (pass as ``parents=[...]``)."""

    common: argparse.ArgumentParser  # --gallery --model-dir --detector --quiet
    thresholds: argparse.ArgumentParser  # --threshold --fmr


#: Modules that add sub-commands: each has ``register(subparsers, parents: Parents)``
#: which adds its parsers with ``set_defaults(func=...)``; func(args) returns the exit code.
COMMAND_MODULES: list[str] = [
    "faceprint.cli.evaluate",
    "faceprint.service.cli",
    "faceprint.cli.video",
    "faceprint.cli.analyze",
    "faceprint.cli.privacy",
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="faceprint", description="Offline face recognition: enroll, identify, verify."
    )
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--gallery",
        type=Path,
        default=default_gallery(),
        help="gallery file (default: $FACEPRINT_GALLERY or the user data dir)",
    )
    common.add_argument(
        "--model-dir",
        default=None,
        help="directory with model files (default: $FACEPRINT_MODEL_DIR)",
    )
    common.add_argument(
        "--detector",
        choices=["mmod", "yunet"],
        default=None,
        help="face detector (default: $FACEPRINT_DETECTOR, else yunet when its model file "
        "is available, else mmod)",
    )
    common.add_argument("--quiet", "-q", action="store_true", help="no progress bar")
    thresholds = argparse.ArgumentParser(add_help=False)
    thresholds.add_argument(
        "--threshold",
        type=float,
        default=None,
        help="cosine similarity threshold (overrides --fmr)",
    )
    thresholds.add_argument(
        "--fmr",
        type=float,
        default=None,
        help="target false-match rate, e.g. 1e-3 (the pack's calibration)",
    )
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("enroll", parents=[common], help="add people from photos")
    p.add_argument("name", nargs="?", help="the person's name")
    p.add_argument("photos", nargs="*", help="photos with this person's face")
    p.add_argument("--from-folders", metavar="DIR", help="DIR/NAME/*.jpg, one folder per person")
    p.add_argument("--require-live", action="store_true", help="skip faces judged photo/screen")
    p.add_argument("--ray", action="store_true", help="detect and embed on Ray (local cluster)")
    p.add_argument("--ray-address", metavar="ADDR", help="an existing Ray cluster (implies --ray)")
    p.add_argument("--batch-size", type=int, default=16, help="photos per Ray batch (16)")
    p.add_argument(
        "--min-quality",
        type=float,
        default=0.4,
        help="refuse faces of lower quality (size, sharpness, pose, exposure; 0..1, default 0.4)",
    )
    p.set_defaults(func=cmd_enroll)

    p = sub.add_parser("identify", parents=[common, thresholds], help="who is in these photos?")
    p.add_argument("photos", nargs="+")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.add_argument(
        "--draw",
        metavar="OUT",
        help="write the photo with boxes and names to OUT.jpg (several photos: into folder OUT/)",
    )
    p.add_argument("--top-k", type=int, default=1, help="candidates per face")
    p.set_defaults(func=cmd_identify)

    p = sub.add_parser("verify", parents=[common, thresholds], help="same person in A and B?")
    p.add_argument("a")
    p.add_argument("b")
    p.add_argument("--json", action="store_true")
    p.add_argument("--require-live", action="store_true", help="refuse faces judged photo/screen")
    p.set_defaults(func=cmd_verify)

    p = sub.add_parser("people", parents=[common], help="list enrolled people")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_people)

    p = sub.add_parser("forget", parents=[common], help="remove a person and all their templates")
    p.add_argument("name")
    p.add_argument(
        "--enc",
        type=Path,
        action="append",
        help="also erase from this encrypted gallery (repeatable; needs --keys)",
    )
    p.add_argument("--keys", type=Path, help="key set of the encrypted galleries")
    p.set_defaults(func=cmd_forget)

    parents = Parents(common=common, thresholds=thresholds)
    for module in COMMAND_MODULES:
        importlib.import_module(module).register(sub, parents)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except NoFaceError as exc:
        _err(str(exc))
        return exc.exit_code
    except FaceprintError as exc:
        _err(str(exc))
        return exc.exit_code
    except KeyboardInterrupt:
        _err("interrupted")
        return 130


if __name__ == "__main__":
    sys.exit(main())
