"""Score-leak attacks on a running faceprint service (issue 15): the figures behind the
defaults of its defences (README, "Score-leak attacks").

Against the same targets (the first ``--targets`` people of tests/data/identities.csv,
../shared/faces, 2 photos each), through the service's HTTP API only:

* reconstruction (NES in an eigenface space of aligned lfw-dev chips, each probe a full
  photo) in each setting of ``--settings``:

  - ``full``: 4-decimal scores (an admin key; admin keys are not probe-watched and have
    no per-person budget);
  - ``rounded``: 2-decimal scores, precision alone (an admin-role key created with
    ``--scores rounded``: not watched, no per-person budget);
  - ``decision``: decision-only answers, precision alone (admin-role, ``--scores none``);
  - ``defaults``: a non-admin ``recognise`` key with every default (2 decimals, per-person
    budget, probing detection); a fresh key per target, so one target's lock does not
    hide the others;

* the dictionary attack: ``--dictionary`` lfw-dev photos per target in one batch (via
  /verify with the admin key), the share of targets matched at each calibrated FMR
  against 1 - (1 - FMR)^N.

The bench makes its own keys in the service's database (``--database``, the URL the
service was started with)::

    faceprint serve --database postgresql://postgres@127.0.0.1/attack --port 8715 &
    nice python bench/score_attack.py --url http://127.0.0.1:8715 \\
        --database postgresql://postgres@127.0.0.1/attack --out /tmp/score-attack
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

from faceprint.eval import attack, attack_pca, attack_run
from faceprint.eval.attack_client import ServiceClient
from faceprint.eval.attack_run import AttackJob

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
#: setting -> (roles, scores the key sees, answers the harness uses, label)
SETTINGS = {
    "full": (["admin"], "full", "scores", "full scores (admin key)"),
    "rounded": (["admin"], "rounded", "scores", "2 decimals, precision alone"),
    "decision": (["admin"], "none", "decision", "decision only, precision alone"),
    "defaults": (["recognise"], None, "scores", "non-admin defaults (2 dp + budgets + watch)"),
}
BUDGETS = (25, 50, 100, 150, 200, 300, 500, 1000, 2000)


def _job(args: argparse.Namespace, key: str, targets: list[str], **kw: Any) -> AttackJob:
    return AttackJob(
        url=args.url, key=key, collection=args.collection, lfw=args.others, work=args.work,
        seed=args.seed, components=args.components, concurrency=args.concurrency,
        model_dir=args.model_dir, targets=targets, **kw,
    )  # fmt: skip


def budget_table(runs: dict[str, dict[str, Any]]) -> str:
    """Share of targets named within B queries, per setting: what a per-person budget stops."""
    head = "| queries per target B | " + " | ".join(runs) + " |"
    lines = [head, "|---" * (len(runs) + 1) + "|"]
    for b in BUDGETS:
        cells = []
        for rec in runs.values():
            rows = [r for r in rec["targets"] if "queries" in r]
            if b > rec["summary"]["budget_per_target"]:
                cells.append("(not run)")
                continue
            won = sum(r["success"] and r["queries"] <= b for r in rows)
            cells.append(f"{won}/{len(rows)}")
        lines.append(f"| {b} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _reconstruct(
    args: argparse.Namespace, db: Any, setting: str, names: list[str], budget: int
) -> dict[str, Any]:
    from faceprint.service.auth import MAX_COUNT, create_key

    roles, scores, answers, label = SETTINGS[setting]
    if setting == "defaults":  # one fresh key per target, every default
        tokens = [create_key(db, f"bench-{setting}", roles, ["*"])[0] for _ in names]
        groups = [[n] for n in names]
    else:
        token, _ = create_key(
            db, f"bench-{setting}", roles, ["*"], rate=1000, burst=1000,
            daily_quota=MAX_COUNT, scores=scores,
        )  # fmt: skip
        tokens, groups = [token], [names]
    rows: list[dict[str, Any]] = []
    stopped: dict[str, int] = {}
    rec: dict[str, Any] = {}
    for token, group in zip(tokens, groups, strict=True):
        job = _job(args, token, group, answers=answers, budget=budget, dictionary=0,
                   label=label, out=args.out / setting, exclude=names)  # fmt: skip
        res = attack_run.run(job)
        rec = res["reconstruction"]
        rows += rec["targets"]
        for r in rec["targets"]:
            stopped[r["stopped"]] = stopped.get(r["stopped"], 0) + 1
    rec["targets"] = rows
    rec["summary"] = attack.summarise_reconstruction(rows, budget)
    rec["stopped"] = stopped
    print(f"{label}: {json.dumps(rec['summary'])}; stopped {stopped}", flush=True)
    return rec


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--url", required=True, help="the running service")
    ap.add_argument("--database", required=True, help="the service's database (keys)")
    ap.add_argument("--collection", default="score-attack")
    ap.add_argument("--targets", type=int, default=10, help="at most 10: identify's top-k")
    ap.add_argument("--budget", type=int, default=150, help="queries per target")
    ap.add_argument("--decision-budget", type=int, default=None, help="(default: --budget)")
    ap.add_argument("--dictionary", type=int, default=100, help="photos per target (0: skip)")
    ap.add_argument("--settings", default=",".join(SETTINGS), help=f"of {', '.join(SETTINGS)}")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--components", type=int, default=128)
    ap.add_argument("--concurrency", type=int, default=2)
    ap.add_argument("--others", type=Path, default=SHARED / "lfw-dev")
    ap.add_argument("--faces", type=Path, default=SHARED / "faces")
    ap.add_argument("--labels", type=Path, default=ROOT / "tests" / "data" / "identities.csv")
    ap.add_argument("--model-dir", default=None)
    ap.add_argument("--work", type=Path, default=None, help="face-space cache")
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args()
    settings = [s.strip() for s in args.settings.split(",") if s.strip()]
    if not set(settings) <= set(SETTINGS) or not 1 <= args.targets <= 10:
        ap.error(f"--settings: some of {', '.join(SETTINGS)}; --targets: 1 to 10")
    if args.work is None:
        from faceprint.models.store import cache_dir

        args.work = cache_dir() / "attack"
    from faceprint.gallery.postgres import PostgresDatabase
    from faceprint.service.auth import MAX_COUNT, create_key
    from faceprint.service.tables import COMPONENTS

    db = PostgresDatabase(args.database, components=COMPONENTS)
    admin, _ = create_key(db, "bench-admin", ["admin"], ["*"], rate=1000, burst=1000,
                          daily_quota=MAX_COUNT)  # fmt: skip
    started = time.monotonic()
    setup = _job(args, admin, [], setup_key=admin, faces=args.faces, labels=args.labels,
                 count=args.targets)  # fmt: skip
    names = attack_run.prepare(setup)
    print(f"targets: {', '.join(names)}", flush=True)
    results: dict[str, Any] = {"targets": names, "args": {k: str(v) for k, v in vars(args).items()}}
    recs: dict[str, dict[str, Any]] = {}
    for setting in settings:
        budget = args.budget
        if setting == "decision" and args.decision_budget:
            budget = args.decision_budget
        recs[SETTINGS[setting][3]] = results[setting] = _reconstruct(
            args, db, setting, names, budget
        )
    report = ["# Score-leak attack: all settings", ""]
    if recs:
        report.append(attack.reconstruction_table([(k, r["summary"]) for k, r in recs.items()]))
        report += ["", "Targets named within B queries:", "", budget_table(recs), ""]
        report += [f"- {k}: stopped {r['stopped']}" for k, r in recs.items()]
    if args.dictionary:
        photos = attack_pca.person_photos(args.others, exclude=names)
        with ServiceClient(args.url, admin) as client:
            d = attack.dictionary_attack(
                client, args.collection, photos, names, args.dictionary, args.seed,
                scored=True, concurrency=args.concurrency, real=False,
            )  # fmt: skip
        results["dictionary"] = d
        report += ["", f"## Dictionary: {args.dictionary} lfw-dev photos per target", ""]
        report.append(attack.dictionary_table(d["scored"], args.dictionary))
    db.close()
    results["seconds"] = round(time.monotonic() - started, 1)
    report += ["", f"total {results['seconds']} s"]
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "results.json").write_text(json.dumps(attack_run.jsonable(results), indent=1))
    (args.out / "report.md").write_text("\n".join(report) + "\n")
    print("\n".join(report))
    print(f"wrote {args.out / 'results.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
