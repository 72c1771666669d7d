"""The one inference engine: a thread-safe wrapper around an ONNX Runtime session.

ONNX Runtime's ``InferenceSession.run`` may be called from several threads at
once, so one session per model per process is shared by every caller.

Execution providers come from ``FACEPRINT_PROVIDERS``: a comma-separated list in order of
preference, full names (``CUDAExecutionProvider``) or short ones (``cuda``, ``cpu``),
default CPU only. Each name is checked against what the installed onnxruntime offers
(``onnxruntime.get_available_providers()``), and CPU is always appended as the last
resort, so a machine with a GPU and ``onnxruntime-gpu`` runs on it with
``FACEPRINT_PROVIDERS=cuda`` and no code change.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

import numpy as np
import numpy.typing as npt
import onnxruntime as ort

from faceprint.errors import ModelError

CPU = "CPUExecutionProvider"

_lock = threading.Lock()
_sessions: dict[str, ort.InferenceSession] = {}


def _threads() -> int:
    value = os.environ.get("FACEPRINT_THREADS", "")
    if value.isdigit() and int(value) > 0:
        return int(value)
    return max(1, min(os.cpu_count() or 1, 8))


def _full_name(name: str, known: list[str]) -> str | None:
    """``cuda`` -> ``CUDAExecutionProvider`` (case-insensitive); None if unknown."""
    for candidate in known:
        short = candidate.removesuffix("ExecutionProvider")
        if name.lower() in (candidate.lower(), short.lower()):
            return candidate
    return None


def providers() -> list[str]:
    """The execution providers from ``FACEPRINT_PROVIDERS`` (default CPU), validated.

    ModelError names any provider onnxruntime does not know at all, and any it knows but
    this installation lacks, with the ones that are available.
    """
    raw = os.environ.get("FACEPRINT_PROVIDERS", "")
    names = [n.strip() for n in raw.split(",") if n.strip()] or [CPU]
    known = list(ort.get_all_providers())
    available = list(ort.get_available_providers())
    chosen: list[str] = []
    for name in names:
        full = _full_name(name, known)
        if full is None:
            raise ModelError(
                f"FACEPRINT_PROVIDERS names {name!r}, which is not an ONNX Runtime execution "
                f"provider; this installation offers: {', '.join(available)}"
            )
        if full not in available:
            raise ModelError(
                f"FACEPRINT_PROVIDERS asks for {full}, which this machine's onnxruntime does "
                f"not have (it offers: {', '.join(available)}); install the onnxruntime "
                f"build for that device (e.g. onnxruntime-gpu for CUDA) or unset "
                f"FACEPRINT_PROVIDERS to run on the CPU"
            )
        if full not in chosen:
            chosen.append(full)
    if CPU not in chosen:
        chosen.append(CPU)
    return chosen


def session(path: Path | str) -> ort.InferenceSession:
    """Return the process-wide session for an ONNX file, creating it once per provider list."""
    resolved = str(Path(path).resolve())
    chosen = providers()
    key = resolved if chosen == [CPU] else f"{resolved}|{','.join(chosen)}"
    with _lock:
        sess = _sessions.get(key)
        if sess is None:
            opts = ort.SessionOptions()
            opts.intra_op_num_threads = _threads()
            opts.inter_op_num_threads = 1
            opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
            try:
                sess = ort.InferenceSession(resolved, opts, providers=chosen)
            except Exception as exc:  # onnxruntime raises several unrelated types
                raise ModelError(f"cannot load ONNX model {resolved}: {exc}") from exc
            _sessions[key] = sess
        return sess


def run(path: Path | str, inputs: npt.NDArray[np.float32]) -> list[npt.NDArray[np.float32]]:
    """Run a single-input model and return all of its outputs."""
    sess = session(path)
    name = sess.get_inputs()[0].name
    outputs: list[npt.NDArray[np.float32]] = sess.run(None, {name: inputs})
    return outputs
