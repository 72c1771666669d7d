"""The YuNet network (opencv_zoo ``face_detection_yunet_2023mar``, MIT) and its runner.

The published file declares a fixed input ``1 x 3 x 640 x 640``, but the network is fully
convolutional and its output ``Reshape`` nodes use ``[1, -1, C]``. On first use a converted
copy is cached (:mod:`faceprint.models.cache`) whose input is ``N x 3 x H x W`` (H, W
multiples of 32) and whose reshapes keep the batch axis (``[0, -1, C]``), so any input size
and batches of several images run in one call.

Input: BGR, float32, raw 0..255 (no mean, no scaling), NCHW, padded with zeros on the
bottom/right to a multiple of 32 -- exactly what ``cv2.FaceDetectorYN`` feeds it.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import onnx

from faceprint import runtime
from faceprint.models import cache, store
from faceprint.models.packs import YUNET
from faceprint.models.runner import FloatArray, OnnxRunner
from faceprint.models.store import ModelFile
from faceprint.types import Image

STRIDES = (8, 16, 32)
DIVISOR = 32
#: Output heads, each once per stride: the order :meth:`YunetRunner.run` returns them in.
OUTPUTS = ("cls", "obj", "bbox", "kps")


def _convert(source: Path) -> bytes:
    """Make the fixed 1x3x640x640 graph accept N x 3 x H x W and keep N in its outputs."""
    model = onnx.load(str(source))
    graph = model.graph
    dims = graph.input[0].type.tensor_type.shape.dim
    for dim, name in zip(dims, ("batch", None, "height", "width"), strict=True):
        if name is not None:
            dim.ClearField("dim_value")
            dim.dim_param = name
    for out in graph.output:
        out_dims = out.type.tensor_type.shape.dim
        for dim, name in zip(out_dims, ("batch", "cells", None), strict=True):
            if name is not None:
                dim.ClearField("dim_value")
                dim.dim_param = name
    del graph.value_info[:]
    # The reshape targets are [1, -1, C] constants; 0 copies the (batch) axis of the input.
    shape_names = {n.input[1] for n in graph.node if n.op_type == "Reshape"}
    for init in graph.initializer:
        if init.name in shape_names:
            arr = onnx.numpy_helper.to_array(init).copy()
            arr[0] = 0
            init.CopyFrom(onnx.numpy_helper.from_array(arr, init.name))
    for node in graph.node:
        if node.op_type == "Constant" and node.output[0] in shape_names:
            arr = onnx.numpy_helper.to_array(node.attribute[0].t).copy()
            arr[0] = 0
            node.attribute[0].t.CopyFrom(onnx.numpy_helper.from_array(arr))
    onnx.checker.check_model(model)
    return model.SerializeToString()


#: The pinned YuNet graph -> its dynamic-size copy. Bump the version when _convert changes.
YUNET_DYNAMIC = cache.Converter("yunet-dynamic", 1, _convert)


def model_path(model_dir: Path | str | None = None) -> Path:
    """Path of the dynamic-size YuNet graph, converted once from the pinned file and cached."""
    return cache.converted(store.locate(YUNET, model_dir), YUNET_DYNAMIC, YUNET.sha256)


def pad_up(n: int) -> int:
    """n rounded up to a multiple of 32 (the network's input size)."""
    return ((n - 1) // DIVISOR + 1) * DIVISOR


class YunetRunner(OnnxRunner[Sequence[Image]]):
    """RGB images (already resized) -> YuNet's 12 raw output heads."""

    @classmethod
    def onnx_file(cls, spec: ModelFile, model_dir: Path | str | None) -> Path:
        return cache.converted(store.locate(spec, model_dir), YUNET_DYNAMIC, spec.sha256)

    def prepare(self, inputs: Sequence[Image]) -> FloatArray:
        """RGB uint8 images -> zero-padded BGR float32 NCHW batch (sizes rounded up to 32)."""
        ph = pad_up(max(im.shape[0] for im in inputs))
        pw = pad_up(max(im.shape[1] for im in inputs))
        blob = np.zeros((len(inputs), 3, ph, pw), dtype=np.float32)
        for i, im in enumerate(inputs):
            h, w = im.shape[:2]
            blob[i, :, :h, :w] = im[:, :, ::-1].transpose(2, 0, 1)
        return blob

    def run(self, tensor: FloatArray) -> list[FloatArray]:
        """The outputs ordered head by head, stride by stride: cls_8, cls_16, cls_32,
        obj_8, ..., kps_32 (each N x cells x C, one row per grid cell, row-major)."""
        outputs = super().run(tensor)
        names = [o.name for o in runtime.session(self.path).get_outputs()]
        by_name = dict(zip(names, outputs, strict=True))
        return [by_name[f"{head}_{s}"] for head in OUTPUTS for s in STRIDES]
