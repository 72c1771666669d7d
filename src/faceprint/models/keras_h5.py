"""Turn a small Keras 2 functional model saved as ``.hdf5`` into an ONNX graph, without Keras.

The layer graph comes from the file's ``model_config`` JSON attribute, the weights from
``model_weights/<layer>/`` in the order of its ``weight_names`` attribute (read with h5py).
Supported layers are the ones of mini-Xception: InputLayer, Conv2D, SeparableConv2D
(depthwise ``Conv`` with ``group=C`` then a 1x1 ``Conv``), BatchNormalization, Activation
(relu, softmax, linear), MaxPooling2D, Add, GlobalAveragePooling2D. Keras is channels-last;
the ONNX graph takes NCHW input, kernels are transposed once here. Keras ``padding='same'``
puts the odd pixel at the end, which is ONNX ``auto_pad=SAME_UPPER``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import onnx
from onnx import TensorProto, helper, numpy_helper

from faceprint.errors import ModelError
from faceprint.models import cache, store
from faceprint.models.store import ModelFile

OPSET = 17

Weights = dict[str, npt.NDArray[np.float32]]


def read(path: Path) -> tuple[list[dict[str, Any]], dict[str, Weights]]:
    """The layer list of ``model_config`` and each layer's weights by short name."""
    import h5py

    try:
        with h5py.File(path, "r") as fh:
            raw = fh.attrs["model_config"]
            config = json.loads(raw.decode() if isinstance(raw, bytes) else raw)
            group = fh.get("model_weights", fh)
            weights: dict[str, Weights] = {}
            for name in group:
                names = [
                    n.decode() if isinstance(n, bytes) else n
                    for n in group[name].attrs.get("weight_names", [])
                ]
                weights[name] = {
                    n.split("/")[-1].split(":")[0]: np.asarray(group[name][n], dtype=np.float32)
                    for n in names
                }
    except (OSError, KeyError, ValueError) as exc:
        raise ModelError(f"{path} is not a readable Keras .hdf5 model: {exc}") from exc
    if config.get("class_name") not in ("Model", "Functional"):
        raise ModelError(f"{path}: only Keras functional models are supported")
    return list(config["config"]["layers"]), weights


def _inputs(layer: dict[str, Any]) -> list[str]:
    nodes = layer.get("inbound_nodes") or []
    return [str(item[0]) for item in nodes[0]] if nodes else []


def _pads(cfg: dict[str, Any]) -> dict[str, Any]:
    if cfg.get("padding", "valid") == "same":
        return {"auto_pad": "SAME_UPPER"}
    return {"pads": [0, 0, 0, 0]}


def to_onnx(path: Path) -> onnx.ModelProto:
    """Convert the Keras model at ``path``; the graph input is ``input`` (N x C x H x W)."""
    layers, weights = read(path)
    nodes: list[onnx.NodeProto] = []
    inits: list[onnx.TensorProto] = []
    graph_input: onnx.ValueInfoProto | None = None
    last = ""

    def const(name: str, value: npt.NDArray[np.float32]) -> str:
        inits.append(numpy_helper.from_array(np.ascontiguousarray(value, np.float32), name))
        return name

    def activation(kind: str, src: str, out: str) -> None:
        if kind == "relu":
            nodes.append(helper.make_node("Relu", [src], [out]))
        elif kind == "softmax":
            nodes.append(helper.make_node("Softmax", [src], [out], axis=-1))
        elif kind == "linear":
            nodes.append(helper.make_node("Identity", [src], [out]))
        else:
            raise ModelError(f"{path}: unsupported activation {kind!r}")

    for layer in layers:
        kind, name, cfg = layer["class_name"], layer["config"]["name"], layer["config"]
        src = _inputs(layer)
        w = weights.get(name, {})
        out = name
        if kind == "InputLayer":
            _, h, wd, c = cfg["batch_input_shape"]
            graph_input = helper.make_tensor_value_info(
                "input", TensorProto.FLOAT, ["N", int(c), int(h), int(wd)]
            )
            nodes.append(helper.make_node("Identity", ["input"], [out]))
        elif kind in ("Conv2D", "SeparableConv2D"):
            common = {"strides": list(cfg["strides"]), **_pads(cfg)}
            if list(cfg.get("dilation_rate", [1, 1])) != [1, 1]:
                raise ModelError(f"{path}: dilated convolutions are not supported")
            x = src[0]
            if kind == "SeparableConv2D":
                dw = w["depthwise_kernel"]  # kh, kw, C, multiplier
                kh, kw, ch, mult = dw.shape
                kernel = dw.transpose(2, 3, 0, 1).reshape(ch * mult, 1, kh, kw)
                nodes.append(
                    helper.make_node(
                        "Conv",
                        [x, const(f"{name}.dw", kernel)],
                        [f"{name}.dw_out"],
                        group=int(ch),
                        kernel_shape=[int(kh), int(kw)],
                        **common,
                    )
                )
                x = f"{name}.dw_out"
                common = {"strides": [1, 1], "pads": [0, 0, 0, 0]}
                kernel = w["pointwise_kernel"]
            else:
                kernel = w["kernel"]
            conv_in = [x, const(f"{name}.w", kernel.transpose(3, 2, 0, 1))]
            if cfg.get("use_bias", True):
                conv_in.append(const(f"{name}.b", w["bias"]))
            conv_out = f"{name}.conv" if cfg.get("activation", "linear") != "linear" else out
            nodes.append(
                helper.make_node(
                    "Conv", conv_in, [conv_out], kernel_shape=list(kernel.shape[:2]), **common
                )
            )
            if conv_out != out:
                activation(cfg["activation"], conv_out, out)
        elif kind == "BatchNormalization":
            mean, var = w["moving_mean"], w["moving_variance"]
            gamma = w.get("gamma", np.ones_like(mean))
            beta = w.get("beta", np.zeros_like(mean))
            params = [
                const(f"{name}.{k}", v)
                for k, v in zip("sbmv", (gamma, beta, mean, var), strict=True)
            ]
            nodes.append(
                helper.make_node(
                    "BatchNormalization",
                    [src[0], *params],
                    [out],
                    epsilon=float(cfg.get("epsilon", 1e-3)),
                )
            )
        elif kind == "Activation":
            activation(cfg["activation"], src[0], out)
        elif kind == "MaxPooling2D":
            nodes.append(
                helper.make_node(
                    "MaxPool",
                    [src[0]],
                    [out],
                    kernel_shape=list(cfg["pool_size"]),
                    strides=list(cfg["strides"]),
                    **_pads(cfg),
                )
            )
        elif kind == "Add":
            nodes.append(helper.make_node("Sum", src, [out]))
        elif kind == "GlobalAveragePooling2D":
            nodes.append(helper.make_node("GlobalAveragePool", [src[0]], [f"{name}.pool"]))
            nodes.append(helper.make_node("Flatten", [f"{name}.pool"], [out], axis=1))
        else:
            raise ModelError(f"{path}: Keras layer {kind} ({name}) is not supported")
        last = out
    if graph_input is None:
        raise ModelError(f"{path}: the model has no InputLayer")
    nodes.append(helper.make_node("Identity", [last], ["output"]))
    output = helper.make_tensor_value_info("output", TensorProto.FLOAT, ["N", None])
    graph = helper.make_graph(nodes, "keras_h5", [graph_input], [output], inits)
    model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="faceprint"
    )
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


def _convert(source: Path) -> bytes:
    return to_onnx(source).SerializeToString()


#: Keras .hdf5 -> ONNX. Bump the version when the conversion changes its output.
KERAS_TO_ONNX = cache.Converter("keras-h5-onnx", 1, _convert)


def converted_onnx(spec: ModelFile, model_dir: Path | str | None = None) -> Path:
    """The ONNX file converted from a Keras model file, converting it once into the cache."""
    return cache.converted(store.locate(spec, model_dir), KERAS_TO_ONNX, spec.sha256)
