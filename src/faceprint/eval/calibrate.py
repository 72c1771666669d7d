"""Thresholds from an evaluation's impostor scores, optionally stored in a gallery."""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from faceprint.errors import FaceprintError, GalleryError
from faceprint.eval import metrics


@dataclass(frozen=True)
class Calibration:
    threshold: float
    fmr: float
    impostors: int
    resolved: bool  # enough impostors to measure this rate (n * fmr >= 1)
    provenance: dict[str, Any]


#: Largest results.json read (a million pairs make about 40 MB).
MAX_RESULTS_BYTES = 1 << 30


def load_results(path: Path) -> dict[str, Any]:
    from faceprint.io import read_file

    raw = read_file(path, MAX_RESULTS_BYTES, error=FaceprintError)
    try:
        data: Any = json.loads(raw.decode("utf-8"))
    except (ValueError, RecursionError) as exc:
        raise FaceprintError(f"{path}: not a readable results.json ({exc})") from None
    ok = isinstance(data, dict) and data.get("protocol") in ("pairs", "identify")
    if not ok or not isinstance(data.get("conditions"), list):
        raise FaceprintError(f"{path}: not the results.json of a faceprint eval")
    for c in data["conditions"]:
        if not (isinstance(c, dict) and isinstance(c.get("condition"), str)
                and isinstance(c.get("data"), dict)):  # fmt: skip
            raise FaceprintError(f"{path}: a condition without its data (not a faceprint eval)")
    for key in ("source", "pack", "detector"):
        if not isinstance(data.get(key), str):
            raise FaceprintError(f"{path}: no {key!r} (not the results.json of a faceprint eval)")
    return dict(data)


def impostor_scores(results: dict[str, Any], condition: str = "clean") -> np.ndarray:
    """Impostor pair scores (pairs) or non-mated top-1 scores (identify), failures left out."""
    by_name = {c["condition"]: c for c in results["conditions"]}
    if condition not in by_name:
        raise FaceprintError(
            f"no condition {condition!r} in these results; there are {', '.join(by_name)}"
        )
    data = by_name[condition]["data"]
    try:  # vectorised: a million pairs take a fraction of a second (None -> NaN, dropped)
        if results["protocol"] == "pairs":
            scores = np.asarray(data["scores"], dtype=np.float64)
            labels = np.asarray(data["labels"], dtype=np.int64)
            if scores.shape != labels.shape or scores.ndim != 1:
                raise ValueError("scores and labels differ in length")
            scores = scores[labels == 0]
        else:
            scores = np.asarray(data["nonmated_scores"], dtype=np.float64).reshape(-1)
    except (TypeError, ValueError, KeyError) as exc:
        raise FaceprintError(f"the results' {condition!r} scores are damaged ({exc})") from None
    scores = scores[np.isfinite(scores)]
    if len(scores) == 0:
        raise FaceprintError(f"the results have no impostor scores for {condition!r}")
    return scores


def calibrate(
    results: dict[str, Any], fmr: float, *, condition: str = "clean", source: str = ""
) -> Calibration:
    if not 0 < fmr < 1:
        raise FaceprintError(f"target false-match rate {fmr} must be between 0 and 1")
    imp = impostor_scores(results, condition)
    thr = metrics.threshold_at_fmr(imp, fmr)
    if not math.isfinite(thr) or not -1.0 <= thr <= 1.0 + 1e-6:
        raise FaceprintError(f"calibrated threshold {thr} is not a cosine similarity")
    provenance = {
        "results": source,
        "results_sha256": hashlib.sha256(json.dumps(results, sort_keys=True).encode()).hexdigest(),
        "protocol": results["protocol"],
        "data": results["source"],
        "condition": condition,
        "pack": results["pack"],
        "detector": results["detector"],
        "impostors": len(imp),
        "calibrated": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    return Calibration(thr, fmr, len(imp), metrics.resolvable(len(imp), fmr), provenance)


def store(gallery: Path, cal: Calibration, collection: str = "default") -> None:
    """Save the threshold, its FMR and provenance in the gallery's settings (one write)."""
    from faceprint.gallery import open_store

    g = open_store(gallery, collection=collection)
    try:
        pack = g.pack
        if pack is not None and pack != cal.provenance["pack"]:
            raise GalleryError(
                f"{gallery}: its templates are of pack {pack!r}, the evaluation used "
                f"{cal.provenance['pack']!r}; the threshold would not apply"
            )
        g.set_settings(
            {
                "threshold": repr(cal.threshold),
                "threshold_fmr": repr(cal.fmr),
                "threshold_source": json.dumps(cal.provenance),
            }
        )
    finally:
        g.close()
