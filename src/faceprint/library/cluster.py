"""Grouping a library's faces into people, with human decisions as hard constraints.

Pure numpy on arrays: no I/O, no gallery. Two entry points:

* :func:`cluster_all`: a full clustering. The faces are put in order of their keys first
  (stable strings derived from content), so the result depends only on the faces and the
  decisions, never on the order they were added in.
* :func:`assign_new`: incremental. Existing clusters keep every face they have (they are
  *frozen*: they may grow but never merge with each other or lose a face); new faces join
  them or form new clusters among themselves and with faces that were unassigned.

How (the algorithm and its parameters were chosen by ``bench/cluster_quality.py``):

1. Human decisions (:mod:`faceprint.library.decisions`) become must-link groups (a name,
   a merge) and cannot-link tokens (faces of one photo, different names, "not X", splits).
   Hidden faces are left out.
2. Seeds: faces of quality >= ``min_seed_quality`` and every face a human placed. Each seed
   face's ``neighbours`` nearest seed faces with similarity >= the merge threshold give the
   candidate pairs (:mod:`faceprint.library.knn`; no N x N matrix).
3. Constrained agglomeration (:mod:`faceprint.library.merge`): clusters merge while the
   linkage (by default *average*: the mean cosine over all their face pairs; or
   *centroid*: the cosine of their mean templates) is at least the merge threshold, two
   single faces only at the stricter pair threshold, and no constraint forbids it.
4. Low-quality faces never seed or merge clusters: each may join the cluster it is most
   similar to (linkage >= the join threshold) if that cluster already has ``min_faces``
   faces, best pairs first, within the constraints; otherwise it stays unassigned.
5. Clusters with fewer than ``min_faces`` faces and no name are "unassigned".

Thresholds are similarities; :meth:`Params.at_fmr` states them as false-match rates of the
model pack (:func:`similarity_for_fmr`). Defaults: two single faces start a person at a
per-pair FMR of 1e-5, clusters merge at 1e-4. A library of N faces holds ~N^2/2 impostor
pairs (1.9 million for the 1,955-face bench library), so at 1e-3 thousands of false pairs
would chain people together; a merge of clusters rests on the mean of many pairs, which is
why it may use a looser threshold than two lone faces. Measured on the bench library (faces
+ lfw-dev, 1,955 faces, YuNet): pairwise precision 0.951 at recall 0.840 (F1 0.892, BCubed
F1 0.989), the best of the variants tried with the quality gate (``--sweep``). Centroid
linkage is as precise at 1e-5 (0.963, recall 0.793) but falls off a cliff when the
threshold is looser (precision 0.38 at 1e-4, 0.02 at 1e-3: a large cluster's mean attracts
impostors), and at 300k synthetic faces it split its largest people; average linkage
degrades gracefully (0.98 at 1e-5, 0.84 at 1e-4, 0.39 at 1e-3 without the pair threshold),
so a calibration a little off does not wreck a library.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from faceprint.errors import FaceprintError
from faceprint.library.decisions import Decisions, compile_decisions, merge_tokens
from faceprint.library.knn import neighbours
from faceprint.library.merge import LINKAGES, agglomerate

#: Label of a face in no cluster, and of a hidden face.
UNASSIGNED = -1
HIDDEN = -2
#: Per-pair false-match rates of the default thresholds (bench/cluster_quality.py): merging
#: clusters, and starting one from two single faces. The pack must be calibrated down to
#: them, else Params.at_fmr() says so.
DEFAULT_FMR = 1e-4
DEFAULT_PAIR_FMR = 1e-5
#: Above this many faces the neighbour search is approximate when faiss is installed.
APPROXIMATE_ABOVE = 200_000


def similarity_for_fmr(fmr: float) -> float:
    """The default pack's cosine threshold at a target per-pair false-match rate."""
    from faceprint.models.packs import DEFAULT_PACK

    return DEFAULT_PACK.threshold(fmr).similarity


@dataclass(frozen=True)
class Params:
    """``merge_similarity``: linkage needed to merge two clusters; ``join_similarity``:
    linkage a low-quality face needs to join a cluster (default: the merge threshold);
    ``min_seed_quality``: faces below it never seed or merge; ``min_faces``: smallest
    unnamed cluster reported; ``neighbours``: candidates per face; ``approximate``: use an
    approximate neighbour index (None: above :data:`APPROXIMATE_ABOVE` faces, with faiss)."""

    merge_similarity: float
    join_similarity: float | None = None
    pair_similarity: float | None = None
    min_seed_quality: float = 0.1
    min_faces: int = 2
    linkage: str = "average"
    neighbours: int = 16
    approximate: bool | None = None
    fmr: float | None = field(default=None, compare=False)

    @classmethod
    def at_fmr(
        cls,
        fmr: float = DEFAULT_FMR,
        pair_fmr: float | None = DEFAULT_PAIR_FMR,
        join_fmr: float | None = None,
        **kw: Any,
    ) -> Params:
        """Parameters whose thresholds are the pack's similarities at these FMRs."""
        pair = None if pair_fmr is None else similarity_for_fmr(pair_fmr)
        join = None if join_fmr is None else similarity_for_fmr(join_fmr)
        return cls(similarity_for_fmr(fmr), join, pair, fmr=fmr, **kw)

    def check(self) -> Params:
        for name in ("merge_similarity", "join_similarity", "pair_similarity"):
            v = getattr(self, name)
            if v is not None and not -1.0 <= v <= 1.0:
                raise FaceprintError(f"{name} {v} is not a cosine similarity in [-1, 1]")
        if self.linkage not in LINKAGES:
            raise FaceprintError(f"unknown linkage {self.linkage!r}; one of {', '.join(LINKAGES)}")
        if self.min_faces < 1 or self.neighbours < 1:
            raise FaceprintError("min_faces and neighbours must be at least 1")
        return self


@dataclass(frozen=True)
class Faces:
    """Faces to cluster: ``keys`` (unique, stable), ``templates`` (N x D, L2-normalised),
    ``photos`` (an id per face: faces with the same id are in one photo), ``quality``
    (N scores in [0, 1]; None: every face is good enough to seed)."""

    keys: Sequence[str]
    templates: np.ndarray
    photos: Sequence[Hashable]
    quality: np.ndarray | None = None

    def check(self) -> Faces:
        n = len(self.keys)
        t = np.asarray(self.templates, dtype=np.float32)
        if t.ndim != 2 or len(t) != n or len(self.photos) != n:
            raise FaceprintError(
                f"{n} keys need {n} templates (rows) and {n} photo ids; got {t.shape} and "
                f"{len(self.photos)}"
            )
        if n and not np.all(np.isfinite(t)):
            raise FaceprintError("templates contain values that are not finite numbers")
        q = None if self.quality is None else np.asarray(self.quality, dtype=np.float64)
        if q is not None and q.shape != (n,):
            raise FaceprintError(f"{n} faces need {n} quality scores; got shape {q.shape}")
        return Faces(list(self.keys), t, list(self.photos), q)


@dataclass(frozen=True)
class Clustering:
    """The result, per face in the order given: ``labels`` (cluster number, or
    :data:`UNASSIGNED` / :data:`HIDDEN`); ``names``: cluster -> person name for named
    clusters; ``anchors``: cluster -> its smallest face key (a stable id for matching
    clusters across runs)."""

    keys: list[str]
    labels: np.ndarray
    names: dict[int, str]
    anchors: dict[int, str]

    def label(self, key: str) -> int:
        return int(self.labels[self.keys.index(key)])

    def groups(self) -> dict[int, list[str]]:
        """Cluster -> face keys (sorted)."""
        out: dict[int, list[str]] = {}
        for k, c in zip(self.keys, self.labels.tolist(), strict=True):
            if c >= 0:
                out.setdefault(c, []).append(k)
        return {c: sorted(v) for c, v in sorted(out.items())}

    def person(self, key: str) -> str | None:
        return self.names.get(self.label(key))


def cluster_all(
    faces: Faces, decisions: Decisions | None = None, params: Params | None = None
) -> Clustering:
    """A full clustering of ``faces`` (order-independent; see the module docstring)."""
    return _run(faces.check(), decisions or Decisions(), _params(params), None)


def assign_new(
    existing: Faces,
    labels: np.ndarray | Sequence[int],
    new: Faces,
    decisions: Decisions | None = None,
    params: Params | None = None,
) -> Clustering:
    """Add ``new`` faces to an existing clustering (``labels`` per existing face, as
    returned before). Returns the clustering of existing + new faces, in that order; no
    existing face changes cluster, except that unassigned ones may join new clusters."""
    old, add = existing.check(), new.check()
    lab = np.asarray(labels, dtype=np.int64)
    if lab.shape != (len(old.keys),):
        raise FaceprintError(f"{len(old.keys)} existing faces need {len(old.keys)} labels")
    if old.templates.shape[1:] != add.templates.shape[1:] and len(add.keys) and len(old.keys):
        raise FaceprintError("existing and new templates have different dimensions")
    qualities = [
        np.ones(len(f.keys)) if f.quality is None else f.quality for f in (old, add)
    ]  # fmt: skip
    both = Faces(
        list(old.keys) + list(add.keys),
        np.concatenate([old.templates, add.templates]) if len(old.keys) else add.templates,
        list(old.photos) + list(add.photos),
        np.concatenate(qualities),
    )
    prior = np.concatenate([lab, np.full(len(add.keys), UNASSIGNED, dtype=np.int64)])
    return _run(both.check(), decisions or Decisions(), _params(params), prior, len(old.keys))


def _params(params: Params | None) -> Params:
    return (params or Params.at_fmr()).check()


@dataclass
class _State:
    """Everything of one run, faces in key order."""

    keys: list[str]
    temps: np.ndarray
    node: np.ndarray  # face -> must-link node (-1 hidden)
    seed: np.ndarray  # face may seed / merge
    new: np.ndarray  # face is to be placed (all faces in a full run)
    frozen: np.ndarray  # node holds an existing cluster
    names: dict[int, str]
    sums: np.ndarray
    counts: np.ndarray
    tokens: list[dict[int, int]]


def _prepare(faces: Faces, decisions: Decisions, params: Params, prior: np.ndarray | None,
             order: np.ndarray, n_old: int) -> _State:  # fmt: skip
    keys = [faces.keys[i] for i in order]
    photos = [faces.photos[i] for i in order]
    quality = np.ones(len(keys)) if faces.quality is None else faces.quality[order]
    hidden = set(decisions.hidden)
    together = list(decisions.together)
    old_label = None if prior is None else prior[order]
    if old_label is not None:
        hidden |= {k for k, c in zip(keys, old_label.tolist(), strict=True) if c == HIDDEN}
        groups: dict[int, list[str]] = {}
        for k, c in zip(keys, old_label.tolist(), strict=True):
            if c >= 0:
                groups.setdefault(c, []).append(k)
        together += list(groups.values())
    try:
        cons = compile_decisions(keys, photos, replace(decisions, hidden=hidden, together=together))
    except FaceprintError as exc:
        if old_label is None:
            raise
        raise FaceprintError(
            f"{exc}; the existing clusters contradict the decisions: re-cluster fully "
            "(cluster_all) after changing a decision"
        ) from exc
    node = np.asarray(cons.node, dtype=np.int64)
    visible = node >= 0
    sizes = np.bincount(node[visible], minlength=cons.count)
    human = sizes > 1
    human[list(cons.names)] = True
    frozen = np.zeros(cons.count, dtype=bool)
    if old_label is not None:
        frozen[node[visible & (old_label >= 0)]] = True
    temps = faces.templates[order]
    sums = np.zeros((cons.count, temps.shape[1]), dtype=np.float64)
    np.add.at(sums, node[visible], temps[visible].astype(np.float64))
    return _State(
        keys=keys,
        temps=temps,
        node=node,
        seed=visible & ((quality >= params.min_seed_quality) | human[np.maximum(node, 0)]),
        new=visible & (order >= n_old),
        frozen=frozen,
        names=cons.names,
        sums=sums,
        counts=sizes.astype(np.float64),
        tokens=[dict(t) for t in cons.tokens],
    )


def _run(faces: Faces, decisions: Decisions, params: Params, prior: np.ndarray | None,
         n_old: int = 0) -> Clustering:  # fmt: skip
    n = len(faces.keys)
    order = np.argsort(np.asarray(faces.keys, dtype=object), kind="stable").astype(np.int64)
    st = _prepare(faces, decisions, params, prior, order, n_old)
    merge_t = params.merge_similarity
    join_t = merge_t if params.join_similarity is None else params.join_similarity
    approx = params.approximate
    if approx is None:
        approx = n > APPROXIMATE_ABOVE and _have_faiss()
    seeds = np.flatnonzero(st.seed)
    queries = np.flatnonzero(st.seed & st.new)
    edges = np.zeros((0, 2), dtype=np.int64)
    if len(seeds) and len(queries):
        base = st.temps[seeds]
        if len(queries) == len(seeds):
            idx, _ = neighbours(base, None, params.neighbours, merge_t, approximate=approx)
        else:
            idx, _ = neighbours(base, st.temps[queries], params.neighbours, merge_t,
                                approximate=approx)  # fmt: skip
        src = np.repeat(st.node[queries], idx.shape[1])
        flat = idx.ravel()
        ok = flat >= 0
        edges = np.stack([src[ok], st.node[seeds[flat[ok]]]], axis=1)
    root = agglomerate(st.sums, st.counts, st.tokens, edges, merge_t, params.linkage, st.frozen,
                       params.pair_similarity)  # fmt: skip
    visible = st.node >= 0
    cluster = np.where(visible, root[np.maximum(st.node, 0)], -1)
    low = np.flatnonzero(visible & ~st.seed & st.new)
    if len(low) and len(seeds):
        _join(st, params, root, cluster, seeds, low, join_t, approx)
    return _labels(faces, order, st, cluster, params, prior)


def _have_faiss() -> bool:
    try:
        import faiss  # noqa: F401
    except ImportError:
        return False
    return True


def _join(st: _State, params: Params, root: np.ndarray, cluster: np.ndarray, seeds: np.ndarray,
          low: np.ndarray, join_t: float, approx: bool) -> None:  # fmt: skip
    """Low-quality faces join the standing cluster they are most similar to, best first."""
    count = len(st.counts)
    size = np.bincount(cluster[cluster >= 0], minlength=count)
    standing = (size >= params.min_faces) | st.frozen
    standing[[int(root[c]) for c in st.names]] = True
    idx, _ = neighbours(st.temps[seeds], st.temps[low], params.neighbours, join_t,
                        approximate=approx)  # fmt: skip
    rows = np.repeat(np.arange(len(low)), idx.shape[1])
    flat = idx.ravel()
    rows, flat = rows[flat >= 0], flat[flat >= 0]
    pairs = np.unique(rows * count + cluster[seeds[flat]])
    rows, target = pairs // count, pairs % count
    keep = standing[target]
    rows, target = rows[keep], target[keep]
    score = _face_linkage(st.temps[low[rows]], st.sums, target, params.linkage, st.counts)
    good = score >= join_t
    rows, target, score = rows[good], target[good], score[good]
    order = np.lexsort((target, rows, -score))
    done = np.zeros(len(low), dtype=bool)
    for r, c in zip(rows[order].tolist(), target[order].tolist(), strict=True):
        f = int(low[r])
        if done[r]:
            continue
        joined = merge_tokens(st.tokens[c], st.tokens[int(st.node[f])])
        if joined is None:
            continue
        st.tokens[c] = joined
        cluster[f] = c
        done[r] = True


def _face_linkage(t: np.ndarray, sums: np.ndarray, target: np.ndarray, linkage: str,
                  counts: np.ndarray) -> np.ndarray:  # fmt: skip
    """Linkage of single faces t[i] to clusters target[i]."""
    dots = np.einsum("ij,ij->i", t.astype(np.float64), sums[target])
    if linkage == "centroid":
        return dots / np.maximum(np.linalg.norm(sums[target], axis=1), 1e-12)
    return dots / counts[target]


def _labels(faces: Faces, order: np.ndarray, st: _State, cluster: np.ndarray, params: Params,
            prior: np.ndarray | None) -> Clustering:  # fmt: skip
    """Cluster numbers per face in the caller's order, names and anchors."""
    n = len(order)
    count = len(st.counts)
    size = np.bincount(cluster[cluster >= 0], minlength=count)
    named: dict[int, str] = {}
    for c, person in st.names.items():
        named[int(cluster[np.flatnonzero(st.node == c)[0]])] = person
    keep = (size >= params.min_faces) | np.isin(np.arange(count), list(named))
    out = np.full(n, UNASSIGNED, dtype=np.int64)
    out[st.node < 0] = HIDDEN
    old = None if prior is None else prior[order]
    number = np.full(count, -1, dtype=np.int64)
    if old is not None:
        held = (old >= 0) & (cluster >= 0)
        for c in np.unique(cluster[held]):  # the lowest old label, where a human merged
            number[c] = old[held & (cluster == c)].min()
    # clusters without an old number, in key order of their first face
    first = np.full(count, n, dtype=np.int64)
    np.minimum.at(first, cluster[cluster >= 0], np.flatnonzero(cluster >= 0))
    fresh = np.flatnonzero(keep & (number < 0) & (first < n))
    fresh = fresh[np.argsort(first[fresh], kind="stable")]
    start = 0 if old is None or not (old >= 0).any() else int(old[old >= 0].max()) + 1
    number[fresh] = np.arange(start, start + len(fresh))
    sorted_labels = np.where(cluster >= 0, number[np.maximum(cluster, 0)], UNASSIGNED)
    sorted_labels = np.where((cluster >= 0) & ~(keep | (number >= 0))[np.maximum(cluster, 0)],
                             UNASSIGNED, sorted_labels)  # fmt: skip
    sorted_labels[st.node < 0] = HIDDEN
    out[order] = sorted_labels
    names = {int(number[c]): p for c, p in named.items()}
    anchors = {int(number[c]): st.keys[int(first[c])] for c in np.flatnonzero(number >= 0)}
    return Clustering(keys=list(faces.keys), labels=out, names=names, anchors=anchors)
