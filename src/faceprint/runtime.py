"""The one inference engine: a thread-safe wrapper around an ONNX Runtime session.

ONNX Runtime's ``InferenceSession.run`` may be called from several threads at
once, so one session per model per process is shared by every caller.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

import numpy as np
import numpy.typing as npt
import onnxruntime as ort

from faceprint.errors import ModelError

_lock = threading.Lock()
_sessions: dict[str, ort.InferenceSession] = {}


def _threads() -> int:
    value = os.environ.get("FACEPRINT_THREADS", "")
    if value.isdigit() and int(value) > 0:
        return int(value)
    return max(1, min(os.cpu_count() or 1, 8))


def session(path: Path | str) -> ort.InferenceSession:
    """Return the process-wide session for an ONNX file, creating it once."""
    key = str(Path(path).resolve())
    with _lock:
        sess = _sessions.get(key)
        if sess is None:
            opts = ort.SessionOptions()
            opts.intra_op_num_threads = _threads()
            opts.inter_op_num_threads = 1
            opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
            try:
                sess = ort.InferenceSession(key, opts, providers=["CPUExecutionProvider"])
            except Exception as exc:  # onnxruntime raises several unrelated types
                raise ModelError(f"cannot load ONNX model {key}: {exc}") from exc
            _sessions[key] = sess
        return sess


def run(path: Path | str, inputs: npt.NDArray[np.float32]) -> list[npt.NDArray[np.float32]]:
    """Run a single-input model and return all of its outputs."""
    sess = session(path)
    name = sess.get_inputs()[0].name
    outputs: list[npt.NDArray[np.float32]] = sess.run(None, {name: inputs})
    return outputs
