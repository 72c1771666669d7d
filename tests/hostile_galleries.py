"""Hostile galleries: files that are not galleries, galleries that cannot be written, and
damaged (tampered) galleries, each passed as ``--gallery`` to every command that opens one.

A file that is not a faceprint gallery is refused (exit 6) and left byte-identical by every
command, readers and writers alike; a damaged gallery is refused with the reason (exit 6),
never a traceback, and read-only commands leave it byte-identical too.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
from pathlib import Path

from tests.hostile_runs import GALLERY, IMAGE, MODEL, OK, USAGE, Kit, Run, run_builder


def _results_json(kit: Kit) -> Path:
    """A small, valid results.json of a pairs evaluation (for calibrate --store)."""
    import json

    path = kit.dir / "results.json"
    data = {"scores": [0.1, 0.5, 0.95, 0.2, 0.3], "labels": [0, 0, 1, 0, 0]}
    path.write_text(json.dumps({
        "protocol": "pairs", "source": "pairs.csv", "pack": "dlib-resnet-v1-4view",
        "detector": "yunet", "conditions": [{"condition": "clean", "data": data}],
    }))  # fmt: skip
    return path


def _results(kit: Kit) -> str:
    return str(kit.extra.setdefault("results", _results_json(kit)))


def readers(kit: Kit, gallery: Path) -> dict[str, tuple[str, ...]]:
    """Commands that only read the gallery, by a short name."""
    g = ("--gallery", str(gallery))
    out: dict[str, tuple[str, ...]] = {
        "identify": ("identify", kit.photo("img10.jpg"), *g),
        "verify": ("verify", kit.photo("img13.jpg"), "--person", "mark", *g),
        "people": ("people", *g),
    }
    if kit.keys is not None:
        out["encrypt"] = ("encrypt-gallery", *g, "--keys", str(kit.keys),
                          "--out", str(kit.dir / f"enc-{gallery.name}"))  # fmt: skip
    return out


def writers(kit: Kit, gallery: Path) -> dict[str, tuple[str, ...]]:
    """Commands that write (or create) the gallery."""
    g = ("--gallery", str(gallery))
    return {
        "enroll": ("enroll", "bob", kit.photo("img1.jpg"), *g, "-q"),
        "forget": ("forget", "mark", *g),
        "calibrate": ("calibrate", "--from", _results(kit),
                      "--fmr", "0.2", "--store", *g),
        "keys_create": ("api-keys", "create", "--collections", "*", *g),
        "keys_list": ("api-keys", "list", *g),
        "keys_revoke": ("api-keys", "revoke", "1", *g),
    }  # fmt: skip


def _others(kit: Kit, gallery: Path, every: bool = True) -> dict[str, tuple[str, ...]]:
    """Commands that take --gallery but stop at a hostile photo or option first (with
    ``every`` False: of the photo-library commands, one reader and one writer)."""
    g = ("--gallery", str(gallery))
    fifo = kit.image("fifo_named_jpg")
    out = {
        "video": ("video", str(kit.video), *g, "-q"),
        "analyze": ("analyze", fifo, *g),
        "liveness": ("liveness", fifo, *g),
        "serve": ("serve", "--port", "80000", *g),
    }
    library = {
        "index": ("index", str(kit.dir), *g),
        "name": ("name", "1", "alice", *g),
        "merge": ("merge", "1", "2", *g),
        "split": ("split", "1", "2", *g),
        "move": ("move", "1", "alice", *g),
        "not": ("not", "1", "alice", *g),
        "hide": ("hide", "1", *g),
        "photos": ("photos", "alice", *g),
        "xmp": ("xmp", "write", *g),
    }
    out.update({k: v for k, v in library.items() if k in kit.commands
                and (every or k in ("index", "photos"))})  # fmt: skip
    return out


def _not_galleries(kit: Kit) -> dict[str, tuple[Path, str, bool]]:
    """name -> (path, reason regex, unprivileged)."""
    d = kit.dir
    foreign = d / "foreign.db"
    with sqlite3.connect(foreign) as db:
        db.execute("CREATE TABLE photos (id INTEGER PRIMARY KEY, path TEXT)")
        db.execute("INSERT INTO photos (path) VALUES ('holiday.jpg')")
    db.close()
    other_app = d / "other-app.db"
    with sqlite3.connect(other_app) as db:
        db.execute("PRAGMA application_id = 1234567")
        db.executescript("CREATE TABLE people (id, name); CREATE TABLE templates (x)")
    db.close()
    (d / "zero.db").write_bytes(b"")
    (d / "text.db").write_text("name,template\nalice,0.1 0.2\n")
    (d / "folder.db").mkdir()
    os.mkfifo(d / "fifo.db")
    (d / "loop.db").symlink_to(d / "loop.db")
    shutil.copy(kit.gallery, d / "unreadable.db")
    (d / "unreadable.db").chmod(0)
    hostname = Path("/etc/hostname")
    base = hostname if hostname.is_file() else d / "a-file"
    if base != hostname:
        base.write_text("x\n")
    found = r"not a faceprint gallery"
    return {
        "foreign": (foreign, r"another program", False),
        "other_app": (other_app, found, False),
        "zero": (d / "zero.db", r"empty file", False),
        "text": (d / "text.db", r"not a SQLite file", False),
        "folder": (d / "folder.db", r"is a directory", False),
        "fifo": (d / "fifo.db", r"not a regular file", False),
        "loop": (d / "loop.db", r"symbolic links|cannot use", False),
        "unreadable": (d / "unreadable.db", r"permission denied|cannot read", True),
        "through_a_file": (base / "x.db", r"not a directory", False),
    }


@run_builder("gallery_file")
def not_a_gallery(kit: Kit) -> list[Run]:
    """Every command that opens a gallery, on files that are not one: exit 6, untouched."""
    runs = []
    for label, (path, reason, unpriv) in _not_galleries(kit).items():
        commands = {**readers(kit, path), **writers(kit, path)}
        for cmd, argv in commands.items():
            runs.append(Run(f"{label}_{cmd}", argv, GALLERY, reason, untouched=(path,),
                            unprivileged=unpriv))  # fmt: skip
        every = label in ("foreign", "zero")  # the README's byte-identical promise: all
        for cmd, argv in _others(kit, path, every).items():
            code = {"serve": USAGE, "analyze": IMAGE, "liveness": IMAGE}.get(cmd, GALLERY)
            if cmd == "video" and label == "through_a_file":
                code = OK  # no gallery there: tracking only (a note says so)
            runs.append(Run(f"{label}_{cmd}", argv, code, untouched=(path,), unprivileged=unpriv))
    return runs


@run_builder("gallery_file")
def read_only_galleries(kit: Kit) -> list[Run]:
    """A gallery one may only read (chmod 444, or in a read-only folder): searched as
    usual, writes refused (exit 6), the file unchanged."""
    ro = kit.copy("read-only")
    ro.chmod(0o444)
    folder = kit.dir / "read-only-folder"
    folder.mkdir()
    inside = folder / "g.db"
    shutil.copy(kit.gallery, inside)
    folder.chmod(0o555)
    runs = []
    for label, path in (("chmod_444", ro), ("in_read_only_folder", inside)):
        for cmd, argv in readers(kit, path).items():
            if cmd != "encrypt":
                runs.append(Run(f"{label}_{cmd}", argv, OK, untouched=(path,), unprivileged=True))
        for cmd, argv in writers(kit, path).items():
            if cmd in ("enroll", "forget", "calibrate", "keys_create"):
                runs.append(Run(f"{label}_{cmd}", argv, GALLERY, "read-?only|cannot open",
                                untouched=(path,), unprivileged=True))  # fmt: skip
    missing = kit.dir / "missing.db"
    for cmd, argv in readers(kit, missing).items():
        if cmd != "encrypt":
            runs.append(Run(f"missing_{cmd}", argv, GALLERY, "no such gallery"))
    return runs


def _tampered(kit: Kit, name: str, *statements: str) -> Path:
    path = kit.dir / f"{name}.db"
    shutil.copy(kit.gallery, path)
    db = sqlite3.connect(path)
    db.execute("PRAGMA foreign_keys = OFF")
    for sql in statements:
        db.execute(sql)
    db.commit()
    db.execute("PRAGMA journal_mode = DELETE")  # one self-contained file
    db.close()
    path.chmod(0o600)
    return path


def _overwritten(kit: Kit, name: str, start: int, data: bytes | None, cut: int = 0) -> Path:
    path = kit.dir / f"{name}.db"
    raw = bytearray(kit.gallery.read_bytes())
    if data is not None:
        raw[start : start + len(data)] = data
    path.write_bytes(bytes(raw[:cut] if cut else raw))
    path.chmod(0o600)
    return path


DAMAGED = "damaged"


@run_builder("damaged_gallery")
def damaged(kit: Kit) -> list[Run]:
    """Tampered galleries: (file, {command: (exit code, reason)}) -> one run each."""
    tpl = "UPDATE templates SET "
    cases: dict[str, tuple[Path, dict[str, tuple[int, str]]]] = {
        "schema_version_text": (_tampered(kit, "schema-text", "UPDATE faceprint_schema SET "
                                "version = 'abc' WHERE component = 'gallery'"),
                                {c: (GALLERY, "schema version") for c in ("identify", "people",
                                                                          "enroll", "forget")}),
        "schema_version_newer": (_tampered(kit, "schema-newer", "UPDATE faceprint_schema SET "
                                 "version = 99 WHERE component = 'gallery'"),
                                 {c: (GALLERY, "newer than this faceprint") for c in
                                  ("identify", "people", "forget")}),
        "pages_overwritten": (_overwritten(kit, "pages", 4096, b"\xab" * 8192),
                              {c: (GALLERY, DAMAGED) for c in ("identify", "people", "forget")}),
        "header_overwritten": (_overwritten(kit, "header", 16, b"\xff" * 84),
                               {c: (GALLERY, "") for c in ("identify", "people")}),
        "truncated": (_overwritten(kit, "truncated", 0, None, cut=5000),
                      {c: (GALLERY, "") for c in ("identify", "people", "forget")}),
        "template_without_person": (_tampered(kit, "orphan", "INSERT INTO templates (collection_id,"
                                    " person_id, embedding, dim, pack, created) SELECT "
                                    "collection_id, 999, embedding, dim, pack, created FROM "
                                    "templates LIMIT 1"),
                                    {"identify": (GALLERY, "belongs to no person"),
                                     "people": (OK, "")}),
        "embedding_5_bytes": (_tampered(kit, "five-bytes", tpl + "embedding = x'0102030405'"),
                              {"identify": (GALLERY, "template is damaged"),
                               "verify": (GALLERY, "template is damaged"), "people": (OK, ""),
                               "encrypt": (GALLERY, "template is damaged")}),
        "embedding_as_text": (_tampered(kit, "emb-text", tpl + "embedding = 'abcd'"),
                              {"identify": (GALLERY, DAMAGED), "verify": (GALLERY, DAMAGED)}),
        "dimension_text": (_tampered(kit, "dim-text", tpl + "dim = 'x'"),
                           {"identify": (GALLERY, DAMAGED), "enroll": (GALLERY, DAMAGED)}),
        "quality_text": (_tampered(kit, "quality-text", tpl + "quality = 'x'"),
                         {"identify": (GALLERY, DAMAGED), "verify": (GALLERY, DAMAGED)}),
        "template_created_text": (_tampered(kit, "created-text", tpl + "created = 'x'"),
                                  {"verify": (GALLERY, DAMAGED)}),
        "person_created_text": (_tampered(kit, "person-created", "UPDATE people SET created = 'x'"),
                                {"people": (GALLERY, DAMAGED), "forget": (GALLERY, DAMAGED)}),
        "person_name_blob": (_tampered(kit, "name-blob", "UPDATE people SET name = x'ff00' "
                                                  "WHERE name = 'mark'"),
                             {"people": (GALLERY, DAMAGED)}),
        "generation_text": (_tampered(kit, "generation", "UPDATE collections SET generation='x'"),
                            {"identify": (GALLERY, DAMAGED)}),
        "threshold_not_a_number": (_tampered(kit, "threshold", "INSERT INTO settings VALUES "
                                   "(1, 'threshold', 'banana')"),
                                   {c: (GALLERY, "stored threshold is damaged") for c in
                                    ("identify", "verify")}),
        "threshold_nan": (_tampered(kit, "threshold-nan", "INSERT INTO settings VALUES "
                          "(1, 'threshold', 'nan')"),
                          {"identify": (GALLERY, "stored threshold is damaged")}),
        "metadata_not_json": (_tampered(kit, "metadata", "UPDATE people SET metadata = '{not'"),
                              {"people": (GALLERY, "metadata is damaged"),
                               "verify": (GALLERY, "metadata is damaged"),
                               "identify": (OK, "")}),
        "metadata_a_list": (_tampered(kit, "metadata-list", "UPDATE people SET metadata='[1,2]'"),
                            {"people": (GALLERY, "metadata is damaged")}),
        "unknown_model_pack": (_tampered(kit, "pack", tpl + "pack = 'no-such-pack'"),
                               {"identify": (MODEL, "not known to this faceprint"),
                                "people": (OK, "")}),
        "encrypted_without_key": (_tampered(kit, "key-check", "INSERT INTO db_meta VALUES "
                                  "('template_key_check', 'deadbeef')"),
                                  {c: (GALLERY, "FACEPRINT_TEMPLATE_KEY") for c in
                                   ("identify", "people")}),
        "no_collection": (_tampered(kit, "no-collection", "DELETE FROM collections"),
                          {c: (GALLERY, "no collection") for c in ("identify", "people")}),
    }  # fmt: skip
    runs = []
    for label, (path, table) in cases.items():
        for cmd, (code, reason) in table.items():
            read = readers(kit, path)
            if cmd in read:
                runs.append(Run(f"{label}_{cmd}", read[cmd], code, reason, untouched=(path,)))
                continue
            own = kit.dir / f"{label}-{cmd}.db"  # a writer gets its own copy
            shutil.copy(path, own)
            argv = tuple(str(own) if a == str(path) else a for a in writers(kit, path)[cmd])
            runs.append(Run(f"{label}_{cmd}", argv, code, reason))
    return runs
