"""One attack run end to end (``faceprint eval attack``): targets, face space, the two
attacks, tables and ``results.json``."""

from __future__ import annotations

import json
import math
import platform
import sys
import time
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from faceprint.errors import FaceprintError
from faceprint.eval import attack, attack_pca
from faceprint.eval.attack_client import ServiceClient
from faceprint.eval.attack_nes import NesSettings


@dataclass
class AttackJob:
    url: str
    key: str
    collection: str
    lfw: Path  # photos of other people: NAME/*.jpg (face space, carrier, dictionary)
    work: Path  # cache of the face space
    out: Path | None = None
    targets: list[str] = field(default_factory=list)  # already enrolled (or from labels)
    setup_key: str | None = None  # admin key to create the collection and enroll
    faces: Path | None = None  # photos of the targets
    labels: Path | None = None  # CSV file,person of those photos
    count: int = 10  # targets to enroll from the labels
    per_target: int = 2
    answers: str = "scores"
    endpoint: str = "identify"
    budget: int = 2000  # answered queries per target (0: no reconstruction)
    dictionary: int = 100  # photos per target (0: no dictionary attack)
    fmr: float | None = None  # false-match rate the attacker asks for (None: the service's)
    round_to: int | None = None  # round the scores further (simulates a coarser key setting)
    seed: int = 0
    components: int = 128
    concurrency: int = 2
    settings: NesSettings = field(default_factory=NesSettings)
    detector: str | None = None
    model_dir: str | None = None
    label: str | None = None  # name of this setting in tables
    keep_points: bool = False
    exclude: list[str] = field(default_factory=list)  # more people kept out of the face space


def _say(msg: str) -> None:
    print(f"faceprint: {msg}", file=sys.stderr, flush=True)


def setting_label(job: AttackJob, decimals: int | None) -> str:
    if job.label:
        return job.label
    if job.answers == "decision":
        return "decision only (simulated)"
    if job.round_to is not None:
        return f"scores, {job.round_to} decimal{'s' * (job.round_to != 1)} (simulated)"
    return f"scores, {decimals} decimals" if decimals is not None else "scores"


def prepare(job: AttackJob, progress: attack.Progress | None = _say) -> list[str]:
    """The target names: enrolled now from the labels (with the setup key), or as given."""
    if job.targets:
        return list(job.targets)
    if not (job.setup_key and job.faces and job.labels):
        raise FaceprintError(
            "name the enrolled targets (--targets), or give --setup-key, --faces and --labels "
            "to enroll them"
        )
    with ServiceClient(job.url, job.setup_key) as setup:
        enrolled = attack.enroll_targets(
            setup, job.collection, job.faces, job.labels, job.count, job.per_target, progress
        )
    return sorted(enrolled)


def run(job: AttackJob, progress: attack.Progress | None = _say) -> dict[str, Any]:
    """Run the job's attacks; the results (also written to ``job.out`` when given)."""
    started = time.monotonic()
    targets = prepare(job, progress)
    result: dict[str, Any] = {
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "url": job.url,
        "collection": job.collection,
        "targets": targets,
        "job": {k: v for k, v in jsonable(asdict(job)).items() if "key" not in k},
        "machine": f"{platform.machine()}, {__import__('os').cpu_count()} cores",
    }
    with ServiceClient(job.url, job.key) as client:
        if job.budget > 0:
            result["reconstruction"] = _reconstruction(job, client, targets, progress)
        if job.dictionary > 0:
            photos = attack_pca.person_photos(job.lfw, exclude=targets)
            if progress:
                progress(f"dictionary attack: {job.dictionary} photos per target")
            result["dictionary"] = attack.dictionary_attack(
                client, job.collection, photos, targets, job.dictionary, job.seed,
                scored=job.answers == "scores", concurrency=job.concurrency, fmr=job.fmr,
            )  # fmt: skip
        result["accounting"] = client.accounting.to_dict()
    result["seconds"] = round(time.monotonic() - started, 1)
    result["report"] = report(result)
    if job.out is not None:
        write(result, job.out)
    return result


def _reconstruction(
    job: AttackJob, client: ServiceClient, targets: list[str], progress: attack.Progress | None
) -> dict[str, Any]:
    photos = attack_pca.person_photos(job.lfw, exclude=[*targets, *job.exclude])
    if progress:
        progress(f"face space: {len(photos)} photos, {job.components} components (cached)")

    def built(i: int, n: int) -> None:
        if progress and i % 250 == 0:
            progress(f"face space: aligning photo {i + 1} of {n}")

    space = attack_pca.face_space(
        job.lfw, photos, job.work, components=job.components, detector=job.detector,
        model_dir=job.model_dir, progress=built,
    )  # fmt: skip
    name = attack_pca.pick_carrier(space)
    carrier = attack_pca.carrier(
        job.lfw, name, space, detector=job.detector, model_dir=job.model_dir
    )
    rec = attack.Reconstructor(
        client, job.collection, space, carrier, answers=job.answers, endpoint=job.endpoint,
        fmr=job.fmr, round_to=job.round_to, concurrency=job.concurrency, settings=job.settings,
    )  # fmt: skip
    rows = attack.reconstruct_all(rec, targets, job.budget, job.seed, progress, job.keep_points)
    runs = [r.pop("_run") for r in rows if "_run" in r]
    decimals = attack.decimals([s for r in runs for s in r.scores])
    summary = attack.summarise_reconstruction(rows, job.budget)
    if job.out is not None:
        _save_best(job.out, rec, runs, job.answers)
    out = {
        "setting": setting_label(job, decimals),
        "score_decimals": decimals,
        "carrier": name,
        "face_space_photos": len(space.photos),
        "summary": summary,
        "targets": rows,
    }
    if job.keep_points:
        out["_runs"] = runs
    return out


def _save_best(out: Path, rec: attack.Reconstructor, runs: list[Any], mode: str) -> None:
    import numpy as np

    folder = out / "probes"
    folder.mkdir(parents=True, exist_ok=True)
    for r in runs:
        if r.best_z:
            (folder / f"{mode}-{r.target}.png").write_bytes(rec.probe(np.array(r.best_z)))


def report(result: dict[str, Any]) -> str:
    parts = [f"# Score-leak attack on {result['url']} ({len(result['targets'])} targets)"]
    rec = result.get("reconstruction")
    if rec:
        parts += ["", "## Reconstruction", ""]
        parts.append(attack.reconstruction_table([(rec["setting"], rec["summary"])]))
    d = result.get("dictionary")
    if d:
        parts += ["", f"## Dictionary ({d['n']} photos per target, one batch)", ""]
        if "scored" in d:
            parts.append(attack.dictionary_table(d["scored"], d["n"]))
            if (d.get("score_decimals") or 0) < 4:
                parts += ["", "(scores seen with fewer than 4 decimals: the decisions at the "
                          "thresholds above are approximate; use an admin key)"]  # fmt: skip
        if "real" in d:
            t = d["real"]["targets"]
            asked = d["real"]["fmr_asked"]
            at = "the service's threshold" if asked is None else f"fmr={asked:g} asked"
            parts += [
                "",
                f"Real attack at {at}: {t['k']}/{t['n']} targets named "
                f"({t['rate']:.2f}, 95% CI {t['ci95'][0]:.2f}-{t['ci95'][1]:.2f}); other "
                f"people named: {d['real']['named_someone_else']}",
            ]
    acc = result["accounting"]
    parts += [
        "",
        f"Requests {acc['requests']} (answered {acc['answered']}, refused 429 "
        f"{acc['refused_429']}, waited {acc['waited_s']} s); budget exhausted: "
        f"{acc['budget_exhausted'] or 'no'}; {result['seconds']} s",
    ]
    return "\n".join(parts) + "\n"


def write(result: dict[str, Any], out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    clean = {k: v for k, v in result.items() if k != "report"}
    (out / "results.json").write_text(json.dumps(jsonable(clean), indent=1) + "\n")
    (out / "report.md").write_text(result["report"])


def jsonable(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {str(k): jsonable(v) for k, v in obj.items() if not str(k).startswith("_")}
    if isinstance(obj, list | tuple):
        return [jsonable(v) for v in obj]
    if isinstance(obj, Path):
        return str(obj)
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj
