"""The ``faceprint`` command: the core commands (enroll, identify, verify, forget) and the
registry of the others (``people`` is with the photo-library commands, cli/library.py).
Every command calls the core (Gallery, enroll, verify); none re-implements a rule."""

from __future__ import annotations

import argparse
import importlib
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from faceprint.cli import args as cli_args
from faceprint.errors import FaceprintError, GalleryError, NoFaceError, NotFoundError


def _progress(items: Sequence[Any], desc: str, quiet: bool) -> Any:
    from tqdm import tqdm

    return tqdm(items, desc=desc, unit="photo", disable=quiet or len(items) < 2, file=sys.stderr)


def err(msg: str) -> None:
    print(f"faceprint: {msg}", file=sys.stderr)


def open_gallery(args: argparse.Namespace, *, create: bool = False, read_only: bool = False) -> Any:
    from faceprint.gallery import Gallery

    return Gallery.open(
        args.gallery, collection=args.collection, create=create, read_only=read_only,
        detector=args.detector, model_dir=args.model_dir,
    )  # fmt: skip


def cmd_enroll(args: argparse.Namespace) -> int:
    if args.from_folders:
        if args.name or args.photos:
            raise cli_args.UsageError("give either NAME PHOTO... or --from-folders DIR, not both")
        return _enroll_folders(args)
    if not args.name or not args.photos:
        raise cli_args.UsageError("usage: faceprint enroll NAME PHOTO... | --from-folders DIR")
    with open_gallery(args, create=True) as gallery:
        added = gallery.enroll(
            args.name, *args.photos, require_live=args.require_live, min_quality=args.min_quality
        )
    n = len(added.ids)
    print(f"enrolled {args.name}: {n} photo{'s' if n != 1 else ''}")
    if added.already:
        print(f"{len(added.already)} photo(s) already enrolled for {args.name}, skipped")
    return 0


def _enroll_folders(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from faceprint.io.folders import people_folders

    people, problems = people_folders(Path(args.from_folders))
    jobs = [(name, p) for name, photos in people for p in photos]
    with (
        open_gallery(args, create=True) as gallery,
        tqdm(total=len(jobs), desc="enrolling", unit="photo", disable=args.quiet,
             file=sys.stderr) as bar,
    ):  # fmt: skip
        if args.ray or args.ray_address:
            from faceprint.gallery.batch import enroll_ray

            rules = gallery.rules(min_quality=args.min_quality, require_live=args.require_live)
            report = enroll_ray(
                gallery.store, jobs, rules, address=args.ray_address,
                batch_size=args.batch_size, progress=bar.update,
            )  # fmt: skip
        else:
            report = gallery.enroll_jobs(
                jobs, require_live=args.require_live, min_quality=args.min_quality,
                batch_size=args.batch_size, progress=bar.update,
            )  # fmt: skip
    for path, reason in problems:
        err(f"skipped {path}: {reason}")
    for _, reason in report.failures:
        err(f"skipped: {reason}")
    for name, n in sorted(report.added.items()):
        print(f"enrolled {name}: {n} photo{'s' if n != 1 else ''}")
    if report.skipped:
        n = report.skipped
        print(f"{n} photo{'s' if n != 1 else ''} already enrolled, skipped")
    failed = len(report.failures) + len(problems)
    if failed:
        err(f"{failed} of {len(jobs) + len(problems)} photos were not enrolled")
        return 2
    return 0


def cmd_identify(args: argparse.Namespace) -> int:
    from faceprint.io import decode, save_image
    from faceprint.io.draw import draw_faces

    draw_dir = None
    if args.draw and (len(args.photos) > 1 or Path(args.draw).is_dir() or args.draw.endswith("/")):
        draw_dir = cli_args.out_dir(Path(args.draw))
    failures: list[FaceprintError] = []
    no_face = 0
    report: list[dict[str, Any]] = []
    with open_gallery(args, read_only=True) as gallery:
        if len(gallery) == 0:
            raise GalleryError(f"{args.gallery}: the gallery is empty; enroll someone first")
        for photo in _progress(args.photos, "identifying", args.quiet or args.json):
            try:
                decoded = decode(photo)
                results = gallery.identify(
                    decoded.image, top_k=args.top_k, threshold=args.threshold, fmr=args.fmr
                )
            except FaceprintError as exc:
                failures.append(exc)
                err(str(exc))
                report.append({"photo": photo, "error": str(exc)})
                continue
            for r in results:
                r.face.scale_by(decoded.scale)
            report.append({"photo": photo, "faces": [r.to_dict() for r in results]})
            if not results:
                no_face += 1
                err(f"{photo}: no face found")
            if not args.json:
                for i, r in enumerate(results):
                    box = ",".join(str(round(v)) for v in r.face.box.as_list())
                    who = r.name if r.name is not None else "unknown"
                    print(
                        f"{photo}\tface {i}\tbox {box}\t{who}\tsimilarity {r.similarity:.3f}"
                        f" (threshold {r.threshold.similarity:.3f})"
                    )
            if args.draw:
                labels = [f"{r.name or 'unknown'} {r.similarity:.2f}" for r in results]
                for r in results:
                    r.face.scale_by(1 / decoded.scale)
                out = draw_dir / f"{Path(photo).stem}.jpg" if draw_dir else Path(args.draw)
                save_image(out, draw_faces(decoded.image, [r.face for r in results], labels))
                if not args.json:
                    print(f"wrote {out}")
    if args.json:
        print(json.dumps(report if len(report) != 1 else report[0], indent=2))
    if failures:
        return cli_args.batch_exit(failures, len(args.photos))
    return NoFaceError.exit_code if no_face else 0


def cmd_verify(args: argparse.Namespace) -> int:
    from faceprint import verify

    if args.person:
        with open_gallery(args, read_only=True) as gallery:
            result = gallery.verify(args.a, args.person, threshold=args.threshold, fmr=args.fmr)
    else:
        if args.b is None:
            raise cli_args.UsageError("give two photos, or one photo and --person NAME")
        result = verify(
            args.a, args.b, threshold=args.threshold, fmr=args.fmr, detector=args.detector,
            model_dir=args.model_dir, require_live=args.require_live,
        )  # fmt: skip
    if args.json:
        print(json.dumps(result.to_dict()))
    else:
        verdict = "same person" if result.same else "different people"
        thr = result.threshold
        fmr = f" ({thr.how} for false-match rate {thr.fmr:g})" if thr.fmr else ""
        print(f"{verdict}: similarity {result.similarity:.3f}, threshold {thr.similarity:.3f}{fmr}")
    return 0


def cmd_forget(args: argparse.Namespace) -> int:
    """Erase a person from every store named, as one decision: everything is checked
    first (the gallery, each encrypted gallery and its keys), then erased everywhere."""
    if args.enc and not args.keys:
        raise cli_args.UsageError("--enc needs --keys (the key set that encrypted it)")
    plans = []
    for enc in args.enc or []:
        from faceprint.privacy import plan_forget_encrypted

        try:
            plans.append((enc, plan_forget_encrypted(enc, args.keys, args.name)))
        except NotFoundError:
            err(f"{enc}: no person named {args.name!r} (nothing to erase there)")
    gallery = None
    if args.gallery.exists() or not args.enc:
        gallery = open_gallery(args)
    try:
        in_gallery = False
        if gallery is not None:
            try:
                gallery.get(args.name)
                in_gallery = True
            except NotFoundError:
                if not plans:
                    raise
        if not in_gallery and not plans:
            raise NotFoundError(f"no person named {args.name!r} in any of the stores given")
        if in_gallery and gallery is not None:
            n = gallery.forget(args.name)
            print(f"forgot {args.name}: {n} template{'s' if n != 1 else ''} removed")
        for enc, apply in plans:
            n = apply()
            print(f"forgot {args.name} in {enc}: {n} encrypted template{'s' if n != 1 else ''}")
    finally:
        if gallery is not None:
            gallery.close()
    return 0


#: Modules that add sub-commands: each has ``register(subparsers, parents)`` which adds its
#: parsers with ``set_defaults(func=...)``; func(args) returns the exit code.
COMMAND_MODULES: list[str] = [
    "faceprint.cli.evaluate",
    "faceprint.service.cli",
    "faceprint.cli.video",
    "faceprint.cli.analyze",
    "faceprint.cli.privacy",
    "faceprint.cli.attack",
    "faceprint.cli.library",
]


def build_parser() -> argparse.ArgumentParser:
    parser, parents = cli_args.base_parser()
    sub = parser.add_subparsers(dest="command", required=True)  # subparsers are Parsers too
    common, thresholds = parents.common, parents.thresholds

    p = sub.add_parser("enroll", parents=[common], help="add people from photos")
    p.add_argument("name", nargs="?", help="the person's name")
    p.add_argument("photos", nargs="*", help="photos with this person's face")
    p.add_argument("--from-folders", metavar="DIR", help="DIR/NAME/*.jpg, one folder per person")
    p.add_argument("--require-live", action="store_true", help="refuse faces judged photo/screen")
    p.add_argument("--ray", action="store_true", help="detect and embed on Ray (local cluster)")
    p.add_argument("--ray-address", metavar="ADDR", help="an existing Ray cluster (implies --ray)")
    p.add_argument("--batch-size", type=cli_args.positive_int, default=16, help="photos per batch")
    p.add_argument(
        "--min-quality", type=cli_args.unit_float, default=0.4,
        help="refuse faces of lower quality (size, sharpness, pose, exposure; 0..1, default 0.4)",
    )  # fmt: skip
    p.set_defaults(func=cmd_enroll)

    p = sub.add_parser("identify", parents=[common, thresholds], help="who is in these photos?")
    p.add_argument("photos", nargs="+")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.add_argument(
        "--draw", metavar="OUT",
        help="write the photo with boxes and names to OUT.jpg (several photos: into folder OUT/)",
    )  # fmt: skip
    p.add_argument("--top-k", type=cli_args.top_k, default=1, help="candidates per face (1-100)")
    p.set_defaults(func=cmd_identify)

    p = sub.add_parser("verify", parents=[common, thresholds], help="same person in A and B?")
    p.add_argument("a")
    p.add_argument("b", nargs="?")
    p.add_argument("--person", help="compare A with this gallery person instead of a photo B")
    p.add_argument("--json", action="store_true")
    p.add_argument("--require-live", action="store_true", help="refuse faces judged photo/screen")
    p.set_defaults(func=cmd_verify)

    p = sub.add_parser("forget", parents=[common], help="erase a person and all their templates")
    p.add_argument("name")
    p.add_argument(
        "--enc", type=Path, action="append",
        help="also erase from this encrypted gallery (repeatable; needs --keys)",
    )  # fmt: skip
    p.add_argument("--keys", type=Path, help="key set of the encrypted galleries")
    p.set_defaults(func=cmd_forget)

    for module in COMMAND_MODULES:
        importlib.import_module(module).register(sub, parents)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    from faceprint.log import show_notes_on_stderr

    show_notes_on_stderr()
    try:
        args = build_parser().parse_args(argv)
        return int(args.func(args))
    except cli_args.UsageError as exc:
        err(str(exc))
        return cli_args.USAGE
    except FaceprintError as exc:
        err(str(exc))
        return exc.exit_code
    except KeyboardInterrupt:
        err("interrupted")
        return 130
    except BrokenPipeError:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1


if __name__ == "__main__":
    sys.exit(main())
