"""``faceprint eval pairs|identify`` and ``faceprint calibrate``."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from faceprint.cli import args as cli_args
from faceprint.errors import FaceprintError


def _common_eval(p: argparse.ArgumentParser) -> None:
    p.add_argument("--root", type=Path, required=True, help="directory the images are under")
    p.add_argument("--out", type=Path, default=Path("faceprint-eval"), help="output directory")
    p.add_argument(
        "--degrade",
        default="",
        metavar="SPEC",
        help="probe-side degradations, e.g. blur:3,downscale:4,jpeg:10,noise:0.05,elastic:4/10",
    )
    p.add_argument(
        "--seed", type=cli_args.seed, default=0, help="seed for splits, folds, degradations"
    )
    p.add_argument(
        "--on-no-face",
        choices=["fail", "centre"],
        default="fail",
        help="an image without a detected face: count its comparisons as failures "
        "(default) or align a centre crop",
    )
    p.add_argument(
        "--groups",
        type=Path,
        metavar="FILE",
        help="CSV file,attribute[,attribute...] labelling photos (relative to --root) with "
        "groups: error rates per group at one threshold (pose, face size, quality and "
        "detector slices are always reported)",
    )


def register(sub: Any, parents: Any) -> None:
    ev = sub.add_parser("eval", help="measure accuracy on your own labelled photos")
    evsub = ev.add_subparsers(dest="protocol", required=True)
    p = evsub.add_parser(
        "pairs",
        parents=[parents.common],
        help="1:1 verification on LFW pairs.txt or a CSV of (file_a, file_b, same)",
    )
    _common_eval(p)
    p.add_argument("--pairs", type=Path, required=True, help="pairs.txt (LFW) or pairs CSV")
    p.add_argument("--folds", type=int, default=10, help="folds for a CSV (LFW has its own)")
    p.set_defaults(func=cmd_eval_pairs)
    p = evsub.add_parser(
        "identify", parents=[parents.common], help="1:N identification on DIR/NAME/*.jpg"
    )
    _common_eval(p)
    p.add_argument("--gallery-per-person", type=int, default=1, help="enrolled photos each")
    p.add_argument(
        "--nonmated-fraction",
        type=float,
        default=0.2,
        help="fraction of the people held out as never enrolled (open-set impostors)",
    )
    p.set_defaults(func=cmd_eval_identify)

    p = sub.add_parser(
        "calibrate",
        parents=[parents.common],
        help="threshold for a target false-match rate from an eval's results.json",
    )
    p.add_argument("--from", dest="results", type=Path, required=True, help="results.json")
    p.add_argument(
        "--fmr", type=cli_args.rate, required=True, help="target false-match rate, e.g. 1e-3"
    )
    p.add_argument("--condition", default="clean", help="which condition's scores (clean)")
    p.add_argument("--store", action="store_true", help="save it in the gallery's settings")
    p.set_defaults(func=cmd_calibrate)


def _detector(args: argparse.Namespace) -> str:
    from faceprint.detect import default_detector

    return str(args.detector or default_detector(args.model_dir))


def _finish(results: dict[str, Any], out: Path) -> int:
    from faceprint.eval import report, slice_report

    path = report.write(results, out)
    if results["protocol"] == "pairs":
        header, rows = report.verification_table(results)
    else:
        header, rows = report.identification_table(results)
    import html

    print("\t".join(header))
    for row in rows:
        print("\t".join(html.unescape(c) for c in row))
    for line in slice_report.text(results):
        print(line)
    for c in results["conditions"]:
        for note in c["notes"]:
            print(f"note ({c['condition']}): {note}", file=sys.stderr)
        if c["no_face"]:
            print(
                f"{c['condition']}: no face found in {len(c['no_face'])} image(s) "
                f"(--on-no-face {results['on_no_face']}): {', '.join(c['no_face'][:5])}",
                file=sys.stderr,
            )
    print(f"wrote {path} and {out / 'results.json'} ({results['counts']['seconds']} s)")
    return 0


def _groups(args: argparse.Namespace) -> Any:
    from faceprint.eval.groups import read_groups

    return None if args.groups is None else read_groups(args.root, args.groups)


def cmd_eval_pairs(args: argparse.Namespace) -> int:
    from faceprint.eval import degrade
    from faceprint.eval.pairs import read_pairs
    from faceprint.eval.run import run_pairs

    if args.folds < 2:
        raise FaceprintError("--folds must be at least 2")
    degradations = degrade.parse(args.degrade)
    cli_args.out_dir(args.out)
    pairs = read_pairs(args.root, args.pairs, folds=args.folds, seed=args.seed)
    groups = _groups(args)
    results = run_pairs(
        pairs,
        args.root,
        source=str(args.pairs),
        out=args.out,
        degradations=degradations,
        seed=args.seed,
        on_no_face=args.on_no_face,
        detector=_detector(args),
        model_dir=args.model_dir,
        quiet=args.quiet,
        groups=groups,
    )
    return _finish(results, args.out)


def cmd_eval_identify(args: argparse.Namespace) -> int:
    from faceprint.eval import degrade
    from faceprint.eval.run import run_identify
    from faceprint.io.folders import people_folders

    degradations = degrade.parse(args.degrade)
    cli_args.out_dir(args.out)
    people, problems = people_folders(args.root)
    for path, reason in problems:
        print(f"faceprint: skipped {path}: {reason}", file=sys.stderr)
    groups = _groups(args)
    results = run_identify(
        people,
        args.root,
        out=args.out,
        degradations=degradations,
        seed=args.seed,
        gallery_per_person=args.gallery_per_person,
        nonmated_fraction=args.nonmated_fraction,
        on_no_face=args.on_no_face,
        detector=_detector(args),
        model_dir=args.model_dir,
        quiet=args.quiet,
        groups=groups,
    )
    return _finish(results, args.out)


def cmd_calibrate(args: argparse.Namespace) -> int:
    from faceprint.eval import calibrate

    results = calibrate.load_results(args.results)
    cal = calibrate.calibrate(results, args.fmr, condition=args.condition, source=str(args.results))
    print(
        f"threshold {cal.threshold:.4f} for false-match rate {cal.fmr:g} "
        f"({cal.impostors} impostor scores, {results['protocol']}, {args.condition})"
    )
    if not cal.resolved:
        print(
            f"faceprint: warning: {cal.impostors} impostor scores cannot measure a rate of "
            f"{cal.fmr:g} (needs {round(1 / cal.fmr):g}); the threshold is just above the "
            f"highest impostor score",
            file=sys.stderr,
        )
    if args.store:
        calibrate.store(args.gallery, cal, collection=args.collection)
        print(f"stored in {args.gallery}: identification now uses threshold {cal.threshold:.4f}")
    return 0
