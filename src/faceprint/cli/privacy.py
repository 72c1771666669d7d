"""``faceprint keys create``, ``encrypt-gallery``, ``identify-encrypted``.

``faceprint forget NAME --enc DIR --keys DIR`` erases a person from encrypted galleries too.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any


def cmd_keys_create(args: argparse.Namespace) -> int:
    from faceprint.privacy import create_keys

    key_id = create_keys(args.dir)
    print(f"created key set {key_id} in {args.dir} (keep {args.dir}/secret.key private)")
    return 0


def cmd_encrypt_gallery(args: argparse.Namespace) -> int:
    from faceprint.privacy import encrypt_gallery

    enc = encrypt_gallery(args.gallery, args.keys, args.out)
    used = int((enc.slot_person >= 0).sum())
    print(f"encrypted {used} templates of {len(enc.people)} people into {args.out}")
    return 0


def cmd_identify_encrypted(args: argparse.Namespace) -> int:
    from faceprint.match.verify import resolve_threshold
    from faceprint.privacy import identify_encrypted

    threshold = None
    if args.threshold is not None or args.fmr is not None:
        threshold = resolve_threshold(args.threshold, args.fmr).similarity
    d = identify_encrypted(
        args.photo,
        args.enc,
        args.keys,
        encrypted_probe=args.encrypted_probe,
        threshold=threshold,
    )
    if args.json:
        print(json.dumps({"photo": args.photo, "name": d.name, "similarity": d.similarity}))
    else:
        print(f"{args.photo}\t{d.name if d.name is not None else 'unknown'}\t{d.similarity:.2f}")
    return 0


def register(sub: Any, parents: Any) -> None:
    help_dir = "directory for a homomorphic-encryption key set (secret key file mode 0600)"
    keys = sub.add_parser("keys", help="homomorphic-encryption keys for encrypted search")
    keys.add_argument("action", choices=["create"])
    keys.add_argument("--dir", type=Path, required=True, help=help_dir)
    keys.set_defaults(func=cmd_keys_create)

    p = sub.add_parser(
        "encrypt-gallery", parents=[parents.common], help="encrypt a gallery's templates (CKKS)"
    )
    p.add_argument("--keys", type=Path, required=True, help="key directory (with secret key)")
    p.add_argument("--out", type=Path, required=True, help="encrypted gallery to write")
    p.set_defaults(func=cmd_encrypt_gallery)

    p = sub.add_parser(
        "identify-encrypted",
        parents=[parents.thresholds],
        help="identify the subject face of a photo in an encrypted gallery",
    )
    p.add_argument("photo")
    p.add_argument("--enc", type=Path, required=True, help="encrypted gallery")
    p.add_argument("--keys", type=Path, required=True, help="key directory")
    p.add_argument(
        "--encrypted-probe", action="store_true", help="encrypt the probe before matching"
    )
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_identify_encrypted)
