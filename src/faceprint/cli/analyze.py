"""``faceprint analyze PHOTO...`` (expression and liveness per face) and
``faceprint liveness PHOTO...`` (live or spoof per face)."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from faceprint.errors import FaceprintError, NoFaceError, SpoofError


def _faces(args: argparse.Namespace, photo: str, which: tuple[str, ...]) -> list[Any]:
    from faceprint.attributes import annotate
    from faceprint.detect import detect
    from faceprint.io import load_image

    image = load_image(photo)
    faces = detect(image, detector=args.detector, model_dir=args.model_dir)
    return annotate(image, faces, which, model_dir=args.model_dir)


def _run(args: argparse.Namespace, which: tuple[str, ...]) -> tuple[int, bool]:
    """Print the attributes of every face; return the exit status and whether a face was
    judged spoofed."""
    spoofed = False
    report: list[dict[str, Any]] = []
    failures = no_face = 0
    for photo in args.photos:
        try:
            faces = _faces(args, photo, which)
        except FaceprintError as exc:
            if len(args.photos) == 1:
                raise
            failures += 1
            print(f"faceprint: {exc}", file=sys.stderr)
            report.append({"photo": photo, "error": str(exc)})
            continue
        if not faces:
            no_face += 1
            print(f"faceprint: {photo}: no face found", file=sys.stderr)
        report.append({"photo": photo, "faces": [f.to_dict() for f in faces]})
        spoofed |= any(not f.attributes.get("liveness", {"live": True})["live"] for f in faces)
        if args.json:
            continue
        for i, face in enumerate(faces):
            box = ",".join(str(round(v)) for v in face.box.as_list())
            parts = [photo, f"face {i}", f"box {box}"]
            if "expression" in face.attributes:
                found = face.attributes["expression"]
                prob = found["probabilities"][found["label"]]
                parts.append(f"{found['label']} {prob:.2f}")
            if "liveness" in face.attributes:
                live = face.attributes["liveness"]
                verdict = "live" if live["live"] else "SPOOF"
                parts.append(f"{verdict} (liveness {live['score']:.2f})")
            print("\t".join(parts))
    if args.json:
        print(json.dumps(report if len(report) != 1 else report[0], indent=2))
    if failures:
        return 2, spoofed
    return (NoFaceError.exit_code if no_face else 0), spoofed


def cmd_analyze(args: argparse.Namespace) -> int:
    which = ("expression", "liveness") if not args.no_liveness else ("expression",)
    return _run(args, which)[0]


def cmd_liveness(args: argparse.Namespace) -> int:
    """Exit status 0 when every face looks live, SpoofError's (7) when one does not."""
    status, spoofed = _run(args, ("liveness",))
    return SpoofError.exit_code if status == 0 and spoofed else status


def register(sub: Any, parents: Any) -> None:
    p = sub.add_parser(
        "analyze", parents=[parents.common], help="expression and liveness of each face"
    )
    p.add_argument("photos", nargs="+")
    p.add_argument("--json", action="store_true", help="all probabilities, machine-readable")
    p.add_argument(
        "--no-liveness", action="store_true", help="expression only (no liveness model files)"
    )
    p.set_defaults(func=cmd_analyze)
    p = sub.add_parser(
        "liveness",
        parents=[parents.common],
        help="is each face a live person or a photo/screen of one? (passive, single image)",
    )
    p.add_argument("photos", nargs="+")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=cmd_liveness)
