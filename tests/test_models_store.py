"""Model store, conversion cache, runner registry and execution providers."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import stat
import subprocess
import sys
import time
from pathlib import Path

import onnx
import onnxruntime as ort
import pytest

from faceprint import runtime
from faceprint.errors import ModelError
from faceprint.models import cache, packs, registry, store
from faceprint.models.store import ModelNotFoundError

from .conftest import FACES, SHARED

YUNET_DIR = SHARED / "models" / "yunet"
ROOT = os.geteuid() == 0


@pytest.fixture()
def fresh_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty cache directory and a process that has not read any memo yet."""
    path = tmp_path / "cache"
    monkeypatch.setenv("FACEPRINT_CACHE_DIR", str(path))
    monkeypatch.setattr(store, "_memo", None)
    return path


def test_several_model_dirs_like_path(tmp_path: Path) -> None:
    dirs = os.pathsep.join([str(tmp_path), str(YUNET_DIR)])
    found = store.locate(packs.YUNET, dirs)
    assert found == YUNET_DIR / packs.YUNET.name


def test_wrong_file_is_refused_and_left_alone(tmp_path: Path) -> None:
    bad = tmp_path / packs.YUNET.name
    bad.write_bytes(b"not yunet")
    with pytest.raises(ModelError, match="sha256") as info:
        store.locate(packs.YUNET, tmp_path)
    assert not isinstance(info.value, ModelNotFoundError)
    assert bad.read_bytes() == b"not yunet"


def test_offline_missing_file_says_where_it_looked(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FACEPRINT_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("FACEPRINT_OFFLINE", "1")
    with pytest.raises(ModelNotFoundError, match="--model-dir"):
        store.locate(packs.YUNET, tmp_path)


def test_dlib_files_come_from_the_installed_package() -> None:
    assert "face_recognition_models" in str(store.locate(packs.DLIB_RESNET))


# ------------------------------------------------------------------ sha256 memo


def test_memo_is_read_once_per_process(fresh_cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    reads: list[Path] = []
    hashed: list[Path] = []
    real_read, real_hash = Path.read_bytes, store._hash_file

    def counting_read(self: Path) -> bytes:
        reads.append(self)
        return real_read(self)

    def counting_hash(path: Path) -> str:
        hashed.append(path)
        return real_hash(path)

    monkeypatch.setattr(Path, "read_bytes", counting_read)
    monkeypatch.setattr(store, "_hash_file", counting_hash)
    for _ in range(25):
        store.locate(packs.YUNET, YUNET_DIR)
        store.locate(packs.SHAPE_PREDICTOR_5)
    assert [p.name for p in reads].count("sha256.json") == 1
    assert len(hashed) == 2  # each file hashed once, then known
    memo = json.loads(real_read(fresh_cache / "sha256.json"))
    assert sorted(memo.values()) == sorted([packs.YUNET.sha256, packs.SHAPE_PREDICTOR_5.sha256])
    assert stat.S_IMODE((fresh_cache / "sha256.json").stat().st_mode) == 0o600
    # a new process reads the memo and hashes nothing
    monkeypatch.setattr(store, "_memo", None)
    store.locate(packs.YUNET, YUNET_DIR)
    assert len(hashed) == 2


@pytest.mark.parametrize(
    "content", [b"[1, 2]", b"\xff\x00{garbage", b'{"a|1|2": 5, "b|1|2": "not a digest"}', b""]
)
def test_hostile_memo_is_ignored(fresh_cache: Path, content: bytes) -> None:
    fresh_cache.mkdir()
    (fresh_cache / "sha256.json").write_bytes(content)
    assert store.locate(packs.YUNET, YUNET_DIR) == YUNET_DIR / packs.YUNET.name
    memo = json.loads((fresh_cache / "sha256.json").read_bytes())
    assert list(memo.values()) == [packs.YUNET.sha256]  # rewritten whole, garbage dropped


def test_memo_is_bounded(
    fresh_cache: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(store, "MEMO_LIMIT", 5)
    for i in range(12):
        f = tmp_path / f"f{i}"
        f.write_bytes(b"x" * i)
        store.sha256_of(f)
    memo = json.loads((fresh_cache / "sha256.json").read_bytes())
    newest = hashlib.sha256(b"x" * 11).hexdigest()
    assert len(memo) == 5 and newest in memo.values()


def test_cache_dir_that_is_a_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    not_a_dir = tmp_path / "cache-file"
    not_a_dir.write_text("I am a file")
    monkeypatch.setenv("FACEPRINT_CACHE_DIR", str(not_a_dir))
    monkeypatch.setattr(store, "_memo", None)
    with pytest.raises(ModelError, match="not a directory"):
        store.cache_dir()
    # files still found and checked (the memo is skipped) ...
    assert store.locate(packs.YUNET, YUNET_DIR).is_file()
    with pytest.raises(ModelNotFoundError):
        store.locate(packs.YUNET, tmp_path / "empty")
    # ... and conversions are kept for this process only, with a note
    from faceprint.detect import yunet_runner

    monkeypatch.setattr(cache, "_fallback", None)
    path = yunet_runner.model_path(YUNET_DIR)
    assert not path.is_relative_to(not_a_dir) and path.is_file()
    onnx.checker.check_model(str(path))
    assert "for this run only" in caplog.text  # a note (faceprint.log), not a print
    assert not_a_dir.read_text() == "I am a file"


def _unreadable_copy(folder: Path) -> Path:
    """A YuNet "file" in folder that this process cannot read."""
    target = folder / packs.YUNET.name
    if not ROOT:
        shutil.copy(YUNET_DIR / packs.YUNET.name, target)
        target.chmod(0)
    elif Path("/proc/self/mem").is_file():  # root reads any file; this one fails with EIO
        target.symlink_to("/proc/self/mem")
    else:
        pytest.skip("no way to make a file unreadable for root here")
    return target


def test_unreadable_model_file_is_a_clear_error(tmp_path: Path) -> None:
    target = _unreadable_copy(tmp_path)
    with pytest.raises(ModelError, match="cannot read model file") as info:
        store.locate(packs.YUNET, tmp_path)
    assert not isinstance(info.value, ModelNotFoundError)
    assert str(target) in str(info.value)


# ------------------------------------------------------------------ conversion cache

_CHILD = """
import sys, time
from pathlib import Path
from faceprint.models import cache, store
from faceprint.models.packs import YUNET
from faceprint.detect import yunet_runner

log, go = Path(sys.argv[1]), Path(sys.argv[2])

def build(source):
    with log.open("a") as fh:
        fh.write("built\\n")
    time.sleep(1.0)  # a slow conversion, so the two processes overlap
    return yunet_runner._convert(source)

real = yunet_runner.YUNET_DYNAMIC
converter = cache.Converter(real.name, real.version, build)
source = store.locate(YUNET, sys.argv[3])
while not go.exists():
    time.sleep(0.01)
print(cache.converted(source, converter, YUNET.sha256))
"""


def test_two_processes_converting_at_once_build_one_valid_file(tmp_path: Path) -> None:
    env = {**os.environ, "FACEPRINT_CACHE_DIR": str(tmp_path / "cache")}
    log, go = tmp_path / "builds.log", tmp_path / "go"
    args = [sys.executable, "-c", _CHILD, str(log), str(go), str(YUNET_DIR)]
    procs = [
        subprocess.Popen(args, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for _ in range(2)
    ]
    time.sleep(0.5)
    go.touch()
    outs = [p.communicate(timeout=120) for p in procs]
    assert all(p.returncode == 0 for p in procs), [err for _, err in outs]
    paths = {out.strip() for out, _ in outs}
    assert len(paths) == 1
    assert log.read_text().splitlines() == ["built"]
    path = Path(paths.pop())
    onnx.checker.check_model(str(path))
    record = json.loads(path.with_name(path.name + ".json").read_bytes())
    assert record["source_sha256"] == packs.YUNET.sha256 and record["size"] == path.stat().st_size
    folder = tmp_path / "cache" / "converted"
    assert sorted(p.name for p in folder.iterdir() if not p.name.startswith(path.name)) == []


def test_cached_files_are_private_and_keyed(fresh_cache: Path) -> None:
    from faceprint.detect import yunet_runner

    path = yunet_runner.model_path(YUNET_DIR)
    assert path.parent == fresh_cache / "converted"
    version = yunet_runner.YUNET_DYNAMIC.version
    assert path.name == f"yunet-dynamic-v{version}-{packs.YUNET.sha256}.onnx"
    for p in (fresh_cache, path.parent):
        assert stat.S_IMODE(p.stat().st_mode) == 0o700, p
    for p in path.parent.iterdir():
        assert stat.S_IMODE(p.stat().st_mode) == 0o600, p


def test_corrupt_cached_file_is_rebuilt(fresh_cache: Path) -> None:
    from faceprint.detect import yunet_runner

    path = yunet_runner.model_path(YUNET_DIR)
    good = path.read_bytes()
    for damage in (good[: len(good) // 3], b"\0" * len(good), good[:-1] + b"x"):
        path.write_bytes(damage)
        assert yunet_runner.model_path(YUNET_DIR) == path
        assert path.read_bytes() == good
    path.with_name(path.name + ".json").write_text("[1, 2]")  # a damaged record too
    assert yunet_runner.model_path(YUNET_DIR) == path and path.read_bytes() == good


def test_converter_version_is_part_of_the_key(fresh_cache: Path) -> None:
    source = store.locate(packs.YUNET, YUNET_DIR)
    one = cache.converted(source, cache.Converter("test-copy", 1, lambda p: b"one"), "ab" * 32)
    two = cache.converted(source, cache.Converter("test-copy", 2, lambda p: b"two"), "ab" * 32)
    assert one != two and (one.read_bytes(), two.read_bytes()) == (b"one", b"two")
    again = cache.converted(source, cache.Converter("test-copy", 1, lambda p: b"new"), "ab" * 32)
    assert again == one and one.read_bytes() == b"one"


_READ_ONLY_CHILD = """
import sys
from pathlib import Path
from faceprint.align.shape_predictor import ShapePredictor
from faceprint.detect import yunet_runner
prefilled = yunet_runner.model_path(sys.argv[1])
print("yunet", prefilled)
predictor = ShapePredictor.load()
print("parts", predictor.num_parts)
"""


def test_read_only_cache(tmp_path: Path) -> None:
    """A cache that cannot be written: conversions in it are used, missing ones are made
    for this process only (with a note), the memo is not written; nothing fails."""
    from faceprint.detect import yunet_runner

    folder = tmp_path / "ro-cache"
    env = {**os.environ, "FACEPRINT_CACHE_DIR": str(folder)}
    prefill = (
        "import sys; from faceprint.detect import yunet_runner as y; y.model_path(sys.argv[1])"
    )
    subprocess.run([sys.executable, "-c", prefill, str(YUNET_DIR)], env=env, check=True)
    prefilled = folder / "converted" / yunet_runner.YUNET_DYNAMIC.file_name(packs.YUNET.sha256)
    assert prefilled.is_file()
    before = {p: p.stat().st_mtime_ns for p in folder.rglob("*")}
    child = [sys.executable, "-c", _READ_ONLY_CHILD, str(YUNET_DIR)]
    if ROOT:  # root writes anywhere: mount the cache read-only in a private mount namespace
        if shutil.which("unshare") is None:
            pytest.skip("unshare is needed to make a read-only directory for root")
        d = str(folder)
        script = f'mount --bind "{d}" "{d}" && mount -o remount,ro,bind "{d}" && exec "$@"'
        child = ["unshare", "-m", "sh", "-c", script, "sh", *child]
    else:
        for p in [folder, *folder.rglob("*")]:
            p.chmod(p.stat().st_mode & ~0o222)
    try:
        done = subprocess.run(child, env=env, capture_output=True, text=True, timeout=180)
    finally:
        for p in [folder, *folder.rglob("*")]:
            p.chmod(p.stat().st_mode | 0o200)
    if ROOT and done.returncode != 0 and "Traceback" not in done.stderr:
        pytest.skip(f"cannot mount read-only here: {done.stderr.strip()}")
    assert done.returncode == 0, done.stderr
    lines = dict(line.split(" ", 1) for line in done.stdout.splitlines())
    assert lines == {"yunet": str(prefilled), "parts": "5"}
    assert "for this run only" in done.stderr and "Traceback" not in done.stderr
    assert {p: p.stat().st_mtime_ns for p in folder.rglob("*")} == before


# ------------------------------------------------------------------ detector fallback


def test_missing_yunet_falls_back_to_mmod_with_a_note(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from faceprint.detect import default_detector

    monkeypatch.delenv("FACEPRINT_DETECTOR", raising=False)
    monkeypatch.delenv("FACEPRINT_MODEL_DIR", raising=False)
    monkeypatch.setenv("FACEPRINT_OFFLINE", "1")
    monkeypatch.setenv("FACEPRINT_CACHE_DIR", str(tmp_path / "cache"))
    assert default_detector(tmp_path / "empty") == "mmod"
    assert "YuNet model" in caplog.text and "using the mmod detector" in caplog.text


def test_wrong_yunet_file_is_an_error_not_a_silent_switch(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import faceprint
    from faceprint.detect import default_detector

    monkeypatch.delenv("FACEPRINT_DETECTOR", raising=False)
    monkeypatch.setenv("FACEPRINT_CACHE_DIR", str(tmp_path / "cache"))
    bad = tmp_path / "models"
    bad.mkdir()
    damaged = bytearray((YUNET_DIR / packs.YUNET.name).read_bytes())
    damaged[len(damaged) // 2] ^= 0xFF  # one flipped byte: right name, wrong checksum
    (bad / packs.YUNET.name).write_bytes(bytes(damaged))
    for _ in range(2):  # and the decision is not cached as "mmod"
        with pytest.raises(ModelError, match="sha256") as info:
            default_detector(bad)
        assert not isinstance(info.value, ModelNotFoundError)
    with pytest.raises(ModelError, match=packs.YUNET.name):
        faceprint.detect_faces(faceprint.load_image(FACES / "img1.jpg"), model_dir=bad)


# ------------------------------------------------------------------ registry


def test_every_network_has_a_registered_runner() -> None:
    networks = (packs.MMOD_DETECTOR, packs.DLIB_RESNET, packs.YUNET)
    for spec in (*networks, packs.MINIFASNET_V2, packs.MINIFASNET_V1SE, packs.FER_MINI_XCEPTION):
        runner_class = registry.factory(spec.runner)
        for method in ("load", "prepare", "run"):
            assert callable(getattr(runner_class, method)), (spec.name, method)
    assert packs.SHAPE_PREDICTOR_5.runner == ""  # not a network


def test_registry_refuses_unknown_kinds() -> None:
    with pytest.raises(ModelError, match="no runner for model kind 'nope'"):
        registry.load(store.ModelFile("x.onnx", "0" * 64, "MIT", runner="nope"))
    with pytest.raises(ModelError, match="not a network"):
        registry.load(packs.SHAPE_PREDICTOR_5)
    with pytest.raises(ValueError, match="module:Class"):
        registry.register("thing", "no_colon")


def test_registry_keeps_one_runner_per_location(fresh_cache: Path, tmp_path: Path) -> None:
    first = registry.load(packs.YUNET, YUNET_DIR)
    assert registry.load(packs.YUNET, YUNET_DIR) is first
    with pytest.raises(ModelNotFoundError):
        registry.load(packs.YUNET, tmp_path)  # elsewhere: looked up again, and not there


# ------------------------------------------------------------------ providers


def test_providers_default_to_cpu(monkeypatch: pytest.MonkeyPatch) -> None:
    from faceprint.detect import yunet_runner

    monkeypatch.delenv("FACEPRINT_PROVIDERS", raising=False)
    assert runtime.providers() == ["CPUExecutionProvider"]
    monkeypatch.setenv("FACEPRINT_PROVIDERS", " cpu , CPUExecutionProvider")
    assert runtime.providers() == ["CPUExecutionProvider"]
    sess = runtime.session(yunet_runner.model_path(YUNET_DIR))
    assert sess.get_providers() == ["CPUExecutionProvider"]


def test_unknown_provider_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FACEPRINT_PROVIDERS", "cpu,warp-drive")
    with pytest.raises(ModelError, match="'warp-drive', which is not an ONNX Runtime"):
        runtime.providers()


def test_provider_the_machine_lacks_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    lacking = sorted(set(ort.get_all_providers()) - set(ort.get_available_providers()))
    if not lacking:
        pytest.skip("this onnxruntime has every provider it knows")
    name = "CUDAExecutionProvider" if "CUDAExecutionProvider" in lacking else lacking[0]
    monkeypatch.setenv("FACEPRINT_PROVIDERS", name.removesuffix("ExecutionProvider").lower())
    with pytest.raises(ModelError, match=f"{name}, which this machine's onnxruntime does not"):
        runtime.providers()
    from faceprint.detect import yunet_runner

    with pytest.raises(ModelError, match="CPUExecutionProvider"):  # says what is available
        runtime.session(yunet_runner.model_path(YUNET_DIR))
