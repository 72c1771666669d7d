"""Clustering a library's stored faces: the new ones into what exists (after indexing), or
all of them again (``faceprint people --recluster``), always within the human decisions.

* :func:`assign_pending`: faces indexed since the last clustering (``pending``) join
  existing people and clusters or form new ones
  (:func:`faceprint.library.cluster.assign_new`); no clustered face moves. Done once at the
  end of each ``faceprint index`` run, in one transaction, over every pending face (also
  those of an interrupted earlier run), so an interrupted and resumed run ends in the
  state of an uninterrupted one.
* :func:`recluster`: a full clustering (:func:`~faceprint.library.cluster.cluster_all`): the
  partition depends only on the faces and the decisions, never on the order photos were
  indexed in. Cluster ids are carried over from the previous clustering where a cluster
  keeps most of its faces, so ids the user saw stay valid where nothing changed.

The gallery is not touched (it follows the human labels, which clustering never changes)
except that faces named before they were indexed (XMP labels, a photo that came back) get
their templates.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from faceprint.errors import FaceprintError
from faceprint.gallery.database import Tx
from faceprint.library.cluster import HIDDEN, UNASSIGNED, Faces, Params, assign_new, cluster_all
from faceprint.library.decisions import Decisions
from faceprint.library.records import FaceTable
from faceprint.library.store import Library
from faceprint.library.sync import sync
from faceprint.log import note


@dataclass(frozen=True)
class Regrouped:
    faces: int  # faces (re)clustered
    changed: int  # faces whose cluster changed
    clusters: int  # clusters after
    full: bool  # a full clustering was done


def _faces(table: FaceTable, rows: np.ndarray) -> Faces:
    assert table.templates is not None
    return Faces([table.keys[i] for i in rows], table.templates[rows],
                 table.photo[rows].tolist(), table.quality[rows])  # fmt: skip


def _store(lib: Library, tx: Tx, table: FaceTable, labels: np.ndarray) -> int:
    new = np.where(labels >= 0, labels, -1)
    moved = (new != table.cluster) | table.pending
    changes = {int(f): (int(c) if c >= 0 else None) for f, c in
               zip(table.ids[moved].tolist(), new[moved].tolist(), strict=True)}  # fmt: skip
    lib.set_clusters(tx, changes)
    return int(((new != table.cluster) & ~table.pending).sum())


def assign_pending(lib: Library, params: Params | None = None) -> Regrouped:
    """Cluster the faces awaiting it into the existing clustering (see the module doc)."""
    with lib.store.write() as tx:
        table = lib.faces(tx, vectors=True)
        pending = np.flatnonzero(table.pending)
        if not len(pending):
            return Regrouped(0, 0, len(set(table.cluster[table.cluster >= 0].tolist())), False)
        decisions = lib.decisions(tx)
        hidden = set(decisions.hidden)
        old = np.flatnonzero(~table.pending)
        prior = np.array(
            [HIDDEN if table.keys[i] in hidden else (c if c >= 0 else UNASSIGNED)
             for i, c in zip(old.tolist(), table.cluster[old].tolist(), strict=True)],
            dtype=np.int64,
        )  # fmt: skip
        full = False
        try:
            res = assign_new(_faces(table, old), prior, _faces(table, pending), decisions, params)
            labels = np.empty(len(table.keys), dtype=np.int64)
            labels[np.concatenate([old, pending])] = res.labels
        except FaceprintError as exc:  # the stored clusters contradict a decision
            note(f"{exc}; clustering every face again")
            labels = _full(table, decisions, params)
            full = True
        changed = _store(lib, tx, table, labels)
        erased = sync(lib, tx, [table.keys[i] for i in pending])
    if erased:
        lib.db.after_erase()
    return Regrouped(len(pending), changed, len(set(labels[labels >= 0].tolist())), full)


def recluster(lib: Library, params: Params | None = None) -> Regrouped:
    """Cluster every face again, within the decisions (see the module doc)."""
    with lib.store.write() as tx:
        table = lib.faces(tx, vectors=True)
        labels = _full(table, lib.decisions(tx), params)
        changed = _store(lib, tx, table, labels)
        erased = sync(lib, tx, [table.keys[i] for i in np.flatnonzero(table.pending)])
    if erased:
        lib.db.after_erase()
    return Regrouped(len(table.keys), changed, len(set(labels[labels >= 0].tolist())), True)


def _full(table: FaceTable, decisions: Decisions, params: Params | None) -> np.ndarray:
    res = cluster_all(_faces(table, np.arange(len(table.keys))), decisions, params)
    return keep_ids(np.where(table.pending, -1, table.cluster), res.labels)


def keep_ids(old: np.ndarray, new: np.ndarray) -> np.ndarray:
    """``new`` cluster labels renumbered so each new cluster keeps the old id most of its
    faces had (each old id used once, largest overlaps first); the others get fresh ids
    above every old one, in the order of the new labels."""
    out = np.full(len(new), -1, dtype=np.int64)
    out[new == HIDDEN] = HIDDEN
    both = (old >= 0) & (new >= 0)
    pairs, counts = np.unique(np.stack([new[both], old[both]], axis=1), axis=0,
                              return_counts=True)  # fmt: skip
    mapping: dict[int, int] = {}
    used: set[int] = set()
    for idx in np.lexsort((pairs[:, 1], pairs[:, 0], -counts)).tolist() if len(pairs) else []:
        n, o = int(pairs[idx, 0]), int(pairs[idx, 1])
        if n not in mapping and o not in used:
            mapping[n] = o
            used.add(o)
    fresh = int(old.max(initial=-1)) + 1
    for n in sorted(set(new[new >= 0].tolist())):
        if n not in mapping:
            mapping[n] = fresh
            fresh += 1
    for n, o in mapping.items():
        out[new == n] = o
    return out
