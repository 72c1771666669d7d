"""Hostile numbers on the command line, pairs CSVs, results JSON files and videos.

Numbers out of range (or NaN) are usage errors (exit 1) before anything is opened; a file
that cannot be the input it is given as is refused with its reason (pairs CSV, results
JSON: exit 1; images named in a pairs file: exit 3; videos and streams: exit 3), never
read without bound (devices, FIFOs, huge lines) and never a traceback.
"""

from __future__ import annotations

import json
import os
from dataclasses import replace
from pathlib import Path

from tests.hostile_runs import GALLERY, IMAGE, OK, USAGE, Kit, Run, run_builder

RANGE = r"must be|not a|is not|invalid"


@run_builder("numbers")
def numbers(kit: Kit) -> list[Run]:
    svc = ("--gallery", str(kit.dir / "service.db"))
    photo = kit.photo("img10.jpg")
    ident = ("identify", photo, *kit.ref)
    folders = ("enroll", "--from-folders", str(kit.faces), *kit.ref)
    pairs = ("eval", "pairs", "--root", str(kit.faces), "--pairs", str(kit.faces / "master.csv"),
             "--out", str(kit.dir / "out"))  # fmt: skip
    ev_id = ("eval", "identify", "--root", str(kit.faces), "--out", str(kit.dir / "out"))
    table: dict[str, tuple[tuple[str, ...], str]] = {
        "rate_nan": (("api-keys", "create", "--collections", "*", "--rate", "nan", *svc), RANGE),
        "rate_inf": (("api-keys", "create", "--collections", "*", "--rate", "inf", *svc), RANGE),
        "rate_zero": (("api-keys", "create", "--collections", "*", "--rate", "0", *svc), RANGE),
        "daily_quota_3e9": (("api-keys", "create", "--collections", "*", "--daily-quota",
                             "3000000000", *svc), RANGE),
        "burst_3e9": (("api-keys", "create", "--collections", "*", "--burst", "3000000000",
                       *svc), RANGE),
        "burst_negative": (("api-keys", "create", "--collections", "*", "--burst", "-1", *svc),
                           RANGE),
        "key_role_unknown": (("api-keys", "create", "--collections", "*", "--role", "root",
                              *svc), "roles must be"),
        "key_without_collections": (("api-keys", "create", *svc), "collections"),
        "revoke_id_zero": (("api-keys", "revoke", "0", *svc), RANGE),
        "revoke_id_text": (("api-keys", "revoke", "one", *svc), RANGE),
        "top_k_0": ((*ident, "--top-k", "0"), RANGE),
        "top_k_minus_5": ((*ident, "--top-k", "-5"), RANGE),
        "top_k_101": ((*ident, "--top-k", "101"), RANGE),
        "top_k_float": ((*ident, "--top-k", "1.5"), RANGE),
        "fmr_2": ((*ident, "--fmr", "2"), RANGE),
        "fmr_0": ((*ident, "--fmr", "0"), RANGE),
        "fmr_nan": ((*ident, "--fmr", "nan"), RANGE),
        "threshold_nan": ((*ident, "--threshold", "nan"), RANGE),
        "threshold_inf": ((*ident, "--threshold", "inf"), RANGE),
        "threshold_2": ((*ident, "--threshold", "2"), RANGE),
        "verify_threshold_nan": (("verify", photo, photo, "--threshold", "nan"), RANGE),
        "verify_fmr_1": (("verify", photo, photo, "--fmr", "1"), RANGE),
        "min_quality_5": (("enroll", "x", photo, *kit.ref, "--min-quality", "5"), RANGE),
        "min_quality_nan": (("enroll", "x", photo, *kit.ref, "--min-quality", "nan"), RANGE),
        "batch_size_0": ((*folders, "--batch-size", "0"), RANGE),
        "batch_size_3e9": ((*folders, "--batch-size", "3000000000"), RANGE),
        "port_80000": (("serve", "--port", "80000", *svc), "not a TCP port|must be"),
        "port_0": (("serve", "--port", "0", *svc), "not a TCP port|must be"),
        "port_negative": (("serve", "--port", "-1", *svc), "not a TCP port|must be"),
        "port_text": (("serve", "--port", "http", *svc), RANGE),
        "max_upload_0": (("serve", "--max-upload", "0", *svc), RANGE),
        "every_0": (("video", str(kit.video), *kit.ref, "--every", "0"), "--every"),
        "every_negative": (("video", str(kit.video), *kit.ref, "--every", "-3"), "--every"),
        "min_hits_negative": (("video", str(kit.video), *kit.ref, "--min-hits", "-1"), RANGE),
        "max_missed_negative": (("video", str(kit.video), *kit.ref, "--max-missed", "-1"),
                                RANGE),
        "folds_1": ((*pairs, "--folds", "1"), "--folds"),
        "seed_negative": ((*pairs, "--seed", "-1"), RANGE),
        "seed_huge": ((*ev_id, "--seed", "9" * 30), RANGE),
        "gallery_per_person_0": ((*ev_id, "--gallery-per-person", "0"), "--gallery-per-person"),
        "nonmated_fraction_5": ((*ev_id, "--nonmated-fraction", "5"), "--nonmated-fraction"),
        "nonmated_fraction_nan": ((*ev_id, "--nonmated-fraction", "nan"), "--nonmated-fraction"),
        "degrade_blur_huge": ((*pairs, "--degrade", "blur:1e308"), "out of range"),
        "degrade_blur_inf": ((*pairs, "--degrade", "blur:inf"), "out of range"),
        "degrade_elastic_huge": ((*pairs, "--degrade", "elastic:1e9/1e9"), "out of range"),
        "degrade_downscale_huge": ((*pairs, "--degrade", "downscale:1e12"), "out of range"),
        "degrade_unknown": ((*pairs, "--degrade", "zoom:3"), "unknown degradation"),
        "calibrate_fmr_nan": (("calibrate", "--from", str(kit.dir / "r.json"), "--fmr", "nan"),
                              RANGE),
        "calibrate_fmr_2": (("calibrate", "--from", str(kit.dir / "r.json"), "--fmr", "2"), RANGE),
        "encrypted_threshold_nan": (("identify-encrypted", photo, "--enc", str(kit.dir), "--keys",
                                     str(kit.dir), "--threshold", "nan"), RANGE),
        "detector_unknown": ((*ident, "--detector", "haar"), "invalid choice"),
        "no_command": ((), "required"),
        "unknown_option": ((*ident, "--frobnicate"), "unrecognized"),
    }  # fmt: skip
    if "eval attack" in kit.commands:  # only its arguments: it attacks a live service
        attack = ("eval", "attack", "--url", "http://127.0.0.1:9", "--key", "fp_x",
                  "--collection", "team", "--others", str(kit.dir))  # fmt: skip
        table["attack_budget_negative"] = ((*attack, "--budget", "-1"), "must be")
        table["attack_concurrency_0"] = ((*attack, "--concurrency", "0"), "must be")
    runs = [Run(name, argv, USAGE, match) for name, (argv, match) in table.items()]
    names = {  # names the gallery's rules refuse: a gallery problem (exit 6), as in enroll
        "key_collection_with_space": ("api-keys", "create", "--collections", "a b", *svc),
        "collection_with_space": (*ident, "--collection", "a b"),
        "person_name_control_char": ("enroll", "a\x01b", photo, *kit.ref),
    }
    runs += [Run(n, argv, GALLERY, "invalid") for n, argv in names.items()]
    env = {
        "decode_budget_text": ("FACEPRINT_DECODE_BUDGET", "lots", "not a size"),
        "decode_budget_tiny": ("FACEPRINT_DECODE_BUDGET", "10", "too small"),
        "max_pixels_negative": ("FACEPRINT_MAX_PIXELS", "-5", "whole number"),
        "max_decodes_zero": ("FACEPRINT_MAX_DECODES", "0", "whole number"),
        "max_file_bytes_text": ("FACEPRINT_MAX_FILE_BYTES", "big", "not a size"),
    }
    for name, (var, value, match) in env.items():
        runs.append(Run(f"env_{name}", ident, USAGE, match, env=((var, value),)))
    return [replace(r, untouched=(kit.gallery,)) for r in runs]


def _csv(kit: Kit, name: str, text: str | bytes) -> Path:
    path = kit.dir / name
    path.write_bytes(text.encode() if isinstance(text, str) else text)
    return path


@run_builder("pairs_csv")
def pairs_files(kit: Kit) -> list[Run]:
    head = "file_a,file_b,same\n"
    ok_rows = "img1.jpg,img2.jpg,yes\nimg1.jpg,img13.jpg,no\n"
    sparse = kit.dir / "sparse.csv"
    with sparse.open("wb") as fh:
        fh.write(head.encode())
        fh.truncate(3 * 10**9)
    fifo = kit.dir / "fifo.csv"
    os.mkfifo(fifo)
    huge_line = head + "a" * 300_000 + ",img2.jpg,yes\n" + ok_rows
    files: dict[str, tuple[Path | str, int, str]] = {
        "missing_column": (_csv(kit, "two.csv", "a,b\nimg1.jpg,img2.jpg\n"), USAGE, "3 columns"),
        "short_row": (_csv(kit, "short.csv", head + "img1.jpg,img2.jpg\n"), USAGE, "expected"),
        "bad_label": (_csv(kit, "label.csv", head + "img1.jpg,img2.jpg,maybe\n" + ok_rows),
                      USAGE, "label 'maybe'"),
        "nul_in_a_path": (_csv(kit, "nul.csv", head + "img1.jpg,img2\x00.jpg,yes\n" + ok_rows),
                          IMAGE, "do not exist"),
        "huge_line": (_csv(kit, "huge-line.csv", huge_line), USAGE, "too long|field|line"),
        "huge_sparse_file": (sparse, USAGE, "larger than"),
        "missing_images": (_csv(kit, "missing.csv", head + "img1.jpg,nope.jpg,yes\n" + ok_rows),
                           IMAGE, "do not exist"),
        "path_out_of_root": (_csv(kit, "escape.csv", head + "../../../../etc/hostname,img1.jpg,"
                                  "yes\n" + ok_rows), IMAGE, ""),
        "not_utf8": (_csv(kit, "latin.csv", head.encode() + b"caf\xe9.jpg,img1.jpg,yes\n"),
                     USAGE, "cannot read|utf-8"),
        "unterminated_quote": (_csv(kit, "quote.csv", head + '"img1.jpg,img2.jpg,yes\n'), USAGE,
                               "expected"),
        "empty": (_csv(kit, "empty.csv", b""), USAGE, "empty|no pairs"),
        "header_only": (_csv(kit, "header.csv", head), USAGE, "no pairs"),
        "only_same_pairs": (_csv(kit, "same.csv", head + "img1.jpg,img2.jpg,yes\n"), USAGE,
                            "both same-person and different"),
        "lfw_header_lies": (_csv(kit, "pairs.txt", "10 300\nname 1 2\n"), USAGE, "header says"),
        "lfw_huge_header": (_csv(kit, "big.txt", "99999999999 99999999999\n"), USAGE,
                            "header says"),
        "lfw_number_not_int": (_csv(kit, "lfw.txt", "1 1\nimg 1 x\nimg 1 img 2\n"), USAGE,
                               "not an integer"),
        "fifo": (fifo, USAGE, "named pipe"),
        "dev_zero": ("/dev/zero", USAGE, "character device"),
        "directory": (kit.dir, USAGE, "directory"),
        "missing_file": (kit.dir / "none.csv", USAGE, "not found|no such file"),
    }  # fmt: skip
    return [
        Run(f"pairs_{name}", ("eval", "pairs", "--root", str(kit.faces), "--pairs", str(path),
            "--out", str(kit.dir / f"out-{name}"), "-q"), code, match, timeout=120)
        for name, (path, code, match) in files.items()
    ]  # fmt: skip


def _results(pairs: dict[str, object] | None = None, **top: object) -> dict[str, object]:
    data = pairs or {"scores": [0.1, 0.5, 0.95, 0.2], "labels": [0, 0, 1, 0]}
    base: dict[str, object] = {
        "protocol": "pairs", "source": "x.csv", "pack": "dlib-resnet-v1-4view",
        "detector": "yunet", "conditions": [{"condition": "clean", "data": data}],
    }  # fmt: skip
    return {**base, **top}


@run_builder("results_json")
def results_files(kit: Kit) -> list[Run]:
    valid = json.dumps(_results())
    fifo = kit.dir / "fifo.json"
    os.mkfifo(fifo)
    texts: dict[str, tuple[str | bytes | Path, int, str]] = {
        "valid": (valid, OK, ""),
        "no_data": (json.dumps(_results(conditions=[{"condition": "clean"}])), USAGE,
                    "without its data"),
        "deep_arrays": ("[" * 100_000 + "]" * 100_000, USAGE, "not a readable results"),
        "deep_objects": ('{"a":' * 50_000 + "1" + "}" * 50_000, USAGE, "not a readable results"),
        "wrong_types": (json.dumps(_results({"scores": "abc", "labels": {"x": 1}})), USAGE,
                        "damaged"),
        "scores_nested": (json.dumps(_results({"scores": [[0.1, [0.2]], 0.3], "labels": [0, 0]})),
                          USAGE, "damaged"),
        "huge_numbers": (json.dumps(_results({"scores": [1e308, -1e308, 5.0], "labels": [0] * 3})),
                         USAGE, "not a cosine"),
        "huge_integer": (valid.replace("0.95", "9" * 5000), USAGE, "not a readable results"),
        "infinities": (valid.replace("0.95", "Infinity").replace("0.2", "NaN"), OK, ""),
        "overflowing_float": (valid.replace("0.5", "1e999"), OK, ""),
        "all_null": (json.dumps(_results({"scores": [None, None], "labels": [0, 0]})), USAGE,
                     "no impostor"),
        "protocol_list": (json.dumps(_results(protocol=["pairs"])), USAGE, "not the results"),
        "top_level_list": ("[1, 2]", USAGE, "not the results"),
        "not_utf8": (b'{"protocol": "\xff\xfe"}', USAGE, "not a readable results"),
        "nul_byte": (b'{"protocol"\x00: 1}', USAGE, "not a readable results"),
        "empty": (b"", USAGE, "empty"),
        "fifo": (fifo, USAGE, "named pipe"),
        "dev_zero": (Path("/dev/zero"), USAGE, "character device"),
    }  # fmt: skip
    runs = []
    for name, (content, code, match) in texts.items():
        path = content if isinstance(content, Path) else _csv(kit, f"{name}.json", content)
        argv = ("calibrate", "--from", str(path), "--fmr", "0.1", *kit.ref)
        runs.append(Run(f"results_{name}", argv, code, match, untouched=(kit.gallery,)))
    valid_path = kit.dir / "valid.json"
    runs.append(Run("results_unknown_condition", ("calibrate", "--from", str(valid_path),
                    "--fmr", "0.1", "--condition", "nope"), USAGE, "no condition"))  # fmt: skip
    return runs


def tiny_video(path: Path, frames: int = 5) -> Path:
    """A short valid video (grey frames, no face)."""
    import cv2
    import numpy as np

    writer = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*"MJPG"), 10, (64, 48))
    for i in range(frames):
        writer.write(np.full((48, 64, 3), 40 * i, np.uint8))
    writer.release()
    return path


@run_builder("video")
def videos(kit: Kit) -> list[Run]:
    good = tiny_video(kit.dir / "ok.avi")
    data = good.read_bytes()
    (kit.dir / "cut.avi").write_bytes(data[: len(data) // 3])
    (kit.dir / "empty.mp4").write_bytes(b"")
    (kit.dir / "noise.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42" + bytes(range(256)) * 40)
    (kit.dir / "folder.mp4").mkdir()
    os.mkfifo(kit.dir / "fifo.mp4")
    sparse = kit.dir / "sparse.mp4"
    with sparse.open("wb") as fh:
        fh.truncate(3 * 10**9)
    a_file = kit.dir / "a-file"
    a_file.write_text("x")
    inputs: dict[str, tuple[str, int, str]] = {
        "valid": (str(good), OK, ""),
        "cut": (str(kit.dir / "cut.avi"), IMAGE, ""),
        "empty": (str(kit.dir / "empty.mp4"), IMAGE, "corrupt|empty"),
        "noise": (str(kit.dir / "noise.mp4"), IMAGE, "corrupt"),
        "folder": (str(kit.dir / "folder.mp4"), IMAGE, "directory"),
        "fifo": (str(kit.dir / "fifo.mp4"), IMAGE, "named pipe"),
        "dev_zero": ("/dev/zero", IMAGE, "character device|cannot open"),
        "sparse_3gb_of_zeros": (str(sparse), IMAGE, ""),
        "missing": (str(kit.dir / "none.mp4"), IMAGE, "no such file"),
        "rtsp_unreachable": ("rtsp://127.0.0.1:9/stream", IMAGE, "cannot open the stream"),
        "http_unreachable": ("http://127.0.0.1:9/clip.mp4", IMAGE, "cannot open the stream"),
        "camera_99": ("99", IMAGE, "camera 99"),
        "still_png16_100mp": (kit.image("png16_real_10000x10000"), IMAGE, "still image|budget"),
        "still_jpeg_100mp": (kit.image("jpeg_real_100mp"), IMAGE, "still image|budget"),
        "still_sparse_3gb_jpeg": (kit.image("sparse_3gb"), IMAGE, "still image|larger than"),
    }  # fmt: skip
    runs = [
        Run(f"video_{name}", ("video", source, *kit.ref, "-q"), code, match,
            untouched=(kit.gallery,), timeout=120)
        for name, (source, code, match) in inputs.items()
    ]  # fmt: skip
    outputs = {
        "thumbs_on_a_file": (("--thumbs", str(a_file)), USAGE, "not a folder"),
        "thumbs_under_a_file": (("--thumbs", str(a_file / "t")), USAGE, "cannot create|not a"),
        "events_under_a_file": (("--events", str(a_file / "e.jsonl")), USAGE, "cannot write"),
        "draw_under_a_file": (("--draw", str(a_file / "o.mp4")), IMAGE, "cannot write"),
    }
    for name, (extra, code, match) in outputs.items():
        runs.append(Run(f"video_{name}", ("video", str(good), *kit.ref, "-q", *extra), code,
                        match, untouched=(kit.gallery,)))  # fmt: skip
    return runs
