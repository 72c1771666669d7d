"""``faceprint eval attack``: measure score-leak attacks against a running HTTP service."""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any

from faceprint.errors import FaceprintError


def _work_dir(value: str | None) -> Path:
    if value:
        return Path(value)
    from faceprint.models.store import cache_dir

    return cache_dir() / "attack"


def cmd_attack(args: argparse.Namespace) -> int:
    from faceprint.eval.attack_nes import NesSettings
    from faceprint.eval.attack_run import AttackJob, run

    key = args.key or os.environ.get("FACEPRINT_API_KEY")
    if not key:
        raise FaceprintError("give --key (or set FACEPRINT_API_KEY): the attacking API key")
    try:
        settings = NesSettings(population=args.population, sigma=args.sigma, lr=args.lr)
    except ValueError as exc:
        raise FaceprintError(str(exc)) from exc
    if args.budget < 0 or args.dictionary < 0 or args.concurrency < 1:
        raise FaceprintError("--budget and --dictionary must be >= 0, --concurrency >= 1")
    job = AttackJob(
        url=args.url,
        key=key,
        collection=args.collection,
        lfw=Path(args.others),
        work=_work_dir(args.work),
        out=Path(args.out) if args.out else None,
        targets=[t.strip() for t in (args.targets or "").split(",") if t.strip()],
        setup_key=args.setup_key,
        faces=Path(args.faces) if args.faces else None,
        labels=Path(args.labels) if args.labels else None,
        count=args.count,
        per_target=args.per_target,
        answers=args.answers,
        endpoint=args.endpoint,
        budget=args.budget,
        dictionary=args.dictionary,
        fmr=args.client_fmr,
        round_to=args.round_scores,
        seed=args.seed,
        components=args.components,
        concurrency=args.concurrency,
        settings=settings,
        detector=args.detector,
        model_dir=args.model_dir,
    )
    result = run(job)
    print(result["report"], end="")
    if job.out is not None:
        print(f"wrote {job.out / 'results.json'} and {job.out / 'report.md'}")
    return 0


def _eval_subparsers(sub: Any) -> Any:
    """The sub-command group of ``faceprint eval`` (registered by faceprint.cli.evaluate)."""
    ev = sub.choices.get("eval")
    if ev is not None:
        for action in ev._actions:
            if isinstance(action, argparse._SubParsersAction):
                return action
    raise RuntimeError("faceprint.cli.attack must be registered after faceprint.cli.evaluate")


def register(sub: Any, parents: Any) -> None:
    p = _eval_subparsers(sub).add_parser(
        "attack",
        help="score-leak attacks (reconstruction, dictionary) on a running HTTP service",
        description="Reconstruct enrolled people's faces from similarity scores and try "
        "dictionaries of other people's photos, against a running faceprint service, "
        "through its HTTP API only. Reports queries to success and success rates.",
    )
    p.add_argument("--url", required=True, help="the service, e.g. http://127.0.0.1:8000")
    p.add_argument("--key", help="the attacking API key (default: $FACEPRINT_API_KEY)")
    p.add_argument("--collection", required=True, help="collection holding the targets")
    p.add_argument(
        "--others",
        required=True,
        metavar="DIR",
        help="photos of other people, DIR/NAME/*.jpg (face space, carrier, dictionary)",
    )
    p.add_argument("--targets", help="enrolled people to attack (comma list)")
    p.add_argument("--setup-key", help="admin key to create the collection and enroll targets")
    p.add_argument("--faces", metavar="DIR", help="photos of the targets (with --labels)")
    p.add_argument("--labels", metavar="CSV", help="file,person of the photos in --faces")
    p.add_argument("--count", type=int, default=10, help="targets to enroll from --labels (10)")
    p.add_argument("--per-target", type=int, default=2, help="photos enrolled per target (2)")
    p.add_argument(
        "--answers",
        choices=["scores", "decision"],
        default="scores",
        help="scores: use what the key gets; decision: keep only the name (simulated)",
    )
    p.add_argument(
        "--round-scores",
        type=int,
        default=None,
        metavar="N",
        help="round the returned scores to N decimals here (simulates a coarser key setting)",
    )
    p.add_argument("--endpoint", choices=["identify", "verify"], default="identify")
    p.add_argument("--budget", type=int, default=2000, help="queries per target (0: skip)")
    p.add_argument(
        "--dictionary", type=int, default=100, help="other people's photos per target (0: skip)"
    )
    p.add_argument(
        "--client-fmr",
        type=float,
        default=None,
        help="ask identify for this false-match rate (what a client may send today)",
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--components", type=int, default=128, help="eigenfaces searched (128)")
    p.add_argument("--population", type=int, default=20, help="probes per NES generation")
    p.add_argument("--sigma", type=float, default=0.5, help="NES perturbation (std devs)")
    p.add_argument("--lr", type=float, default=0.08, help="NES (Adam) step size")
    p.add_argument("--concurrency", type=int, default=2, help="requests in flight (2)")
    p.add_argument("--model-dir", default=None, help="model files for the local face space")
    p.add_argument("--detector", choices=["mmod", "yunet"], default=None)
    p.add_argument("--work", help="cache for the face space (default: <cache>/attack)")
    p.add_argument("--out", help="write results.json, report.md and best probes here")
    p.set_defaults(func=cmd_attack)
