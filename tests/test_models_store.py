"""Model store: several model directories, sha256 checks, offline behaviour."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from faceprint.errors import ModelError
from faceprint.models import packs, store

from .conftest import SHARED


def test_several_model_dirs_like_path(tmp_path: Path) -> None:
    dirs = os.pathsep.join([str(tmp_path), str(SHARED / "models" / "yunet")])
    found = store.locate(packs.YUNET, dirs)
    assert found == SHARED / "models" / "yunet" / packs.YUNET.name


def test_wrong_file_is_refused_and_left_alone(tmp_path: Path) -> None:
    bad = tmp_path / packs.YUNET.name
    bad.write_bytes(b"not yunet")
    with pytest.raises(ModelError, match="sha256"):
        store.locate(packs.YUNET, tmp_path)
    assert bad.read_bytes() == b"not yunet"


def test_offline_missing_file_says_where_it_looked(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FACEPRINT_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("FACEPRINT_OFFLINE", "1")
    with pytest.raises(ModelError, match="--model-dir"):
        store.locate(packs.YUNET, tmp_path)


def test_dlib_files_come_from_the_installed_package() -> None:
    path = store.locate(packs.DLIB_RESNET)
    assert "face_recognition_models" in str(path)
