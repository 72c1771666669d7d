"""Build an ONNX graph (with the ``onnx`` helper API) equivalent to a parsed dlib network.

Input ``input``: float32 NCHW raw RGB 0..255; the graph does dlib's ``(pixel - mean) / 256``.
dlib's ``add_prev`` adds tensors of different sizes by zero padding the smaller one at the
end; that becomes ``Pad`` + ``Add`` (with the pads computed in the graph when the spatial
size is dynamic).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt
import onnx
from onnx import TensorProto, helper, numpy_helper

from faceprint.errors import ModelError
from faceprint.models.dlib_layers import DnnModel, FloatArray, Layer

OPSET = 17


class _Graph:
    def __init__(self) -> None:
        self.nodes: list[onnx.NodeProto] = []
        self.inits: list[onnx.TensorProto] = []
        self.count = 0

    def name(self, hint: str) -> str:
        self.count += 1
        return f"{hint}_{self.count}"

    def const(self, hint: str, value: npt.NDArray[Any]) -> str:
        n = self.name(hint)
        self.inits.append(numpy_helper.from_array(np.ascontiguousarray(value), n))
        return n

    def op(self, op_type: str, inputs: list[str], hint: str | None = None, **attrs: Any) -> str:
        out = self.name(hint or op_type.lower())
        self.nodes.append(helper.make_node(op_type, inputs, [out], name=out, **attrs))
        return out


def _affine_params(layer: Layer) -> tuple[FloatArray, FloatArray] | None:
    """(gamma, beta) of an affine or inference-mode bn layer, or None if disabled."""
    if layer.kind == "affine":
        if layer.params["is_disabled"]:
            return None
        return layer.tensors["gamma"], layer.tensors["beta"]
    t = layer.tensors
    eps = float(layer.params["eps"])
    g = t["gamma"].astype(np.float32) / np.sqrt(t["running_variances"] + np.float32(eps))
    b = t["beta"] - g * t["running_means"]
    return g.astype(np.float32), b.astype(np.float32)


def to_onnx(model: DnnModel) -> onnx.ModelProto:
    """Build an ONNX graph equivalent to the dlib network's forward pass.

    Input ``input``: float32 NCHW raw RGB values 0..255 (the graph does dlib's
    ``(pixel - mean) / 256``).  Output ``output``: (N, 128) for the metric ResNet,
    (N, windows, H', W') score map for an MMOD detector.  Batch is dynamic; H and W
    are dynamic unless the input layer fixes them.
    """
    g = _Graph()
    inp = model.input
    fixed_hw = (int(inp["nr"]), int(inp["nc"])) if inp["type"] == "input_rgb_image_sized" else None
    mean = np.array(inp["mean_rgb"], dtype=np.float32).reshape(1, 3, 1, 1)
    cur = g.op("Sub", ["input", g.const("mean_rgb", mean)], "centered")
    cur = g.op("Mul", [cur, g.const("inv256", np.array(1 / 256, dtype=np.float32))], "scaled")
    # static shape (C, H, W) where known; H/W None when dynamic; rank 2 after fc
    shape: tuple[int, int | None, int | None] = (3, *(fixed_hw or (None, None)))
    flat = False
    tags: dict[int, tuple[str, tuple[int, int | None, int | None]]] = {}

    def out_size(n: int | None, k: int, s: int, p: int) -> int | None:
        return None if n is None else 1 + (n + 2 * p - k) // s

    for layer in model.layers:
        kind, p = layer.kind, layer.params
        if flat and kind not in ("fc", "relu", "affine", "bn"):
            raise ModelError(f"layer {layer.version} after a fully connected layer is unsupported")
        if kind == "con":
            w = layer.tensors["weight"]
            nf, k, nr, nc = w.shape
            if k != shape[0]:
                raise ModelError(f"{layer.version}: expects {k} input channels, got {shape[0]}")
            ins = [cur, g.const("conv_w", w)]
            if "bias" in layer.tensors:
                ins.append(g.const("conv_b", layer.tensors["bias"]))
            py, px = int(p["padding_y"]), int(p["padding_x"])
            sy, sx = int(p["stride_y"]), int(p["stride_x"])
            cur = g.op(
                "Conv", ins, "conv", kernel_shape=[nr, nc], strides=[sy, sx], pads=[py, px, py, px]
            )
            shape = (nf, out_size(shape[1], nr, sy, py), out_size(shape[2], nc, sx, px))
        elif kind in ("affine", "bn"):
            gb = _affine_params(layer)
            if gb is None:
                continue
            gamma, beta = gb
            if flat:
                gamma, beta = gamma.reshape(1, -1), beta.reshape(1, -1)
            elif p["mode"] == 0:  # CONV_MODE: one scale/shift per channel
                gamma, beta = gamma.reshape(1, -1, 1, 1), beta.reshape(1, -1, 1, 1)
            else:  # FC_MODE on a 4-d tensor: one per element
                gamma = gamma.reshape(1, *gamma.shape[1:])
                beta = beta.reshape(1, *beta.shape[1:])
            cur = g.op("Mul", [cur, g.const("gamma", gamma)], "affine_mul")
            cur = g.op("Add", [cur, g.const("beta", beta)], "affine_add")
        elif kind == "relu":
            cur = g.op("Relu", [cur], "relu")
        elif kind in ("max_pool", "avg_pool"):
            nr, nc = int(p["nr"]), int(p["nc"])
            if nr == 0 and nc == 0:  # *_pool_everything
                cur = g.op(
                    "GlobalMaxPool" if kind == "max_pool" else "GlobalAveragePool", [cur], kind
                )
                shape = (shape[0], 1, 1)
                continue
            if nr == 0 or nc == 0:
                raise ModelError(
                    f"{layer.version}: pooling over a whole single axis is unsupported"
                )
            sy, sx = int(p["stride_y"]), int(p["stride_x"])
            py, px = int(p["padding_y"]), int(p["padding_x"])
            attrs: dict[str, Any] = {
                "kernel_shape": [nr, nc],
                "strides": [sy, sx],
                "pads": [py, px, py, px],
            }
            if kind == "avg_pool":
                attrs["count_include_pad"] = 0
            cur = g.op("MaxPool" if kind == "max_pool" else "AveragePool", [cur], kind, **attrs)
            shape = (shape[0], out_size(shape[1], nr, sy, py), out_size(shape[2], nc, sx, px))
        elif kind == "fc":
            w = layer.tensors["weight"]
            if not flat:
                cur = g.op("Flatten", [cur], "flatten", axis=1)
                flat = True
            cur = g.op("MatMul", [cur, g.const("fc_w", w)], "fc")
            if "bias" in layer.tensors:
                cur = g.op("Add", [cur, g.const("fc_b", layer.tensors["bias"])], "fc_bias")
            shape = (int(p["num_outputs"]), 1, 1)
        elif kind == "tag":
            tags[int(p["id"])] = (cur, shape)
        elif kind == "skip":
            cur, shape = tags[int(p["tag"])]
        elif kind == "add_prev":
            other, oshape = tags[int(p["tag"])]
            cur, shape = _add_zero_padded(g, cur, shape, other, oshape)
        else:  # pragma: no cover - parse_dnn only produces the kinds above
            raise ModelError(f"unsupported layer kind {kind}")

    g.nodes.append(helper.make_node("Identity", [cur], ["output"], name="output"))
    in_dims: list[int | str] = ["N", 3, *(fixed_hw or ("H", "W"))]
    if flat:
        out_dims: list[int | str | None] = ["N", shape[0]]
    else:
        out_dims = [
            "N",
            shape[0],
            shape[1] if shape[1] is not None else "Ho",
            shape[2] if shape[2] is not None else "Wo",
        ]
    graph = helper.make_graph(
        g.nodes,
        "dlib_" + str(model.loss.get("type", "dnn")).strip("_"),
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, in_dims)],
        [helper.make_tensor_value_info("output", TensorProto.FLOAT, out_dims)],
        initializer=g.inits,
    )
    proto = helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid("", OPSET)],
        producer_name="faceprint.models.dlib_dnn",
    )
    proto.ir_version = 8
    try:
        onnx.checker.check_model(proto)
    except onnx.checker.ValidationError as exc:  # pragma: no cover - a converter bug
        raise ModelError(f"converted ONNX graph failed validation: {exc}") from exc
    return proto


def _add_zero_padded(
    g: _Graph,
    a: str,
    ashape: tuple[int, int | None, int | None],
    b: str,
    bshape: tuple[int, int | None, int | None],
) -> tuple[str, tuple[int, int | None, int | None]]:
    """dlib's add_prev: output has the max of both dims, the smaller zero padded at the end."""
    if ashape == bshape and ashape[1] is not None:
        return g.op("Add", [a, b], "add_prev"), ashape
    known = all(d is not None for d in (*ashape, *bshape))
    out: tuple[int, int | None, int | None] = (
        max(ashape[0], bshape[0]),
        max(ashape[1], bshape[1]) if known else None,  # type: ignore[type-var]
        max(ashape[2], bshape[2]) if known else None,  # type: ignore[type-var]
    )
    padded = []
    for name, shp in ((a, ashape), (b, bshape)):
        if known:
            extra = [out[0] - shp[0], out[1] - shp[1], out[2] - shp[2]]  # type: ignore[operator]
            if any(extra):
                pads = np.array([0, 0, 0, 0, 0, *extra], dtype=np.int64)
                name = g.op("Pad", [name, g.const("pads", pads)], "pad")
        else:
            sa = g.op("Shape", [a], "shape")
            sb = g.op("Shape", [b], "shape")
            mx = g.op("Max", [sa, sb], "maxshape")
            own = sa if name == a else sb
            extra_t = g.op("Sub", [mx, own], "extra")
            pads_t = g.op(
                "Concat", [g.const("zeros4", np.zeros(4, dtype=np.int64)), extra_t], "pads", axis=0
            )
            name = g.op("Pad", [name, pads_t], "pad")
        padded.append(name)
    return g.op("Add", padded, "add_prev"), out
