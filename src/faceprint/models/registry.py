"""Which runner runs which network, in the spirit of insightface's ``model_zoo``.

A :class:`~faceprint.models.store.ModelFile` names its kind in ``runner``; :func:`load`
dispatches on it to the runner class registered for that kind and keeps one runner per
model and search location for the process. Runner classes are imported only when first
asked for, so a component nobody uses (liveness, expression) costs nothing.
"""

from __future__ import annotations

import importlib
import os
import threading
from collections import OrderedDict
from pathlib import Path
from typing import Any, Protocol

from faceprint.errors import ModelError
from faceprint.models.runner import Runner
from faceprint.models.store import ModelFile


class RunnerFactory(Protocol):
    def load(self, spec: ModelFile, model_dir: Path | str | None = None) -> Runner[Any]: ...


#: kind -> "module:Class" of its runner (a class with ``load(spec, model_dir)``).
RUNNERS: dict[str, str] = {
    "dlib_resnet": "faceprint.embed.dlib_resnet:ResnetRunner",
    "dlib_mmod": "faceprint.models.mmod_runner:MmodRunner",
    "yunet": "faceprint.detect.yunet_runner:YunetRunner",
    "minifasnet": "faceprint.liveness.minifasnet:MiniFASNetRunner",
    "fer_mini_xception": "faceprint.attributes.expression:ExpressionRunner",
}
#: Runners kept at once (one per model and search location).
MAX_RUNNERS = 32

#: The settings that change where a model file is found (part of a runner's key).
_LOCATION = ("FACEPRINT_MODEL_DIR", "FACEPRINT_CACHE_DIR", "FACEPRINT_OFFLINE")

_lock = threading.RLock()
_runners: OrderedDict[tuple[object, ...], Runner[Any]] = OrderedDict()


def register(kind: str, target: str) -> None:
    """Register (or replace) the runner of a kind, as ``"module:Class"``."""
    module, _, name = target.partition(":")
    if not module or not name:
        raise ValueError(f"runner target {target!r} is not 'module:Class'")
    with _lock:
        RUNNERS[kind] = target
        for key in [k for k in _runners if k[0] == kind]:
            del _runners[key]


def factory(kind: str) -> RunnerFactory:
    """The runner class registered for a kind."""
    target = RUNNERS.get(kind)
    if target is None:
        known = ", ".join(sorted(RUNNERS)) or "none"
        raise ModelError(f"no runner for model kind {kind!r} (known kinds: {known})")
    module, _, name = target.partition(":")
    found: RunnerFactory = getattr(importlib.import_module(module), name)
    return found


def load(spec: ModelFile, model_dir: Path | str | None = None) -> Runner[Any]:
    """The runner of a model file, made once per model and search location."""
    if not spec.runner:
        raise ModelError(f"{spec.name} is not a network faceprint runs (no runner kind)")
    key = (spec.runner, spec, str(model_dir or ""), *(os.environ.get(v) for v in _LOCATION))
    with _lock:
        runner = _runners.get(key)
        if runner is not None:
            _runners.move_to_end(key)
            return runner
    made = factory(spec.runner).load(spec, model_dir)
    with _lock:
        runner = _runners.setdefault(key, made)
        _runners.move_to_end(key)
        while len(_runners) > MAX_RUNNERS:
            _runners.popitem(last=False)
    return runner


def clear() -> None:
    """Forget every runner (their sessions stay in :mod:`faceprint.runtime`)."""
    with _lock:
        _runners.clear()
