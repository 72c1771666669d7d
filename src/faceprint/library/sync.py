"""Keeping the gallery in step with the library's human labels, inside the decision's own
transaction.

The rule: every face present in the library that a human named NAME (and did not hide) is
one template of the gallery person NAME, stored through the core :class:`Store` with the
face key as its ``image_sha256`` (so each face is stored once, and ``faceprint identify``
finds the person). A face no longer named so loses its template; a person left without
templates goes. Faces clustering put in a named cluster without a human saying so are
shown as that person but not enrolled: the gallery only holds what a human confirmed.
"""

from __future__ import annotations

from collections.abc import Iterable

from faceprint.gallery.database import Tx
from faceprint.gallery.records import NewTemplate
from faceprint.library.records import KEY, Label
from faceprint.library.store import Library


def library_templates(lib: Library, tx: Tx) -> dict[str, tuple[int, str]]:
    """face key -> (template id, person) of the gallery templates made from library faces."""
    rows = tx.execute(
        "SELECT t.id, t.image_sha256, p.name FROM templates t JOIN people p ON p.id = "
        "t.person_id WHERE t.collection_id = %s AND t.image_sha256 LIKE %s",
        (lib.cid, "%:%"),
    )
    return {str(r[1]): (int(r[0]), str(r[2])) for r in rows if KEY.fullmatch(str(r[1]))}


def sync(lib: Library, tx: Tx, keys: Iterable[str], labels: dict[str, Label] | None = None) -> bool:
    """Make the gallery templates of these face keys follow their labels; returns whether a
    template was erased (the caller scrubs after commit: ``db.after_erase()``)."""
    keys = sorted(set(keys))
    if not keys:
        return False
    labels = lib.labels(tx) if labels is None else labels
    owned = library_templates(lib, tx)
    lost: set[str] = set()
    adds: dict[str, list[NewTemplate]] = {}
    pack = None
    for key in keys:
        label = labels.get(key)
        found = lib.vector(tx, key)
        want = label.person if label and not label.hidden and found is not None else None
        have = owned.get(key)
        if have is not None and have[1] != want:
            lib.store.remove_template(have[0], tx=tx)
            lost.add(have[1])
        if want is not None and found is not None and (have is None or have[1] != want):
            vec, quality, pack = found
            adds.setdefault(want, []).append(NewTemplate(vec, key, quality))
    for person, templates in sorted(adds.items()):
        assert pack is not None
        lib.store.add_templates(person, templates, pack=pack, tx=tx)
    for person in sorted(lost - set(adds)):
        row = tx.one(
            "SELECT COUNT(t.id) FROM people p LEFT JOIN templates t ON t.person_id = p.id "
            "WHERE p.collection_id = %s AND p.name = %s",
            (lib.cid, person),
        )
        if row is not None and int(row[0]) == 0:
            lib.store.remove(person, tx=tx)
    return bool(lost)


def merge_people(lib: Library, tx: Tx, old: str, new: str) -> bool:
    """Gallery person ``old`` becomes ``new``: renamed, or (when ``new`` exists) every
    template of ``old`` (library faces and enrolled photos alike) moves to ``new``. Returns
    whether templates were erased (re-stored under ``new``)."""
    rows = tx.execute(
        "SELECT p.id, (SELECT COUNT(*) FROM people q WHERE q.collection_id = p.collection_id "
        "AND q.name = %s) FROM people p WHERE p.collection_id = %s AND p.name = %s",
        (new, lib.cid, old),
    )
    if not rows or old == new:
        return False
    if int(rows[0][1]) == 0:
        lib.store.update_person(old, new_name=new, tx=tx)
        return False
    templates = tx.execute(
        "SELECT embedding, person_id, pack, dim, image_sha256, quality FROM templates "
        "WHERE person_id = %s ORDER BY id",
        (int(rows[0][0]),),
    )
    moved = [
        NewTemplate(lib.store._vector(r[0], int(r[1]), str(r[2]), int(r[3])), r[4],
                    None if r[5] is None else float(r[5]))
        for r in templates
    ]  # fmt: skip
    lib.store.remove(old, tx=tx)
    if moved:
        lib.store.add_templates(new, moved, pack=str(templates[0][2]), tx=tx)
    return True
