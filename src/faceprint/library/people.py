"""Human decisions about a library's faces: name a cluster, merge, split, move a face, "not
this person", hide. The one implementation behind the CLI and the HTTP routes.

Each decision is one transaction (:meth:`Store.write`) that records the decision (keyed by
face keys, so it survives re-indexing and re-clustering), updates the clusters at once so
what the user sees follows (no re-clustering), keeps the gallery's templates in step
(:mod:`faceprint.library.sync`), and checks that every decision stored still holds
together (:func:`faceprint.library.decisions.compile_decisions`); a contradiction is refused
and nothing changes.

A newer decision about a face replaces older ones about it: moving, naming, hiding or
rejecting a face takes it out of earlier merges and splits; merging two clusters drops the
splits that kept them apart. "Not NAME" about a face is kept when its cluster is later
named NAME or merged into NAME: that face is left out (unassigned).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace

from faceprint.errors import FaceprintError, GalleryError, NotFoundError
from faceprint.gallery.database import Tx
from faceprint.gallery.records import check_name
from faceprint.library.decisions import compile_decisions
from faceprint.library.records import FaceTable, Label
from faceprint.library.store import Library
from faceprint.library.sync import merge_people, sync

#: Smallest unnamed cluster kept after a split (the clustering's own minimum).
MIN_FACES = 2


@dataclass(frozen=True)
class Done:
    """What a decision did, for the user: a sentence and the cluster it concerns."""

    message: str
    cluster: int | None = None


@dataclass
class View:
    """The collection's faces and labels as one decision sees them."""

    faces: FaceTable
    labels: dict[str, Label]

    @classmethod
    def load(cls, lib: Library, tx: Tx) -> View:
        return cls(lib.faces(tx), lib.labels(tx))

    def key(self, i: int) -> str:
        return self.faces.keys[i]

    def hidden(self, i: int) -> bool:
        label = self.labels.get(self.key(i))
        return bool(label and label.hidden)

    def members(self, cluster: int) -> list[int]:
        rows = [i for i, c in enumerate(self.faces.cluster.tolist()) if c == cluster]
        found = [i for i in rows if not self.hidden(i)]
        if not found:
            raise NotFoundError(f"no cluster or person with id {cluster}")
        return found

    def names(self) -> dict[int, str]:
        out: dict[int, str] = {}
        for i, c in enumerate(self.faces.cluster.tolist()):
            label = self.labels.get(self.key(i))
            if c >= 0 and label and label.person and not label.hidden:
                out[c] = label.person
        return out

    def name_of(self, cluster: int | None) -> str | None:
        return None if cluster is None else self.names().get(cluster)

    def cluster_of(self, person: str) -> int | None:
        return next((c for c, p in sorted(self.names().items()) if p == person), None)

    def row(self, face_id: int) -> int:
        for i, f in enumerate(self.faces.ids.tolist()):
            if f == face_id:
                return i
        raise NotFoundError(f"no face {face_id} in the library")

    def cluster(self, i: int) -> int | None:
        c = int(self.faces.cluster[i])
        return None if c < 0 else c


Step = Callable[[Library, Tx, View], tuple[Done, set[str], bool]]


def decide(lib: Library, step: Step) -> Done:
    """Run one decision in one transaction: the step, the gallery sync, the check."""
    with lib.store.write() as tx:
        view = View.load(lib, tx)
        done, touched, erased = step(lib, tx, view)
        erased |= sync(lib, tx, touched)
        check(lib, tx)
    if erased:
        lib.db.after_erase()
    return done


def check(lib: Library, tx: Tx) -> None:
    """Refuse (GalleryError) when the stored decisions and clusters contradict each other."""
    faces = lib.faces(tx)
    decisions = lib.decisions(tx)
    groups: dict[int, list[str]] = {}
    for key, c in zip(faces.keys, faces.cluster.tolist(), strict=True):
        if c >= 0:
            groups.setdefault(c, []).append(key)
    together = [*decisions.together, *groups.values()]
    try:
        compile_decisions(faces.keys, faces.photo.tolist(), replace(decisions, together=together))
    except FaceprintError as exc:
        raise GalleryError(f"refused, it contradicts an earlier decision: {exc}") from None


def _unsplit(lib: Library, tx: Tx, a: Iterable[str], b: Iterable[str]) -> None:
    """Drop the splits that keep faces of ``a`` apart from faces of ``b``."""
    sa, sb = set(a), set(b)
    for did, (kind, sides) in lib.groups(tx).items():
        s0, s1 = set(sides.get(0, [])), set(sides.get(1, []))
        if kind == "apart" and ((s0 & sa and s1 & sb) or (s0 & sb and s1 & sa)):
            lib.drop_group(tx, did)


def _name_rows(lib: Library, tx: Tx, v: View, rows: Sequence[int], person: str,
               cluster: int) -> tuple[dict[int, int | None], set[str]]:  # fmt: skip
    """Label faces as ``person`` in ``cluster``; faces rejected for the name are left out."""
    rejected = {k for k, p in lib.rejections(tx) if p == person}
    changes: dict[int, int | None] = {}
    touched: set[str] = set()
    for i in rows:
        fid, key = int(v.faces.ids[i]), v.key(i)
        if key in rejected:
            changes[fid] = None
            continue
        lib.set_label(tx, key, person)
        touched.add(key)
        changes[fid] = cluster
    return changes, touched


def name(lib: Library, cluster: int, person: str) -> Done:
    """Name a cluster (or rename a person); naming it as an existing person merges them."""
    person = check_name(person)

    def step(lib: Library, tx: Tx, v: View) -> tuple[Done, set[str], bool]:
        rows = v.members(cluster)
        old, target = v.name_of(cluster), v.cluster_of(person)
        erased = False
        if old is not None and old != person:
            erased = merge_people(lib, tx, old, person)
            lib.rename(tx, old, person)
        keep = target if target is not None else cluster
        if keep != cluster:
            _unsplit(lib, tx, [v.key(i) for i in v.members(keep)], [v.key(i) for i in rows])
        changes, touched = _name_rows(lib, tx, v, rows, person, keep)
        lib.set_clusters(tx, changes)
        merged = " (merged into the existing person)" if keep != cluster else ""
        return Done(f"named cluster {cluster} {person}{merged}", keep), touched, erased

    return decide(lib, step)


def merge(lib: Library, a: int, b: int) -> Done:
    """Clusters ``a`` and ``b`` are one person (``b`` joins ``a``; a named one keeps its id
    and name; two names: ``b``'s person becomes ``a``'s)."""
    if a == b:
        raise GalleryError(f"cannot merge cluster {a} with itself")

    def step(lib: Library, tx: Tx, v: View) -> tuple[Done, set[str], bool]:
        ra, rb = v.members(a), v.members(b)
        na, nb = v.name_of(a), v.name_of(b)
        keep = a if na is not None or nb is None else b
        person = na or nb
        erased = False
        if na is not None and nb is not None and na != nb:
            erased = merge_people(lib, tx, nb, na)
            lib.rename(tx, nb, na)
        _unsplit(lib, tx, [v.key(i) for i in ra], [v.key(i) for i in rb])
        touched: set[str] = set()
        if person is not None:
            changes, touched = _name_rows(lib, tx, v, ra + rb, person, keep)
        else:
            changes = {int(v.faces.ids[i]): keep for i in ra + rb}
            lib.add_group(tx, "together", [[v.key(i) for i in ra + rb]])
        lib.set_clusters(tx, changes)
        who = f" ({person})" if person else ""
        return Done(f"merged clusters {a} and {b} into {keep}{who}", keep), touched, erased

    return decide(lib, step)


def split(lib: Library, cluster: int, face_ids: Sequence[int]) -> Done:
    """These faces of ``cluster`` are not the person the rest of it is (they form a new
    cluster, or go unassigned when alone)."""
    if not face_ids:
        raise GalleryError("name the faces to split off")

    def step(lib: Library, tx: Tx, v: View) -> tuple[Done, set[str], bool]:
        rows = v.members(cluster)
        chosen = sorted({v.row(int(f)) for f in face_ids})
        stray = [int(v.faces.ids[i]) for i in chosen if i not in rows]
        if stray:
            raise GalleryError(f"face {stray[0]} is not in cluster {cluster}")
        rest = [i for i in rows if i not in chosen]
        if not rest:
            raise GalleryError("a split must leave faces in the cluster (hide or move them)")
        person = v.name_of(cluster)
        keys = [v.key(i) for i in chosen]
        for key in keys:
            lib.forget_face(tx, key)
            if person is not None:
                label = v.labels.get(key)
                if label and label.person == person:
                    lib.unlabel(tx, key)
                lib.reject(tx, key, person)
        if person is None:
            lib.add_group(tx, "apart", [keys, [v.key(i) for i in rest]])
        new = lib.next_cluster(tx) if len(chosen) >= MIN_FACES else None
        changes: dict[int, int | None] = {int(v.faces.ids[i]): new for i in chosen}
        if person is None and len(rest) < MIN_FACES:
            changes.update({int(v.faces.ids[i]): None for i in rest})
        lib.set_clusters(tx, changes)
        where = f"new cluster {new}" if new is not None else "unassigned"
        done = Done(f"split {len(chosen)} face(s) off cluster {cluster}: {where}", new)
        return done, set(keys), False

    return decide(lib, step)


def _leave(lib: Library, tx: Tx, v: View, i: int) -> dict[int, int | None]:
    """Face row ``i`` leaves its unnamed cluster: kept apart from the rest, which goes
    unassigned if too small."""
    c = v.cluster(i)
    if c is None or v.name_of(c) is not None:
        return {}
    others = [j for j in v.members(c) if j != i]
    if others:
        lib.add_group(tx, "apart", [[v.key(i)], [v.key(j) for j in others]])
    if len(others) < MIN_FACES:
        return {int(v.faces.ids[j]): None for j in others}
    return {}


def move(lib: Library, face_id: int, person: str | None = None,
         cluster: int | None = None) -> Done:  # fmt: skip
    """This face is ``person`` (a name), or belongs with ``cluster``."""
    if (person is None) == (cluster is None):
        raise GalleryError("move a face to a person's name or to a cluster, one of the two")
    person = None if person is None else check_name(person)

    def step(lib: Library, tx: Tx, v: View) -> tuple[Done, set[str], bool]:
        i = v.row(face_id)
        key, c0 = v.key(i), v.cluster(i)
        if cluster is not None:
            v.members(cluster)  # it exists
        who = person if person is not None else v.name_of(cluster)
        target = v.cluster_of(who) if who is not None else cluster
        lib.forget_face(tx, key)
        changes = _leave(lib, tx, v, i) if c0 is not None and c0 != target else {}
        if who is not None:
            lib.unreject(tx, key, who)
            lib.set_label(tx, key, who)
            said = who
        else:
            assert cluster is not None
            label, old = v.labels.get(key), v.name_of(c0)
            if label is not None:
                lib.unlabel(tx, key)
            for rejected in {label.person if label else None, old} - {None}:
                lib.reject(tx, key, str(rejected))
            mates = [v.key(j) for j in v.members(cluster) if j != i]
            lib.add_group(tx, "together", [[key, *mates]])
            said = f"cluster {cluster}"
        if target is None:
            target = lib.next_cluster(tx)
        changes[face_id] = target
        lib.set_clusters(tx, changes)
        return Done(f"moved face {face_id} to {said}", target), {key}, False

    return decide(lib, step)


def reject(lib: Library, face_id: int, person: str) -> Done:
    """This face is not ``person``: it leaves that person (unassigned) and never rejoins."""
    person = check_name(person)

    def step(lib: Library, tx: Tx, v: View) -> tuple[Done, set[str], bool]:
        i = v.row(face_id)
        key, c = v.key(i), v.cluster(i)
        label = v.labels.get(key)
        if label is not None and label.person == person:
            lib.unlabel(tx, key)
        lib.forget_face(tx, key)
        lib.reject(tx, key, person)
        if c is not None and v.name_of(c) == person:
            lib.set_clusters(tx, {face_id: None})
        return Done(f"face {face_id} is not {person}", c), {key}, False

    return decide(lib, step)


def hide(lib: Library, face_id: int, *, undo: bool = False) -> Done:
    """Hide a face (not a face, a stranger, a poster): never clustered, never enrolled;
    ``undo`` shows it again (unassigned until the next index or re-cluster)."""

    def step(lib: Library, tx: Tx, v: View) -> tuple[Done, set[str], bool]:
        i = v.row(face_id)
        key = v.key(i)
        label = v.labels.get(key)
        if undo:
            if label is not None and label.hidden:
                lib.unlabel(tx, key)
                lib.set_clusters(tx, {face_id: None}, done=False)  # the next index places it
            return Done(f"face {face_id} is shown again"), {key}, False
        lib.forget_face(tx, key)
        lib.set_label(tx, key, None, hidden=True)
        lib.set_clusters(tx, {face_id: None})
        return Done(f"face {face_id} is hidden", v.cluster(i)), {key}, False

    return decide(lib, step)
