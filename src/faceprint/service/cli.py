"""``faceprint serve`` and ``faceprint api-keys``: the service's command-line front end."""

from __future__ import annotations

import argparse
import os
from typing import Any

from faceprint.errors import FaceprintError


def _database(args: argparse.Namespace) -> Any:
    from faceprint.gallery.postgres import PostgresDatabase

    url = args.database or os.environ.get("FACEPRINT_DATABASE")
    if not url:
        raise FaceprintError("give --database URL (or set FACEPRINT_DATABASE)")
    return PostgresDatabase(url)


def cmd_serve(args: argparse.Namespace) -> int:
    import uvicorn

    from faceprint.service.app import create_app

    app = create_app(
        _database(args),
        max_upload=args.max_upload,
        detector=args.detector,
        model_dir=args.model_dir,
    )
    uvicorn.run(
        app, host=args.host, port=args.port, log_level=args.log_level, timeout_keep_alive=30
    )
    return 0


def cmd_keys(args: argparse.Namespace) -> int:
    from faceprint.service.auth import create_key, list_keys, revoke_key

    db = _database(args)
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
            )
            print(token)
            print(
                f"created key {key.id} ({key.name}): roles {','.join(key.roles)}, collections "
                f"{','.join(key.collections)}; the token above is shown only once",
                file=__import__("sys").stderr,
            )
        elif args.action == "list":
            for k in list_keys(db):
                state = "revoked" if k.revoked else "active"
                print(
                    f"{k.id}\t{k.name}\t{k.prefix}...\t{','.join(k.roles)}\t"
                    f"{','.join(k.collections)}\t{k.rate:g}/s burst {k.burst}\t"
                    f"{k.daily_quota}/day\t{state}"
                )
        else:
            if args.id is None:
                raise FaceprintError("usage: faceprint api-keys revoke ID")
            revoke_key(db, args.id)
            print(f"revoked key {args.id}")
    finally:
        db.close()
    return 0


def register(sub: Any, parents: Any) -> None:
    db = argparse.ArgumentParser(add_help=False)
    db.add_argument(
        "--database",
        metavar="URL",
        default=None,
        help="PostgreSQL URL, e.g. postgresql://user@localhost/faceprint "
        "(default: $FACEPRINT_DATABASE)",
    )
    p = sub.add_parser("serve", parents=[db], help="run the HTTP service (PostgreSQL gallery)")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument(
        "--max-upload", type=int, default=10 * 1024 * 1024, help="bytes per uploaded image"
    )
    p.add_argument("--detector", choices=["mmod", "yunet"], default=None)
    p.add_argument("--model-dir", default=None)
    p.add_argument("--log-level", default="info")
    p.set_defaults(func=cmd_serve)

    p = sub.add_parser(
        "api-keys", parents=[db], help="create, list or revoke the HTTP service's API keys"
    )
    p.add_argument("action", choices=["create", "list", "revoke"])
    p.add_argument("id", nargs="?", type=int, help="key id (revoke)")
    p.add_argument("--name", default="key", help="a label for the key")
    p.add_argument("--role", default="recognise", help="admin, enroll, recognise (comma list)")
    p.add_argument("--collections", default="", help="collection names (comma list) or '*'")
    p.add_argument("--rate", type=float, default=20.0, help="requests per second")
    p.add_argument("--burst", type=int, default=40, help="requests allowed at once")
    p.add_argument("--daily-quota", type=int, default=10_000, help="recognition queries per day")
    p.set_defaults(func=cmd_keys)
