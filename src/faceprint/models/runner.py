"""The shape every network of faceprint has: a :class:`Runner` turns a component's input
(aligned chips, a pyramid canvas, image crops) into the network's tensor with
:meth:`~Runner.prepare`, and runs the tensor with :meth:`~Runner.run`.

:class:`OnnxRunner` is the common base: it finds the model file (checking its sha256),
converts it when the source is not ONNX (override :meth:`OnnxRunner.onnx_file`) and runs
it with :mod:`faceprint.runtime`. Runners are made by :func:`faceprint.models.registry.load`
from a :class:`~faceprint.models.store.ModelFile`, dispatched on its ``runner`` kind.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Generic, Protocol, Self, TypeVar

import numpy as np
import numpy.typing as npt

from faceprint import runtime
from faceprint.models import store
from faceprint.models.store import ModelFile

FloatArray = npt.NDArray[np.float32]
InputT = TypeVar("InputT", contravariant=True)
OwnInputT = TypeVar("OwnInputT")


class Runner(Protocol[InputT]):
    """One network: its input -> its tensor -> its outputs."""

    spec: ModelFile

    def prepare(self, inputs: InputT) -> FloatArray:
        """The network tensor (float32, NCHW) for the component's input."""
        ...

    def run(self, tensor: FloatArray) -> list[FloatArray]:
        """Every output of the network for a tensor made by :meth:`prepare`."""
        ...


class OnnxRunner(Generic[OwnInputT]):
    """Base of the runners: an ONNX file run on the process-wide session."""

    def __init__(self, spec: ModelFile, path: Path) -> None:
        self.spec = spec
        self.path = path

    @classmethod
    def onnx_file(cls, spec: ModelFile, model_dir: Path | str | None) -> Path:
        """The ONNX file to run: the model file itself, unless a subclass converts it."""
        return store.locate(spec, model_dir)

    @classmethod
    def load(cls, spec: ModelFile, model_dir: Path | str | None = None) -> Self:
        return cls(spec, cls.onnx_file(spec, model_dir))

    def prepare(self, inputs: OwnInputT) -> FloatArray:
        raise NotImplementedError(f"{type(self).__name__} does not define prepare()")

    def run(self, tensor: FloatArray) -> list[FloatArray]:
        return runtime.run(self.path, tensor)

    def __call__(self, inputs: OwnInputT) -> list[FloatArray]:
        return self.run(self.prepare(inputs))

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.spec.name!r}, {str(self.path)!r})"


def as_batch(tensor: Any, channels: int) -> FloatArray:
    """A contiguous float32 (N, channels, H, W) array from a (C, H, W) or (N, C, H, W) one."""
    arr = np.asarray(tensor, dtype=np.float32)
    if arr.ndim == 3:
        arr = arr[None]
    if arr.ndim != 4 or arr.shape[1] != channels:
        raise ValueError(f"expected a (N, {channels}, H, W) tensor, got shape {arr.shape}")
    return np.ascontiguousarray(arr)
