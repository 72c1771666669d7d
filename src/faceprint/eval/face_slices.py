"""Which slice each comparison of an evaluation is in, and the thresholds of the slices.

Two kinds of attribute:

- labelled (``--groups FILE``, :mod:`faceprint.eval.groups`): for a pair, the pair is in
  group g when both photos are labelled g, and in the cross-group cell (g1, g2) otherwise
  (impostor pairs across groups give NIST's cross-demographic FMR); for identification,
  a search is in its probe photo's group.
- automatic, from the evaluation's own detection of each photo's subject face
  (:class:`faceprint.eval.templates.FaceRecord`): head yaw and pitch from the 5
  landmarks, face size (eye-centre distance in pixels), quality score
  (:func:`faceprint.quality.assess`) and detector confidence, in bands. A pair is sliced
  by its probe photo (side b), a search by its probe; a probe without a detected face is
  in the group "no face". Degraded conditions are sliced by the degraded probe's face.

Pitch and yaw come from :func:`faceprint.quality.pitch` and :func:`faceprint.quality.pose`
(rough, but enough for bands).
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from faceprint.eval import slices
from faceprint.eval.groups import Labels
from faceprint.eval.pairs import Pair
from faceprint.eval.slices import Cell, Operating
from faceprint.eval.templates import FaceRecord, Templates
from faceprint.models.packs import DEFAULT_PACK, Pack
from faceprint.quality import pitch, pose

NO_FACE = "no face"
RULE_LABELS = (
    "a pair is in a group when both photos are; otherwise in the cross-group cell of its two groups"
)
RULE_PROBE_PAIRS = "by the probe photo (side b of each pair), as the evaluation detected it"
RULE_PROBE_SEARCH = "by the probe (the search photo)"


def eye_distance(landmarks: np.ndarray) -> float:
    pts = np.asarray(landmarks, dtype=np.float64).reshape(5, 2)
    return float(math.dist(pts[0:2].mean(axis=0), pts[2:4].mean(axis=0)))


@dataclass(frozen=True)
class Auto:
    """An automatic slice: a value of the subject face, cut into bands at ``edges``; with
    ``quartiles`` the edges are the quartiles of the evaluation's own probes (for a value
    whose scale depends on the detector)."""

    name: str
    what: str
    edges: tuple[float, ...]
    labels: tuple[str, ...]
    value: Callable[[FaceRecord], float]
    quartiles: bool = False

    def band(self, face: FaceRecord | None) -> str:
        if face is None:
            return NO_FACE
        return self.labels[bisect.bisect_right(self.edges, self.value(face))]

    @property
    def order(self) -> list[str]:
        return [*self.labels, NO_FACE]

    def cut(self, faces: Sequence[FaceRecord | None]) -> Auto:
        """This slice with its edges set (quartiles of these faces' values, to 3 decimals)."""
        values = [self.value(f) for f in faces if f is not None]
        if not self.quartiles or not values:
            return self
        edges = tuple(sorted({round(float(q), 3) for q in np.quantile(values, (0.25, 0.5, 0.75))}))
        return replace(self, edges=edges, labels=_labels(edges))


def _labels(edges: Sequence[float], unit: str = "") -> tuple[str, ...]:
    inner = [f"{a:g}–{b:g}{unit}" for a, b in zip(edges, edges[1:], strict=False)]
    return (f"< {edges[0]:g}{unit}", *inner, f"≥ {edges[-1]:g}{unit}")


SIZES = (16.0, 24.0, 32.0, 48.0, 96.0)
AUTO: tuple[Auto, ...] = (
    Auto(
        "yaw",
        "|head yaw| from the 5 landmarks (faceprint.quality.pose)",
        (10.0, 20.0, 30.0),
        _labels((10, 20, 30), "°"),
        lambda f: abs(pose(f.landmarks)[0]),
    ),
    Auto(
        "pitch",
        "head pitch from the 5 landmarks (positive: chin up; see faceprint.eval.face_slices)",
        (-10.0, 10.0),
        ("down < -10°", "level -10–10°", "up ≥ 10°"),
        lambda f: pitch(f.landmarks),
    ),
    Auto(
        "face size",
        "eye-centre distance in pixels",
        SIZES,
        _labels(SIZES, " px"),
        lambda f: eye_distance(f.landmarks),
    ),
    Auto(
        "quality",
        "faceprint.quality score of the probe face",
        (0.25, 0.5, 0.75),
        _labels((0.25, 0.5, 0.75)),
        lambda f: f.quality,
    ),
    Auto(
        "detector confidence",
        "the detector's probability for the probe face, in quartiles of this evaluation's "
        "probes (its scale depends on the detector)",
        (),
        (),
        lambda f: f.score,
        quartiles=True,
    ),
)


def pack_operating(of: Pack = DEFAULT_PACK) -> list[Operating]:
    """The pack's calibrated thresholds, highest FMR first (what faceprint decides with)."""
    points = sorted(of.thresholds, key=lambda c: -c.fmr)
    return [
        Operating(f"pack FMR {c.fmr:g}", of.threshold(c.fmr).similarity, c.fmr, "pack")
        for c in points
    ]


def eval_operating(points: dict[str, Any], what: str) -> list[Operating]:
    """The evaluation's own thresholds (``tar_at_fmr`` / ``fnir_at_fpir``) that its
    negatives can resolve."""
    return [
        Operating(f"eval {what} {k}", float(v["threshold"]), float(k), "eval")
        for k, v in points.items()
        if v.get("resolved") and v.get("threshold") is not None
    ]


def _targets(ops: Sequence[Operating], extra: Sequence[float]) -> list[float]:
    return sorted({op.target for op in ops} | set(extra), reverse=True)


def _scores(values: Sequence[float | None]) -> np.ndarray:
    return np.array([-math.inf if v is None else v for v in values], dtype=np.float64)


def _with_images(table: dict[str, Any], images: dict[str, set[Path]]) -> dict[str, Any]:
    for g in table["groups"]:
        g["images"] = len(images.get(g["group"], ()))
    return table


def face_values(face: FaceRecord | None) -> dict[str, float] | None:
    """The automatic slices' values of one face (for results.json)."""
    if face is None:
        return None
    return {a.name: round(float(a.value(face)), 3) for a in AUTO}


def _labelled(
    labels: Labels,
    sides: Sequence[tuple[Path, Path]],
    base: dict[str, Any],
    rule: str,
    scores: np.ndarray,
    positive: np.ndarray,
) -> list[dict[str, Any]]:
    """One table per labelled attribute; ``sides`` is (a, b) per comparison (a == b for a
    search: its probe)."""
    out = []
    for j, name in enumerate(labels.attributes):
        cells: list[Cell | None] = []
        images: dict[str, set[Path]] = {}
        for a, b in sides:
            la, lb = labels.of(a), labels.of(b)
            for path, lab in ((a, la), (b, lb)):
                if lab is not None:
                    images.setdefault(lab[j], set()).add(path)
            cells.append(None if la is None or lb is None else (la[j], lb[j]))
        table = slices.table(scores, positive, cells, **base)
        out.append({"attribute": name, "source": "labels", "rule": rule, **table})
        _with_images(out[-1], images)
    return out


def _automatic(
    probes: Sequence[Path],
    templates: Templates,
    base: dict[str, Any],
    rule: str,
    scores: np.ndarray,
    positive: np.ndarray,
) -> list[dict[str, Any]]:
    out = []
    unique = list(dict.fromkeys(probes))
    for auto in (a.cut([templates.faces.get(p) for p in unique]) for a in AUTO):
        bands = {p: auto.band(templates.faces.get(p)) for p in unique}
        images: dict[str, set[Path]] = {}
        for p, g in bands.items():
            images.setdefault(g, set()).add(p)
        cells: list[Cell | None] = [(bands[p], bands[p]) for p in probes]
        table = slices.table(scores, positive, cells, order=auto.order, **base)
        out.append(
            {"attribute": auto.name, "source": "automatic", "what": auto.what, "rule": rule} | table
        )
        _with_images(out[-1], images)
    return out


def pair_slices(
    pairs: Sequence[Pair], probes: Templates, figures: dict[str, Any], labels: Labels | None
) -> dict[str, Any]:
    """The slices of one verification condition (``figures``: verification.evaluate's)."""
    from faceprint.eval.verification import FMRS, OPTIONAL_FMRS

    s = _scores(figures["data"]["scores"])
    y = np.array(figures["data"]["labels"], dtype=bool)
    ops = pack_operating() + eval_operating(figures["tar_at_fmr"], "FMR")
    base = {"ops": ops, "targets": _targets(ops, FMRS + OPTIONAL_FMRS), "names": slices.PAIRS}
    attributes = []
    if labels is not None:
        sides = [(p.a, p.b) for p in pairs]
        attributes += _labelled(labels, sides, base, RULE_LABELS, s, y)
    attributes += _automatic([p.b for p in pairs], probes, base, RULE_PROBE_PAIRS, s, y)
    return {
        "operating": [op.to_dict() for op in ops],
        "targets": base["targets"],
        "all": slices.det_points(s[y], s[~y]),
        "attributes": attributes,
    }


def search_slices(
    probes_in_order: Sequence[Path],
    probes: Templates,
    figures: dict[str, Any],
    labels: Labels | None,
) -> dict[str, Any]:
    """The slices of one identification condition; ``probes_in_order`` are the mated then
    the non-mated searches' photos, in the order of ``figures["data"]``."""
    from faceprint.eval.identification import FPIRS

    mated = _scores(figures["data"]["mated_scores"])
    hit = np.array(figures["data"]["mated_hit"], dtype=bool)
    non = _scores(figures["data"]["nonmated_scores"])
    s = np.r_[np.where(hit, mated, -math.inf), non]  # a wrong top candidate: a miss
    y = np.r_[np.ones(len(mated), bool), np.zeros(len(non), bool)]
    ops = pack_operating() + eval_operating(figures["fnir_at_fpir"], "FPIR")
    base = {"ops": ops, "targets": _targets(ops, FPIRS), "names": slices.SEARCHES}
    attributes = []
    if labels is not None:
        sides = [(p, p) for p in probes_in_order]
        attributes += _labelled(labels, sides, base, RULE_PROBE_SEARCH, s, y)
    attributes += _automatic(probes_in_order, probes, base, RULE_PROBE_SEARCH, s, y)
    return {
        "operating": [op.to_dict() for op in ops],
        "targets": base["targets"],
        "all": slices.det_points(s[y], s[~y]),
        "attributes": attributes,
    }
