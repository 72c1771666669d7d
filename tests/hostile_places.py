"""Hostile places: model caches and folders, output folders, FIFOs named like photos,
encrypted galleries and key sets, the image corpus through every command that reads photos,
and the photo-library commands (when present).

A place faceprint cannot use is refused with its reason and the documented exit code; a
FIFO is never opened for reading (no hang); an output that cannot be written is refused
before any work.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import replace
from pathlib import Path

from tests.hostile_runs import (
    GALLERY,
    IMAGE,
    KEYS,
    MODEL,
    NO_FACE,
    OK,
    SOME,
    USAGE,
    Kit,
    Run,
    run_builder,
)  # fmt: skip

YUNET = "face_detection_yunet_2023mar.onnx"


def _cache(kit: Kit, name: str) -> Path:
    """A copy of the test run's model cache (converted models and YuNet)."""
    source = Path(os.environ["FACEPRINT_CACHE_DIR"])
    target = kit.dir / name
    shutil.copytree(source, target, symlinks=True)
    return target


def _people(root: Path, kit: Kit, layout: dict[str, list[str]]) -> Path:
    for person, photos in layout.items():
        (root / person).mkdir(parents=True)
        for p in photos:
            shutil.copy(kit.faces / p, root / person / p)
    return root


@run_builder("filesystem")
def places(kit: Kit) -> list[Run]:
    d = kit.dir
    ident = ("identify", kit.photo("img10.jpg"), *kit.ref, "-q")
    a_file = d / "a-file"
    a_file.write_text("x\n")
    locked_dir = d / "read-only"
    locked_dir.mkdir()
    locked_dir.chmod(0o555)
    memo = _cache(kit, "memo-list")
    (memo / "sha256.json").write_text("[1, 2]")
    unreadable = _cache(kit, "unreadable-model")
    (unreadable / "models" / YUNET).chmod(0)
    ro_cache = _cache(kit, "read-only-cache")
    for folder, _, _ in os.walk(ro_cache):
        Path(folder).chmod(0o555)
    bad_models = d / "bad-models"
    bad_models.mkdir()
    (bad_models / YUNET).write_bytes(b"not an onnx model")
    locked_models = d / "locked-models"
    locked_models.mkdir()
    shutil.copy(unreadable.parent / "memo-list" / "models" / YUNET, locked_models / YUNET)
    (locked_models / YUNET).chmod(0)
    layout = {"alice": ["img1.jpg", "img2.jpg"], "mark": ["img13.jpg", "img14.jpg"]}
    people = _people(d / "people", kit, {**layout, "locked": ["img3.jpg"]})
    (people / "locked").chmod(0)
    (people / "loop").mkdir()
    (people / "loop" / "up").symlink_to("..")
    (people / "loop" / "self.jpg").symlink_to(people / "loop" / "self.jpg")
    (people / "mark" / "dangling.jpg").symlink_to(d / "nothing.jpg")
    pairs = ("eval", "pairs", "--root", str(kit.faces), "--pairs", str(kit.faces / "master.csv"))
    ev_id = ("eval", "identify", "--root", str(people), "-q")
    fifo_out = d / "out-fifo"
    os.mkfifo(fifo_out)
    key_dir = d / "keys"
    runs = [
        Run("cache_dir_is_a_file", ident, OK, env=(("FACEPRINT_CACHE_DIR", str(a_file)),)),
        Run("cache_sha256_json_is_a_list", ident, OK, env=(("FACEPRINT_CACHE_DIR", str(memo)),)),
        Run("cache_model_unreadable", ident, MODEL, "cannot read model file|permission",
            env=(("FACEPRINT_CACHE_DIR", str(unreadable)),), unprivileged=True),
        Run("cache_read_only", ident, OK, env=(("FACEPRINT_CACHE_DIR", str(ro_cache)),),
            unprivileged=True),
        Run("model_dir_wrong_file", (*ident, "--model-dir", str(bad_models), "--detector",
            "yunet"), MODEL, "sha256|checksum"),
        Run("model_dir_unreadable_file", (*ident, "--model-dir", str(locked_models), "--detector",
            "yunet"), MODEL, "cannot read|permission", unprivileged=True),
        Run("enroll_folders_unreadable_and_loops", ("enroll", "--from-folders", str(people),
            "--gallery", str(kit.copy("folders")), "-q"), SOME, "cannot read folder",
            unprivileged=True, timeout=180),
        Run("eval_identify_unreadable_and_loops", (*ev_id, "--out", str(d / "ev")), OK,
            "cannot read folder", unprivileged=True, timeout=240),
        Run("eval_out_is_a_file", (*ev_id, "--out", str(a_file)), USAGE, "not a folder"),
        Run("eval_out_is_a_fifo", (*pairs, "--out", str(fifo_out)), USAGE, "not a folder"),
        Run("eval_out_in_read_only_folder", (*pairs, "--out", str(locked_dir / "ev")), USAGE,
            "cannot create|not writable", unprivileged=True),
        Run("eval_out_under_a_file", (*pairs, "--out", str(a_file / "ev")), USAGE,
            "cannot create|not a"),
        Run("draw_folder_is_a_file", ("identify", kit.photo("img10.jpg"), kit.photo("img1.jpg"),
            *kit.ref, "--draw", str(a_file)), USAGE, "not a folder"),
        Run("draw_folder_read_only", ("identify", kit.photo("img10.jpg"), kit.photo("img1.jpg"),
            *kit.ref, "--draw", str(locked_dir)), USAGE, "not writable", unprivileged=True),
        Run("draw_on_a_fifo", ("identify", kit.photo("img10.jpg"), *kit.ref, "--draw",
            str(fifo_out)), IMAGE, "cannot write"),
        Run("video_draw_on_a_fifo", ("video", str(kit.video), *kit.ref, "-q", "--draw",
            str(fifo_out)), USAGE, "not a regular file"),
        Run("video_events_on_a_fifo", ("video", str(kit.video), *kit.ref, "-q", "--events",
            str(fifo_out)), USAGE, "named pipe"),
        Run("new_gallery_in_read_only_folder", ("enroll", "bob", kit.photo("img1.jpg"),
            "--gallery", str(locked_dir / "g.db"), "-q"), GALLERY, "cannot create",
            unprivileged=True),
        Run("keys_in_read_only_folder", ("keys", "create", "--dir", str(locked_dir / "k")), KEYS,
            "cannot write", unprivileged=True),
        Run("keys_on_a_file", ("keys", "create", "--dir", str(a_file)), KEYS, "cannot write"),
    ]  # fmt: skip
    if kit.keys is not None:
        shutil.copytree(kit.keys, key_dir)
        runs.append(Run("keys_over_a_key_set", ("keys", "create", "--dir", str(key_dir)), KEYS,
                        "already holds", untouched=tuple(sorted(key_dir.iterdir()))))  # fmt: skip
    return [r if r.untouched else replace(r, untouched=(kit.gallery,)) for r in runs]


@run_builder("fifo")
def fifos(kit: Kit) -> list[Run]:
    """A FIFO named x.jpg to every command that reads photos: refused (exit 3) at once."""
    fifo = kit.dir / "x.jpg"
    os.mkfifo(fifo)
    f, good = str(fifo), kit.photo("img13.jpg")
    live = ("--model-dir", kit.attribute_models) if kit.attribute_models else ()
    argvs: dict[str, tuple[str, ...]] = {
        "identify": ("identify", f, *kit.ref),
        "enroll": ("enroll", "bob", f, *kit.ref),
        "enroll_two": ("enroll", "bob", kit.photo("img1.jpg"), f, *kit.ref),
        "verify_a": ("verify", f, good),
        "verify_b": ("verify", good, f),
        "verify_person": ("verify", f, "--person", "mark", *kit.ref),
        "liveness": ("liveness", f, *live),
        "analyze": ("analyze", f, *live),
    }
    if kit.keys is not None and kit.enc is not None:
        argvs["identify_encrypted"] = ("identify-encrypted", f, "--enc", str(kit.enc), "--keys",
                                       str(kit.keys))  # fmt: skip
    runs = [Run(f"fifo_{k}", v, IMAGE, "named pipe", untouched=(kit.gallery,), timeout=60)
            for k, v in argvs.items()]  # fmt: skip
    root = kit.dir / "people"
    _people(root, kit, {"alice": ["img1.jpg"]})
    os.mkfifo(root / "alice" / "x.jpg")
    runs.append(
        Run(
            "fifo_in_enroll_folders",
            (
                "enroll",
                "--from-folders",
                str(root),
                "--gallery",
                str(kit.copy("fifo-folders")),
                "-q",
            ),
            SOME,
            "not a regular",
        )
    )
    if "index" in kit.commands:
        runs.append(
            Run(
                "fifo_in_index",
                ("index", str(root), "--gallery", str(kit.copy("fifo-index")), "-q"),
                SOME,
                "not a regular",
            )
        )
    return runs  # fmt: skip


def _corpus_folder(kit: Kit, skip: set[str]) -> tuple[Path, list[str]]:
    """One folder of symlinks to every usable image of the corpus (sorted names)."""
    folder = kit.dir / "corpus" / "person"
    folder.mkdir(parents=True)
    names = []
    for i, (name, case) in enumerate(sorted(kit.images.items())):
        if case.skip or not case.cli or case.unprivileged or name in skip:
            continue
        (folder / f"{i:03d}.jpg").symlink_to(case.path)
        names.append(name)
    return folder, names


@run_builder("photos")
def corpus_through_commands(kit: Kit) -> list[Run]:
    """The image corpus through the commands that read several photos at once (identify is
    tests/test_io_hostile.py's): exit 2, each photo's own outcome in --json."""
    slow = {"jpeg_real_100mp"}
    folder, names = _corpus_folder(kit, slow)
    photos = [str(kit.images[n].path) for n in names]
    errors = tuple(not kit.images[n].ok for n in names)
    live = ("--model-dir", kit.attribute_models) if kit.attribute_models else ()
    first = next(kit.images[n] for n in names[:20]
                 if not kit.images[n].ok or not kit.images[n].faces)  # fmt: skip
    all_or_nothing = NO_FACE if first.ok else IMAGE  # the first failure's class decides
    runs = [
        Run("corpus_analyze", ("analyze", *photos, "--json", "--no-liveness", *live), SOME,
            report=errors, timeout=300),
        Run("corpus_liveness", ("liveness", *photos, "--json", *live), SOME, report=errors,
            timeout=300),
        Run("corpus_enroll_folders", ("enroll", "--from-folders", str(folder.parent),
            "--gallery", str(kit.copy("corpus")), "-q"), SOME, "were not enrolled", timeout=300),
        Run("corpus_enroll_all_or_nothing", ("enroll", "bob", kit.photo("img1.jpg"),
            *photos[:20], *kit.ref, "-q"), all_or_nothing, "nothing of this enrollment was stored",
            timeout=300),
    ]  # fmt: skip
    if "index" in kit.commands:
        runs.append(Run("corpus_index", ("index", str(folder.parent), "--gallery",
                        str(kit.copy("corpus-index")), "-q"), SOME, timeout=300))  # fmt: skip
    for name in ("png16_real_10000x10000", "sparse_3gb", "pdf", "symlink_loop"):
        p = kit.image(name)
        runs += [
            Run(f"verify_{name}", ("verify", kit.photo("img13.jpg"), p), IMAGE),
            Run(f"verify_person_{name}", ("verify", p, "--person", "mark", *kit.ref), IMAGE,
                untouched=(kit.gallery,)),
        ]  # fmt: skip
    return runs


def _manifest(enc: Path, change: dict[str, object]) -> None:
    path = enc / "manifest.json"
    meta = json.loads(path.read_text())
    meta.update(change)
    path.write_text(json.dumps(meta))


@run_builder("encrypted")
def encrypted(kit: Kit) -> list[Run]:
    """Encrypted galleries and key sets that are damaged or do not belong together."""
    if kit.keys is None or kit.enc is None:
        return [Run("encrypted", (), OK, skip="the privacy extra (tenseal) is not installed")]
    d, keys = kit.dir, str(kit.keys)

    def enc(name: str) -> Path:
        target = d / name
        shutil.copytree(kit.enc, target)  # type: ignore[arg-type]
        return target

    (enc("no-manifest") / "manifest.json").unlink()
    meta = json.loads((kit.enc / "manifest.json").read_text())
    _manifest(enc("tampered"), {"people": ["evil", *meta["people"]]})
    (enc("deep") / "manifest.json").write_text("[" * 100_000 + "]" * 100_000)
    (enc("list") / "manifest.json").write_text("[1, 2]")
    _manifest(enc("slot-owner"), {"slot_person": [999, *meta["slot_person"][1:]]})
    _manifest(enc("threshold"), {"threshold": "nan"})
    _manifest(enc("huge-dim"), {"dim": 10**12})
    block = enc("bad-block") / "b0000_c003.ct"
    data = bytearray(block.read_bytes())
    data[1000] ^= 0xFF
    block.write_bytes(bytes(data))
    (enc("fifo-manifest") / "manifest.json").unlink()
    os.mkfifo(d / "fifo-manifest" / "manifest.json")
    (enc("unreadable") / "manifest.json").chmod(0)
    others = d / "other-keys"
    shutil.copytree(kit.keys, others)
    (others / "public.key").write_bytes(b"someone else's key")
    open_keys = d / "open-keys"
    shutil.copytree(kit.keys, open_keys)
    (open_keys / "secret.key").chmod(0o644)
    garbage = d / "garbage-keys"
    shutil.copytree(kit.keys, garbage)
    (garbage / "secret.key").write_bytes(b"garbage")
    damaged = {  # forget NOBODY reads the manifest first: no model is loaded
        "no_manifest": ("no-manifest", GALLERY, "no manifest"),
        "tampered_manifest": ("tampered", GALLERY, "corrupted manifest"),
        "deep_manifest": ("deep", GALLERY, "corrupted manifest"),
        "manifest_a_list": ("list", GALLERY, "corrupted manifest"),
        "slot_owner_out_of_range": ("slot-owner", GALLERY, "corrupted manifest"),
        "threshold_nan": ("threshold", GALLERY, "corrupted manifest"),
        "dimension_huge": ("huge-dim", GALLERY, "corrupted manifest|ciphertext"),
        "fifo_manifest": ("fifo-manifest", GALLERY, "manifest"),
        "unreadable_manifest": ("unreadable", GALLERY, "manifest"),
    }
    runs = []
    for name, (folder, code, match) in damaged.items():
        gallery = kit.copy(f"forget-{name}")
        runs.append(Run(f"enc_forget_{name}", ("forget", "mark", "--enc", str(d / folder),
                        "--keys", keys, "--gallery", str(gallery)), code, match,
                        untouched=(gallery, d / folder / "manifest.json"),
                        unprivileged=name == "unreadable_manifest"))  # fmt: skip
    probe = kit.photo("img13.jpg")
    search = {
        "bad_block": (str(d / "bad-block"), keys, GALLERY, "corrupted ciphertext"),
        "slot_owner": (str(d / "slot-owner"), keys, GALLERY, "corrupted manifest"),
        "wrong_key_set": (str(kit.enc), str(others), KEYS, "key"),
        "no_key_set": (str(kit.enc), str(d), KEYS, "no key set"),
        "secret_key_readable_by_others": (str(kit.enc), str(open_keys), KEYS, "permissions"),
        "secret_key_garbage": (str(kit.enc), str(garbage), KEYS, "cannot be loaded"),
        "enc_is_a_file": (str(kit.gallery), keys, GALLERY, "not an encrypted gallery"),
    }
    for name, (where, key_dir, code, match) in search.items():
        runs.append(Run(f"enc_identify_{name}", ("identify-encrypted", probe, "--enc", where,
                        "--keys", key_dir), code, match, timeout=120))  # fmt: skip
    wrong = kit.copy("forget-wrong-keys")
    runs.append(
        Run(
            "enc_forget_wrong_keys",
            (
                "forget",
                "mark",
                "--enc",
                str(kit.enc),
                "--keys",
                str(others),
                "--gallery",
                str(wrong),
            ),
            KEYS,
            "key",
            untouched=(wrong,),
        )
    )
    runs.append(
        Run(
            "enc_forget_without_keys",
            ("forget", "mark", "--enc", str(kit.enc), *kit.ref),
            USAGE,
            "--keys",
            untouched=(kit.gallery,),
        )
    )
    runs.append(
        Run(
            "encrypt_with_wrong_keys",
            ("encrypt-gallery", *kit.ref, "--keys", str(d), "--out", str(d / "new.enc")),
            KEYS,
            "no key set",
            untouched=(kit.gallery,),
        )
    )
    runs.append(
        Run(
            "encrypt_out_over_a_file",
            ("encrypt-gallery", *kit.ref, "--keys", keys, "--out", str(kit.gallery)),
            GALLERY,
            "",
            untouched=(kit.gallery,),
        )
    )
    return runs  # fmt: skip


@run_builder("library")
def library(kit: Kit) -> list[Run]:
    """The photo-library commands (faceprint index, name, merge, ...), when present."""
    if "index" not in kit.commands:
        return [Run("library", (), OK, skip="no photo-library commands in this faceprint")]
    g = ("--gallery", str(kit.copy("library")))
    ids = {
        "name_id_negative": ("name", "-1", "alice"),
        "name_id_huge": ("name", "9" * 30, "x"),
        "merge_id_text": ("merge", "one", "2"),
        "split_no_faces": ("split", "1"),
    }
    runs = [Run(f"library_{k}", (*v, *g), USAGE, "id|argument") for k, v in ids.items()]
    missing = {
        "move_unknown_face": ("move", "99", "bob"),
        "not_unknown_face": ("not", "99", "b"),
        "hide_unknown_face": ("hide", "99"),
        "merge_itself": ("merge", "1", "1"),
        "photos_unknown_person": ("photos", "nobody"),
        "name_control_character": ("name", "1", "a\x01b"),
    }
    runs += [Run(f"library_{k}", (*v, *g), GALLERY) for k, v in missing.items()]
    runs += [
        Run("library_index_a_file", ("index", str(kit.gallery), *g), USAGE, "not a folder"),
        Run("library_people_reference", ("people", *kit.ref), OK, untouched=(kit.gallery,)),
        Run("library_photos_reference", ("photos", "mark", *kit.ref), GALLERY,
            untouched=(kit.gallery,)),
    ]  # fmt: skip
    return runs
