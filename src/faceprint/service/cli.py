"""``faceprint serve`` and ``faceprint api-keys``: the service's command-line front end.

Without a database URL the service runs on the embedded gallery file (``--gallery``; one
process, keys in the same file), so trying it takes one command; with ``--database`` /
``$FACEPRINT_DATABASE`` it runs on PostgreSQL, the production store.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

from faceprint.cli.args import UsageError, byte_size, count, positive_int
from faceprint.errors import FaceprintError
from faceprint.service.defences import SCORE_MODES


def open_database(args: argparse.Namespace, *, create: bool) -> Any:
    from faceprint.service.tables import COMPONENTS

    url = args.database or os.environ.get("FACEPRINT_DATABASE")
    if url:
        from faceprint.gallery.postgres import PostgresDatabase

        return PostgresDatabase(url, components=COMPONENTS)
    from faceprint.gallery.sqlite import SqliteDatabase

    return SqliteDatabase(args.gallery, create=create, components=COMPONENTS)


def cmd_serve(args: argparse.Namespace) -> int:
    import uvicorn

    from faceprint.service.app import create_app

    if not 0 < args.port < 65536:
        raise UsageError(f"--port {args.port} is not a TCP port (1-65535)")
    _check_listen(args.host, args.port)
    db = open_database(args, create=True)
    if db.kind == "sqlite":
        from faceprint.gallery.database import DEFAULT_COLLECTION

        db.collection(DEFAULT_COLLECTION, create=True)
        print(f"faceprint: serving the gallery file {db.where}", file=sys.stderr)
    app = create_app(
        db, max_upload=args.max_upload, detector=args.detector, model_dir=args.model_dir
    )
    try:
        uvicorn.run(
            app, host=args.host, port=args.port, log_level=args.log_level, timeout_keep_alive=30
        )
    finally:
        db.close()
    return 0


def _check_listen(host: str, port: int) -> None:
    """Refuse clearly (exit 1) an address that cannot be listened on, before any work."""
    import socket

    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        with socket.socket(infos[0][0], socket.SOCK_STREAM) as s:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind(infos[0][4])
    except OSError as exc:
        raise FaceprintError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None


def cmd_keys(args: argparse.Namespace) -> int:
    from faceprint.service.auth import create_key, list_keys, revoke_key

    db = open_database(args, create=args.action == "create")
    try:
        if args.action == "create":
            token, key = create_key(
                db,
                args.name,
                [r.strip() for r in args.role.split(",") if r.strip()],
                [c.strip() for c in args.collections.split(",") if c.strip()],
                rate=args.rate,
                burst=args.burst,
                daily_quota=args.daily_quota,
                scores=args.scores,
                target_quota=args.target_quota,
            )
            print(token)
            print(
                f"created key {key.id} ({key.name}): roles {','.join(key.roles)}, collections "
                f"{','.join(key.collections)}, scores {key.scores}, {key.target_quota} queries "
                "per person per day; the token above is shown only once",
                file=sys.stderr,
            )
        elif args.action == "list":
            for k in list_keys(db):
                state = "revoked" if k.revoked else "active"
                print(
                    f"{k.id}\t{k.name}\t{k.prefix}...\t{','.join(k.roles)}\t"
                    f"{','.join(k.collections)}\t{k.rate:g}/s burst {k.burst}\t"
                    f"{k.daily_quota}/day\tscores {k.scores}\t{k.target_quota}/person/day\t"
                    f"{state}"
                )
        else:
            if args.id is None:
                raise UsageError("usage: faceprint api-keys revoke ID")
            revoke_key(db, args.id)
            print(f"revoked key {args.id}")
    finally:
        db.close()
    return 0


def _rate(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not 0 < value <= 10_000:  # also refuses nan and inf
        raise argparse.ArgumentTypeError(f"{text} must be in (0, 10000] requests per second")
    return value


def register(sub: Any, parents: Any) -> None:

    db = argparse.ArgumentParser(add_help=False)
    db.add_argument(
        "--database", metavar="URL", default=None,
        help="PostgreSQL URL, e.g. postgresql://user@localhost/faceprint (default: "
        "$FACEPRINT_DATABASE; without one, the gallery file of --gallery)",
    )  # fmt: skip
    p = sub.add_parser(
        "serve", parents=[parents.common, db],
        help="run the HTTP service (on the gallery file, or PostgreSQL with --database)",
    )  # fmt: skip
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument(
        "--max-upload",
        type=byte_size,
        default=10 * 1024 * 1024,
        help="largest photo in bytes, or with a unit (10M, 512K, 1G); default 10M",
    )
    p.add_argument(
        "--log-level", default="info", choices=["critical", "error", "warning", "info", "debug"]
    )
    p.set_defaults(func=cmd_serve)

    p = sub.add_parser(
        "api-keys", parents=[parents.common, db],
        help="create, list or revoke the HTTP service's API keys",
    )  # fmt: skip
    p.add_argument("action", choices=["create", "list", "revoke"])
    p.add_argument("id", nargs="?", type=positive_int, help="key id (revoke)")
    p.add_argument("--name", default="key", help="a label for the key")
    p.add_argument("--role", default="recognise", help="admin, enroll, recognise (comma list)")
    p.add_argument("--collections", default="", help="collection names (comma list) or '*'")
    p.add_argument("--rate", type=_rate, default=20.0, help="requests per second")
    p.add_argument("--burst", type=count, default=40, help="requests allowed at once")
    p.add_argument("--daily-quota", type=count, default=10_000, help="recognition queries per day")
    p.add_argument(
        "--scores", choices=SCORE_MODES, default=None,
        help="similarities the key sees: full (4 decimals), rounded (2) or none (decisions "
        "only); default full for admin keys, rounded for others",
    )  # fmt: skip
    p.add_argument(
        "--target-quota", type=count, default=None, metavar="N",
        help="recognition queries per day aimed at one person (default: 100, unlimited "
        "for admin keys)",
    )  # fmt: skip
    p.set_defaults(func=cmd_keys)
