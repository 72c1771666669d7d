"""Shared test setup: real photos and models from ../shared, a fresh model cache per run."""

from __future__ import annotations

import csv
import json
import os
import tempfile
from collections import defaultdict
from pathlib import Path
from typing import Any

import pytest

#: The live-service fixture (``service``, on each engine) for every service test module.
pytest_plugins = ["tests.servicetools"]

SHARED = Path(__file__).resolve().parents[2] / "shared"
FACES = SHARED / "faces"
FIXTURES = SHARED / "fixtures"

# A fresh cache for the whole run: the dlib models are converted to ONNX from the
# installed package once per run, and YuNet is "pre-filled" from ../shared.
_cache = Path(tempfile.mkdtemp(prefix="faceprint-test-cache-"))
os.environ["FACEPRINT_CACHE_DIR"] = str(_cache)
os.environ["FACEPRINT_OFFLINE"] = "1"
(_cache / "models").mkdir(parents=True, exist_ok=True)
_yunet = SHARED / "models" / "yunet" / "face_detection_yunet_2023mar.onnx"
if _yunet.exists() and not (_cache / "models" / _yunet.name).exists():
    (_cache / "models" / _yunet.name).write_bytes(_yunet.read_bytes())


def identity_groups() -> list[list[str]]:
    """People in ../shared/faces, from master.csv's "Yes" pairs (connected components)."""
    parent: dict[str, str] = {}

    def find(x: str) -> str:
        parent.setdefault(x, x)
        while parent[x] != x:
            x = parent[x]
        return x

    with (FACES / "master.csv").open() as fh:
        for row in csv.DictReader(fh):
            a, b = find(row["file_x"]), find(row["file_y"])
            if row["Decision"] == "Yes":
                parent[a] = b
    groups: dict[str, list[str]] = defaultdict(list)
    for name in list(parent):
        groups[find(name)].append(name)
    return sorted(
        (sorted(g, key=lambda s: int(s[3:-4])) for g in groups.values() if len(g) > 1),
        key=len,
        reverse=True,
    )


@pytest.fixture(scope="session")
def reference() -> dict[str, Any]:
    data: dict[str, Any] = json.loads((FIXTURES / "dlib_reference.json").read_text())
    return data["images"]


@pytest.fixture(scope="session")
def groups() -> list[list[str]]:
    return identity_groups()
