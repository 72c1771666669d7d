"""Photo-library commands: ``index`` folders of photos, list ``people`` (named people and
unnamed clusters), correct them (``name``, ``merge``, ``split``, ``move``, ``not``,
``hide``), list a person's ``photos``, write XMP sidecars (``xmp write``).

Each works on the gallery file (``--gallery``) or a PostgreSQL database (``--database``)
and a collection; named people are gallery people, so ``faceprint identify`` finds them.
The work is done by :mod:`faceprint.library` (the HTTP service calls the same functions).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from faceprint.cli.args import UsageError, positive_int
from faceprint.library.store import Library

#: Largest id accepted on the command line (ids are 64-bit in the database).
MAX_ID = 2**62


def ident(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an id (a whole number)") from None
    if not 0 <= value <= MAX_ID:
        raise argparse.ArgumentTypeError(f"{text} is not a valid id")
    return value


@contextmanager
def opened(args: argparse.Namespace, *, write: bool, create: bool = False) -> Iterator[Library]:
    """The library of ``--collection`` in ``--database`` or ``--gallery``."""
    from faceprint.library.schema import COMPONENT

    db: Any
    if args.database:
        from faceprint.gallery.postgres import PostgresDatabase

        db = PostgresDatabase(args.database, components=[COMPONENT])
    else:
        from faceprint.gallery.sqlite import SqliteDatabase

        db = SqliteDatabase(args.gallery, create=create, read_only=not write,
                            components=[COMPONENT])  # fmt: skip
    try:
        yield Library(db.collection(args.collection, create=create))
    finally:
        db.close()


def cmd_index(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from faceprint.library.index import index, plan
    from faceprint.models.packs import pack

    for root in args.photos:
        if not root.is_dir():
            raise UsageError(f"{root}: not a folder of photos")
    start = time.perf_counter()
    with opened(args, write=True, create=True) as lib:
        with lib.db.reading() as tx:
            row = tx.one(
                "SELECT pack FROM library_faces WHERE collection_id = %s LIMIT 1", (lib.cid,)
            )
        of = pack(str(row[0]) if row else lib.store.pack)
        todo = plan(lib, args.photos)
        analyser = None
        if args.ray or args.ray_address:
            from faceprint.library.ray_index import ray_analyser

            analyser = ray_analyser(of.id, args.detector, args.model_dir, address=args.ray_address)
        found = [0]
        with tqdm(total=len(todo.todo), desc="indexing", unit="photo", file=sys.stderr,
                  disable=args.quiet or not todo.todo) as bar:  # fmt: skip

            def progress(photos: int, faces: int) -> None:
                found[0] += faces
                bar.set_postfix(faces=found[0], refresh=False)
                bar.update(photos)

            report = index(
                lib, args.photos, of, detector=args.detector, model_dir=args.model_dir,
                batch_size=args.batch_size, analyser=analyser, progress=progress, planned=todo,
            )  # fmt: skip
        written = None
        if args.write_xmp:
            from faceprint.library.sidecars import write_sidecars

            written = write_sidecars(lib)
    seconds = time.perf_counter() - start
    rate = report.analysed / seconds if seconds > 0 else 0.0
    print(
        f"indexed {report.analysed} new photo(s) with {report.faces} face(s) in {seconds:.1f} s "
        f"({rate:.1f} photos/s, {report.faces / max(seconds, 1e-9):.1f} faces/s); "
        f"{report.unchanged} unchanged, {report.copies} copies of known photos, "
        f"{report.removed} gone ({report.faces_removed} face(s) dropped)"
    )
    if report.named_from_xmp:
        print(f"{report.named_from_xmp} face(s) named from XMP face regions")
    if report.regrouped is not None and report.regrouped.faces:
        g = report.regrouped
        print(f"clustered {g.faces} new face(s): {g.clusters} clusters and people in all")
    if written is not None:
        print(f"wrote {len(written.files)} XMP sidecar(s)")
    failures = report.failures + (written.failures if written else [])
    for path, reason in failures:
        print(f"faceprint: skipped {path}: {reason}", file=sys.stderr)
    return 2 if failures else 0


def cmd_people(args: argparse.Namespace) -> int:
    from faceprint.library.regroup import recluster
    from faceprint.library.view import listing

    with opened(args, write=args.recluster) as lib:
        if args.recluster:
            done = recluster(lib)
            print(f"re-clustered {done.faces} faces: {done.changed} changed cluster, "
                  f"{done.clusters} clusters and people", file=sys.stderr)  # fmt: skip
        with lib.db.reading() as tx:
            library = lib.has_data(tx)
            shown = listing(lib, tx) if library else None
        people = lib.store.people()
    if shown is None:  # a gallery without photo-library data: its enrolled people
        if args.json:
            out = [{"name": p.name, "templates": p.templates, "metadata": p.metadata}
                   for p in people]  # fmt: skip
            print(json.dumps(out, indent=2))
        else:
            for p in people:
                print(f"{p.name}\t{p.templates} template{'s' if p.templates != 1 else ''}")
            print(f"{len(people)} people in {args.database or args.gallery}", file=sys.stderr)
        return 0
    if args.json:
        print(json.dumps(shown.to_dict(), indent=2))
        return 0
    for g in shown.people:
        rep = g.representative
        print(f"{g.id}\t{g.name or '(unnamed)'}\t{len(g.faces)} face(s)\t"
              f"face {rep.id} in {rep.photo}")  # fmt: skip
    named = sum(1 for g in shown.people if g.name)
    print(f"{named} named people, {len(shown.people) - named} unnamed clusters, "
          f"{len(shown.unassigned)} face(s) in no cluster", file=sys.stderr)  # fmt: skip
    return 0


def _decide(args: argparse.Namespace, action: Any, *params: Any, **kw: Any) -> int:
    with opened(args, write=True) as lib:
        done = action(lib, *params, **kw)
    print(done.message)
    return 0


def cmd_name(args: argparse.Namespace) -> int:
    from faceprint.library.people import name

    return _decide(args, name, args.cluster, args.name)


def cmd_merge(args: argparse.Namespace) -> int:
    from faceprint.library.people import merge

    return _decide(args, merge, args.a, args.b)


def cmd_split(args: argparse.Namespace) -> int:
    from faceprint.library.people import split

    return _decide(args, split, args.cluster, args.faces)


def cmd_move(args: argparse.Namespace) -> int:
    from faceprint.library.people import move

    if (args.person is None) == (args.cluster is None):
        raise UsageError("give the PERSON the face is, or --cluster ID, one of the two")
    return _decide(args, move, args.face, person=args.person, cluster=args.cluster)


def cmd_not(args: argparse.Namespace) -> int:
    from faceprint.library.people import reject

    return _decide(args, reject, args.face, args.person)


def cmd_hide(args: argparse.Namespace) -> int:
    from faceprint.library.people import hide

    return _decide(args, hide, args.face, undo=args.undo)


def cmd_photos(args: argparse.Namespace) -> int:
    from faceprint.library.view import photos_of

    with opened(args, write=False) as lib, lib.db.reading() as tx:
        found = photos_of(lib, tx, args.name, args.together)
    if args.json:
        print(json.dumps({"person": args.name, "with": args.together, "photos": found}, indent=2))
    else:
        for p in found:
            print(f"{p['time']}\t{p['photo']}")
        print(f"{len(found)} photo(s)", file=sys.stderr)
    return 0


def cmd_xmp(args: argparse.Namespace) -> int:
    from faceprint.library.sidecars import write_sidecars

    with opened(args, write=False) as lib:
        written = write_sidecars(lib)
    print(f"wrote {len(written.files)} XMP sidecar(s)")
    for path, reason in written.failures:
        print(f"faceprint: {path}: {reason}", file=sys.stderr)
    return 2 if written.failures else 0


def register(subparsers: Any, parents: Any) -> None:
    db = argparse.ArgumentParser(add_help=False)
    db.add_argument(
        "--database", metavar="URL", help="a PostgreSQL database (postgresql://...), not --gallery"
    )
    common = [parents.common, db]
    p = subparsers.add_parser(
        "index", parents=common, help="find and cluster every face in folders of photos",
        description="Walk the folders (recursively), store every face of every photo (JPEG, "
        "PNG, WebP, TIFF, HEIC) with its template, and cluster the new faces into people. "
        "A re-run reads only new or changed files; an interrupted run continues.",
    )  # fmt: skip
    p.add_argument("photos", nargs="+", type=Path, metavar="PHOTOS_DIR")
    p.add_argument("--write-xmp", action="store_true",
                   help="then write named faces to XMP sidecars (photo.jpg.xmp)")  # fmt: skip
    p.add_argument("--ray", action="store_true", help="detect and embed on Ray (local cluster)")
    p.add_argument("--ray-address", metavar="ADDR", help="an existing Ray cluster (implies --ray)")
    p.add_argument("--batch-size", type=positive_int, default=16, help="photos per transaction")
    p.set_defaults(func=cmd_index)

    p = subparsers.add_parser(
        "people", parents=common, help="list people (and, for a photo library, clusters)"
    )
    p.add_argument("--json", action="store_true")
    p.add_argument(
        "--recluster", action="store_true",
        help="cluster every library face again (keeps every human decision)",
    )  # fmt: skip
    p.set_defaults(func=cmd_people)

    p = subparsers.add_parser("name", parents=common, help="name a cluster (or rename a person)")
    p.add_argument("cluster", type=ident, help="cluster or person id (faceprint people)")
    p.add_argument("name", help="the person's name (an existing person: the two are merged)")
    p.set_defaults(func=cmd_name)

    p = subparsers.add_parser("merge", parents=common, help="two clusters are one person")
    p.add_argument("a", type=ident, help="cluster or person id (kept)")
    p.add_argument("b", type=ident, help="cluster or person id (joins A)")
    p.set_defaults(func=cmd_merge)

    p = subparsers.add_parser("split", parents=common, help="these faces are not the others")
    p.add_argument("cluster", type=ident)
    p.add_argument("faces", type=ident, nargs="+", metavar="FACE", help="face ids to split off")
    p.set_defaults(func=cmd_split)

    p = subparsers.add_parser("move", parents=common, help="this face is this person")
    p.add_argument("face", type=ident)
    p.add_argument("person", nargs="?", help="the person's name")
    p.add_argument("--cluster", type=ident, help="move to this (unnamed) cluster instead")
    p.set_defaults(func=cmd_move)

    p = subparsers.add_parser("not", parents=common, help="this face is not this person")
    p.add_argument("face", type=ident)
    p.add_argument("person")
    p.set_defaults(func=cmd_not)

    p = subparsers.add_parser("hide", parents=common, help="never cluster or enroll this face")
    p.add_argument("face", type=ident)
    p.add_argument("--undo", action="store_true", help="show a hidden face again")
    p.set_defaults(func=cmd_hide)

    p = subparsers.add_parser("photos", parents=common, help="photos of a person, newest first")
    p.add_argument("name")
    p.add_argument("--with", dest="together", metavar="NAME2", help="only photos with NAME2 too")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_photos)

    p = subparsers.add_parser("xmp", parents=common, help="write named faces to XMP sidecars")
    p.add_argument("action", choices=["write"])
    p.set_defaults(func=cmd_xmp)
