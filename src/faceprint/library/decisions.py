"""Human decisions about faces, and how they become clustering constraints.

Every decision names faces by their stable key (a string the library derives from content,
e.g. the photo's sha256 and the face box), so it survives any re-index and re-cluster:

* ``named[face] = person``: this face is that person. Faces with the same name are always
  one cluster; faces with different names never are.
* ``not_named``: ``(face, person)`` pairs: this face is not that person.
* ``hidden``: faces never clustered (not a face, a stranger, a poster).
* ``together``: groups of faces that are one person (a merge of clusters: record every face
  the user merged, or at least one face of each side).
* ``apart``: ``(side_a, side_b)`` pairs of face groups: no face of one side is the same
  person as any face of the other (a split, or "move this face out of that cluster").

Naming a cluster is best recorded as ``named`` for every face the user saw in it; merging
two named people as a rename of one's faces. Keys that are not among the faces being
clustered are ignored (a photo was removed, or the decision is about faces clustered
elsewhere). Contradictory decisions raise :class:`faceprint.errors.FaceprintError`.

Constraints become *tokens*: every face carries ``{group: side}``; two clusters may merge
only if, for every group both carry, they carry the same single side. Each photo with
several faces is a group whose every face has its own side (so two faces of one photo are
never one person); names are one group (a side per name); ``not_named`` for person X is a
group with X's faces on side 0 and the rejected faces on side 1; each ``apart`` is a group
with its two sides. A side of :data:`MIXED` (a human joined two sides of one photo, e.g. a
mirror selfie) conflicts with any other cluster that carries the group.
"""

from __future__ import annotations

from collections.abc import Collection, Hashable, Mapping, Sequence
from dataclasses import dataclass, field

from faceprint.errors import FaceprintError

#: A side value meaning "several sides joined by a human": conflicts with everything.
MIXED = -1

Tokens = dict[int, int]


@dataclass(frozen=True)
class Decisions:
    """Every human decision about faces (see the module docstring)."""

    named: Mapping[str, str] = field(default_factory=dict)
    not_named: Collection[tuple[str, str]] = ()
    hidden: Collection[str] = ()
    together: Collection[Collection[str]] = ()
    apart: Collection[tuple[Collection[str], Collection[str]]] = ()


@dataclass(frozen=True)
class Constraints:
    """Decisions compiled for faces ``0..N-1``: ``node[i]`` is the must-link component of
    face i (-1 when hidden), components numbered by their first face; ``tokens`` and
    ``names`` per component."""

    node: list[int]
    tokens: list[Tokens]
    names: dict[int, str]

    @property
    def count(self) -> int:
        return len(self.tokens)


def merge_tokens(a: Tokens, b: Tokens) -> Tokens | None:
    """The tokens of a and b together, or None when they conflict."""
    if len(a) < len(b):
        a, b = b, a
    for g, s in b.items():
        t = a.get(g)
        if t is not None and (t != s or t == MIXED):
            return None
    out = dict(a)
    out.update(b)
    return out


def _find(parent: list[int], x: int) -> int:
    while parent[x] != x:
        parent[x] = parent[parent[x]]
        x = parent[x]
    return x


def compile_decisions(
    keys: Sequence[str], photos: Sequence[Hashable], decisions: Decisions
) -> Constraints:
    """Must-link components and cannot-link tokens of faces ``keys`` (in this order)."""
    index = {k: i for i, k in enumerate(keys)}
    if len(index) != len(keys):
        raise FaceprintError("two faces have the same key; every face needs its own key")
    n = len(keys)
    hidden = [False] * n
    for k in decisions.hidden:
        i = index.get(k)
        if i is not None:
            hidden[i] = True
    parent = list(range(n))

    def link(members: list[int]) -> None:
        for m in members[1:]:
            ra, rb = _find(parent, members[0]), _find(parent, m)
            if ra != rb:
                parent[max(ra, rb)] = min(ra, rb)

    people: dict[str, list[int]] = {}
    for k, person in decisions.named.items():
        i = index.get(k)
        if i is not None and not hidden[i]:
            people.setdefault(person, []).append(i)
    for members in people.values():
        link(members)
    for group in decisions.together:
        link([index[k] for k in group if k in index and not hidden[index[k]]])

    face_tokens: list[list[tuple[int, int, str]]] = [[] for _ in range(n)]
    gid = 0
    by_photo: dict[Hashable, list[int]] = {}
    for i, p in enumerate(photos):
        if not hidden[i]:
            by_photo.setdefault(p, []).append(i)
    for members in by_photo.values():
        if len(members) > 1:
            for i in members:
                face_tokens[i].append((gid, i, "photo"))
            gid += 1
    name_group = gid
    gid += 1
    name_side = {person: s for s, person in enumerate(sorted(people))}
    for person, members in people.items():
        for i in members:
            face_tokens[i].append((name_group, name_side[person], "name"))
    reject_group: dict[str, int] = {}
    for k, person in decisions.not_named:
        i = index.get(k)
        if i is None or hidden[i]:
            continue
        if person not in reject_group:
            reject_group[person] = gid
            gid += 1
            for j in people.get(person, []):
                face_tokens[j].append((reject_group[person], 0, "not"))
        face_tokens[i].append((reject_group[person], 1, "not"))
    for side_a, side_b in decisions.apart:
        for side, group in ((0, side_a), (1, side_b)):
            for k in group:
                i = index.get(k)
                if i is not None and not hidden[i]:
                    face_tokens[i].append((gid, side, "apart"))
        gid += 1

    node = [-1] * n
    roots: dict[int, int] = {}
    tokens: list[Tokens] = []
    kinds: list[dict[int, str]] = []
    for i in range(n):
        if hidden[i]:
            continue
        r = _find(parent, i)
        c = roots.setdefault(r, len(roots))
        if c == len(tokens):
            tokens.append({})
            kinds.append({})
        node[i] = c
        for g, s, kind in face_tokens[i]:
            old = tokens[c].get(g)
            if old is None:
                tokens[c][g] = s
                kinds[c][g] = kind
            elif old != s:
                if kind != "photo":
                    raise FaceprintError(
                        f"contradictory decisions about face {keys[i]!r}: it is kept apart "
                        f"({kind}) from faces it is also said to be one person with"
                    )
                tokens[c][g] = MIXED
    names = {}
    for person, members in people.items():
        names[node[members[0]]] = person
    return Constraints(node=node, tokens=tokens, names=names)
