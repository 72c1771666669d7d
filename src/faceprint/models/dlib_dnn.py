"""Read dlib DNN model files (``.dat``) and turn them into ONNX graphs, without dlib.

dlib serialises a network as nested C++ objects.  This module parses that byte
stream into a plain :class:`DnnModel` (input layer options, loss options, and the
computational layers in forward order with numpy parameters), converts it into an
ONNX graph with :func:`to_onnx`, and caches the conversion with
:func:`converted_onnx`.

Format notes (learned from reading dlib's ``serialize.h``, ``dnn/core.h``,
``dnn/layers.h``, ``dnn/input.h``, ``dnn/loss.h`` and ``dnn/tensor.h``):

* integers: one control byte (low nibble = number of payload bytes, bit 7 = sign)
  followed by the magnitude, little endian;
* ``bool``: one ASCII byte, ``'0'`` or ``'1'``; ``uint8_t``: one raw byte;
* ``float``/``double``: a ``mantissa`` integer then an ``exponent`` integer, value
  ``mantissa * 2**exponent`` (exponents 32000/32001/32002 mean +inf/-inf/nan);
* strings and ``std::vector``: an unsigned length, then the bytes / the items;
* tensors: version int (2: raw little-endian float32, 1: dlib floats), then the
  four dims ``num_samples, k, nr, nc``; ``alias_tensor``: version 1 plus the dims;
* a network: ``add_loss_layer`` writes its version, the loss details, then the
  subnetwork.  ``add_layer`` writes its version, then its *subnetwork first*, then
  its own details and some state, so the stream holds all versions outermost
  first, then the input layer, then the layer details innermost first.
* ``add_tag_layer`` and ``add_skip_layer`` write only ``version=1`` and their
  subnetwork: the tag IDs are *not* in the file, and neither is the tag an
  ``add_prev_`` refers to.  :func:`_resolve_tags` reconstructs them with the rule
  that holds for dlib's residual blocks (see there).
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import onnx
from onnx import TensorProto, helper, numpy_helper

from faceprint.errors import ModelError
from faceprint.models import store
from faceprint.models.store import ModelFile

FloatArray = npt.NDArray[np.float32]

OPSET = 17

INPUT_LAYERS = ("input_rgb_image_sized", "input_rgb_image_pyramid", "input_rgb_image")

# Old ``input_rgb_image_pyramid`` files do not store these; dlib then uses 10 and 11.
DEFAULT_PYRAMID_PADDING = 10
DEFAULT_PYRAMID_OUTER_PADDING = 11


@dataclass
class Layer:
    """One computational (or structural) layer of a dlib network, in forward order.

    ``kind`` is one of ``con``, ``affine``, ``bn``, ``relu``, ``add_prev``,
    ``avg_pool``, ``max_pool``, ``fc``, ``tag``, ``skip``.  ``version`` is the
    version string dlib stored (e.g. ``con_4``); ``params`` holds every scalar
    field, ``tensors`` every numpy parameter, and ``state`` the ``add_layer``
    wrapper fields (flags and the shapes of its cached tensors).
    """

    kind: str
    version: str = ""
    params: dict[str, Any] = field(default_factory=dict)
    tensors: dict[str, FloatArray] = field(default_factory=dict)
    state: dict[str, Any] = field(default_factory=dict)


@dataclass
class DnnModel:
    """A parsed dlib network: ``input`` and ``loss`` options plus ``layers``."""

    input: dict[str, Any]
    loss: dict[str, Any]
    layers: list[Layer]

    @property
    def is_detector(self) -> bool:
        return self.loss.get("type") == "loss_mmod_"


# --------------------------------------------------------------------------- reading


class _Reader:
    """Cursor over the bytes of a dlib serialisation; every read checks bounds."""

    def __init__(self, data: bytes, source: str) -> None:
        self.data = data
        self.pos = 0
        self.source = source

    def fail(self, what: str) -> ModelError:
        return ModelError(
            f"{self.source} is not a readable dlib DNN file: {what} (offset {self.pos})"
        )

    def take(self, n: int) -> bytes:
        if n < 0 or self.pos + n > len(self.data):
            raise self.fail(f"file is truncated (wanted {n} more bytes)")
        chunk = self.data[self.pos : self.pos + n]
        self.pos += n
        return chunk

    def int_(self, max_bytes: int = 8) -> int:
        ctrl = self.take(1)[0]
        size = ctrl & 0x0F
        if size > max_bytes or ctrl & 0x70:
            raise self.fail(f"bad integer control byte 0x{ctrl:02x}")
        value = int.from_bytes(self.take(size), "little") if size else 0
        return -value if ctrl & 0x80 else value

    def uint(self, max_bytes: int = 8) -> int:
        value = self.int_(max_bytes)
        if value < 0:
            raise self.fail("negative value for an unsigned integer")
        return value

    def float_(self) -> float:
        mantissa = self.int_(8)
        exponent = self.int_(2)
        if exponent == 32000:
            return math.inf
        if exponent == 32001:
            return -math.inf
        if exponent == 32002:
            return math.nan
        return math.ldexp(mantissa, exponent)

    def bool_(self) -> bool:
        ch = self.take(1)
        if ch not in (b"0", b"1"):
            raise self.fail(f"bad bool byte {ch!r}")
        return ch == b"1"

    def byte(self) -> int:
        return self.take(1)[0]

    def string(self, max_len: int = 1 << 20) -> str:
        n = self.uint()
        if n > max_len:
            raise self.fail(f"implausible string length {n}")
        raw = self.take(n)
        try:
            return raw.decode("ascii")
        except UnicodeDecodeError as exc:
            raise self.fail("string is not ASCII") from exc

    def peek_string(self) -> str | None:
        """The string at the cursor if there plausibly is one, without moving."""
        pos = self.pos
        try:
            return self.string(max_len=64)
        except ModelError:
            return None
        finally:
            self.pos = pos

    def tensor(self) -> FloatArray:
        version = self.int_()
        dims = [self.int_() for _ in range(4)]
        if any(d < 0 for d in dims):
            raise self.fail(f"negative tensor dimension {dims}")
        count = int(np.prod(dims, dtype=np.int64))
        if version == 2:
            raw = self.take(4 * count)
            arr = np.frombuffer(raw, dtype="<f4").astype(np.float32)
        elif version == 1:
            arr = np.array([self.float_() for _ in range(count)], dtype=np.float32)
        else:
            raise self.fail(f"unknown tensor version {version}")
        return arr.reshape(dims)

    def alias_tensor(self) -> tuple[int, int, int, int]:
        version = self.int_()
        if version != 1:
            raise self.fail(f"unknown alias_tensor version {version}")
        n, k, nr, nc = (self.int_() for _ in range(4))
        return (n, k, nr, nc)


def _size(alias: tuple[int, int, int, int]) -> int:
    return alias[0] * alias[1] * alias[2] * alias[3]


# ------------------------------------------------------------------ loss and input


def _read_loss(r: _Reader) -> dict[str, Any]:
    name = r.string(max_len=256)
    if name == "loss_metric_2":
        return {
            "type": "loss_metric_",
            "version": name,
            "margin": r.float_(),
            "dist_thresh": r.float_(),
        }
    if name == "loss_metric_":
        return {"type": "loss_metric_", "version": name, "margin": 0.1, "dist_thresh": 0.75}
    if name == "loss_mmod_":
        return {"type": "loss_mmod_", "version": name, **_read_mmod_options(r)}
    raise r.fail(f"unknown loss layer {name!r}")


def _read_mmod_options(r: _Reader) -> dict[str, Any]:
    version = r.int_()
    if not 1 <= version <= 4:
        raise r.fail(f"unknown mmod_options version {version}")
    windows: list[dict[str, Any]] = []
    if version == 1:
        windows.append({"width": r.uint(), "height": r.uint(), "label": ""})
    else:
        for _ in range(r.uint()):
            wv = r.int_()
            if wv not in (1, 2):
                raise r.fail(f"unknown detector_window_details version {wv}")
            width, height = r.uint(), r.uint()
            label = r.string() if wv == 2 else ""
            windows.append({"width": width, "height": height, "label": label})
    opts: dict[str, Any] = {"options_version": version, "detector_windows": windows}
    opts["loss_per_false_alarm"] = r.float_()
    opts["loss_per_missed_target"] = r.float_()
    opts["truth_match_iou_threshold"] = r.float_()
    opts["overlaps_nms"] = {"iou_thresh": r.float_(), "percent_covered_thresh": r.float_()}
    opts["overlaps_ignore"] = {"iou_thresh": r.float_(), "percent_covered_thresh": r.float_()}
    opts["assume_image_pyramid"] = bool(r.byte()) if version >= 3 else True
    if version >= 4:
        opts["use_bounding_box_regression"] = r.bool_()
        opts["bbr_lambda"] = r.float_()
    else:  # dlib's defaults when the file predates these fields
        opts["use_bounding_box_regression"] = False
        opts["bbr_lambda"] = 100.0
    return opts


def _read_input(r: _Reader) -> dict[str, Any]:
    name = r.string(max_len=256)
    if name == "input_rgb_image_sized":
        mean = (r.float_(), r.float_(), r.float_())
        return {"type": name, "version": name, "mean_rgb": mean, "nr": r.uint(), "nc": r.uint()}
    if name in ("input_rgb_image_pyramid", "input_rgb_image_pyramid2"):
        mean = (r.float_(), r.float_(), r.float_())
        if name.endswith("2"):
            padding, outer = r.uint(), r.uint()
        else:
            padding, outer = DEFAULT_PYRAMID_PADDING, DEFAULT_PYRAMID_OUTER_PADDING
        return {
            "type": "input_rgb_image_pyramid",
            "version": name,
            "mean_rgb": mean,
            "pyramid_padding": padding,
            "pyramid_outer_padding": outer,
            # The pyramid type is a template argument and is not in the file; dlib's
            # face detector (and every shipped MMOD model) uses pyramid_down<6>.
            "pyramid_down": 6,
        }
    if name == "input_rgb_image":
        return {"type": name, "version": name, "mean_rgb": (r.float_(), r.float_(), r.float_())}
    raise r.fail(f"unknown input layer {name!r}")


# ------------------------------------------------------------------ layer details


def _read_details(r: _Reader) -> Layer:
    name = r.string(max_len=256)
    if name in ("con_4", "con_5"):
        params = r.tensor()
        p: dict[str, Any] = {
            "num_filters": r.int_(),
            "nr": r.int_(),
            "nc": r.int_(),
            "stride_y": r.int_(),
            "stride_x": r.int_(),
            "padding_y": r.int_(),
            "padding_x": r.int_(),
        }
        filters, biases = r.alias_tensor(), r.alias_tensor()
        p.update(
            filters_shape=filters,
            biases_shape=biases,
            learning_rate_multiplier=r.float_(),
            weight_decay_multiplier=r.float_(),
            bias_learning_rate_multiplier=r.float_(),
            bias_weight_decay_multiplier=r.float_(),
        )
        p["use_bias"] = r.bool_() if name == "con_5" else True
        flat = params.reshape(-1)
        nf = _size(filters)
        if flat.size != nf + (_size(biases) if p["use_bias"] else 0):
            raise r.fail(f"{name}: parameter count {flat.size} does not match filters {filters}")
        tensors: dict[str, FloatArray] = {"weight": flat[:nf].reshape(filters)}
        if p["use_bias"]:
            tensors["bias"] = flat[nf:].copy()
        return Layer("con", name, p, tensors)
    if name in ("affine_", "affine_2"):
        params = r.tensor()
        gamma, beta = r.alias_tensor(), r.alias_tensor()
        p = {"gamma_shape": gamma, "beta_shape": beta, "mode": r.int_()}
        p["is_disabled"] = r.bool_() if name == "affine_2" else False
        flat = params.reshape(-1)
        tensors = {}
        if not p["is_disabled"]:
            if flat.size != _size(gamma) + _size(beta):
                raise r.fail(f"{name}: parameter count {flat.size} does not match gamma/beta")
            tensors = {
                "gamma": flat[: _size(gamma)].reshape(gamma),
                "beta": flat[_size(gamma) :].reshape(beta),
            }
        return Layer("affine", name, p, tensors)
    if name in ("bn_con2", "bn_fc2"):
        params = r.tensor()
        gamma, beta = r.alias_tensor(), r.alias_tensor()
        means, invstds = r.tensor(), r.tensor()
        running_means, running_variances = r.tensor(), r.tensor()
        p = {
            "mode": 0 if name == "bn_con2" else 1,
            "gamma_shape": gamma,
            "beta_shape": beta,
            "num_updates": r.uint(),
            "running_stats_window_size": r.uint(),
            "learning_rate_multiplier": r.float_(),
            "weight_decay_multiplier": r.float_(),
            "bias_learning_rate_multiplier": r.float_(),
            "bias_weight_decay_multiplier": r.float_(),
            "eps": r.float_(),
        }
        flat = params.reshape(-1)
        if flat.size != _size(gamma) + _size(beta):
            raise r.fail(f"{name}: parameter count {flat.size} does not match gamma/beta")
        tensors = {
            "gamma": flat[: _size(gamma)].reshape(gamma),
            "beta": flat[_size(gamma) :].reshape(beta),
            "means": means,
            "invstds": invstds,
            "running_means": running_means,
            "running_variances": running_variances,
        }
        return Layer("bn", name, p, tensors)
    if name == "relu_":
        return Layer("relu", name)
    if name == "add_prev_":
        return Layer("add_prev", name)
    if name in ("avg_pool_2", "max_pool_2", "avg_pool_", "max_pool_"):
        p = {"nr": r.int_(), "nc": r.int_(), "stride_y": r.int_(), "stride_x": r.int_()}
        if name.endswith("2"):
            p["padding_y"], p["padding_x"] = r.int_(), r.int_()
        else:  # old files: dlib's default padding rule
            p["padding_y"] = 0 if p["stride_y"] != 1 else p["nr"] // 2
            p["padding_x"] = 0 if p["stride_x"] != 1 else p["nc"] // 2
        return Layer(name.split("_pool")[0] + "_pool", name, p)
    if name in ("fc_2", "fc_3"):
        p = {"num_outputs": r.uint(), "num_inputs": r.uint()}
        params = r.tensor()
        weights, biases = r.alias_tensor(), r.alias_tensor()
        p.update(
            weights_shape=weights,
            biases_shape=biases,
            bias_mode=r.int_(),
            learning_rate_multiplier=r.float_(),
            weight_decay_multiplier=r.float_(),
            bias_learning_rate_multiplier=r.float_(),
            bias_weight_decay_multiplier=r.float_(),
        )
        p["use_bias"] = r.bool_() if name == "fc_3" else True
        has_bias = p["bias_mode"] == 0 and p["use_bias"]
        flat = params.reshape(-1)
        n_in, n_out = p["num_inputs"], p["num_outputs"]
        if flat.size != (n_in + int(has_bias)) * n_out:
            raise r.fail(f"{name}: parameter count {flat.size} does not match {n_in}x{n_out}")
        tensors = {"weight": flat[: n_in * n_out].reshape(n_in, n_out)}
        if has_bias:
            tensors["bias"] = flat[n_in * n_out :].copy()
        return Layer("fc", name, p, tensors)
    raise r.fail(f"unknown or unsupported layer {name!r}")


def _tensor_shape(r: _Reader) -> tuple[int, ...]:
    return tuple(r.tensor().shape)


# ------------------------------------------------------------------ whole network


def parse_dnn(data: bytes, source: str = "<bytes>") -> DnnModel:
    """Parse a whole dlib DNN serialisation; raise ModelError if it is not one."""
    r = _Reader(data, source)
    try:
        version = r.int_()
    except ModelError as exc:
        raise ModelError(f"{source} is not a dlib DNN file (empty or unreadable)") from exc
    head = r.peek_string() if version == 1 else None
    if head is None or not head.startswith("loss_"):
        raise ModelError(f"{source} is not a dlib DNN file (no add_loss_layer header)")
    loss = _read_loss(r)
    outer: list[int] = []  # versions of the wrappers, outermost first
    while True:
        v = r.int_()
        following = r.peek_string()
        if following is not None and following.startswith("input"):
            if v not in (1, 2, 3):
                raise r.fail(f"unknown add_layer version {v} above the input layer")
            innermost = v
            break
        if v not in (1, 2):
            raise r.fail(f"unknown layer wrapper version {v}")
        outer.append(v)
        if len(outer) > 100000:
            raise r.fail("implausibly deep network")
    input_opts = _read_input(r)
    sequence: list[Layer] = []
    if innermost == 1:  # add_tag_layer directly on the input layer
        sequence.append(Layer("tag", "tag"))
    else:
        layer = _read_details(r)
        layer.state = {
            "add_layer_version": innermost,
            "this_layer_setup_called": r.bool_(),
            "gradient_input_is_stale": r.bool_(),
            "get_output_and_gradient_input_disabled": r.bool_(),
            "x_grad_shape": _tensor_shape(r),
            "cached_output_shape": _tensor_shape(r),
            "grad_final_shape": _tensor_shape(r),
        }
        if innermost == 3:
            layer.state["sample_expansion_factor"] = r.uint()
        sequence.append(layer)
    for v in reversed(outer):
        if v == 1:
            sequence.append(Layer("tag", "tag"))  # tag or skip, resolved below
            continue
        layer = _read_details(r)
        layer.state = {
            "add_layer_version": v,
            "this_layer_setup_called": r.bool_(),
            "gradient_input_is_stale": r.bool_(),
            "get_output_and_gradient_input_disabled": r.bool_(),
            "x_grad_shape": _tensor_shape(r),
            "cached_output_shape": _tensor_shape(r),
            "params_grad_shape": _tensor_shape(r),
        }
        sequence.append(layer)
    if r.pos != len(data):
        raise r.fail(f"{len(data) - r.pos} unexpected trailing bytes after the network")
    _resolve_tags(sequence, r)
    return DnnModel(input=input_opts, loss=loss, layers=sequence)


def _resolve_tags(layers: list[Layer], r: _Reader) -> None:
    """Give tags IDs and point skip and add_prev layers at them.

    dlib does not serialise tag IDs, so the wiring is reconstructed with the rule
    that dlib's residual templates follow::

        residual      = add_prev1<block<tag1<x>>>
        residual_down = add_prev2<avg_pool<skip1<tag2<block<tag1<x>>>>>>

    Reading in forward order: a wrapper immediately followed by another wrapper is
    a tag followed by a skip; any other wrapper is a tag.  Tags go on a stack; a skip
    jumps to the tag *below* the one right under it (and consumes it); an add_prev
    adds the most recent unconsumed tag (and consumes it).
    """
    # wrappers that directly follow a wrapper are skips
    for i in range(1, len(layers)):
        if (
            layers[i].kind == "tag"
            and layers[i - 1].kind == "tag"
            and layers[i - 1].version == "tag"
        ):
            layers[i].kind = "skip"
            layers[i].version = "skip"
    stack: list[int] = []
    next_id = 1
    for layer in layers:
        if layer.kind == "tag":
            layer.params["id"] = next_id
            stack.append(next_id)
            next_id += 1
        elif layer.kind == "skip":
            if len(stack) < 2:
                raise r.fail("cannot resolve the target of a skip layer")
            layer.params["tag"] = stack.pop(-2)
        elif layer.kind == "add_prev":
            if not stack:
                raise r.fail("add_prev layer without a tag below it")
            layer.params["tag"] = stack.pop()


def load_dnn(path: Path | str) -> DnnModel:
    """Read and parse a dlib DNN ``.dat`` file."""
    p = Path(path)
    try:
        data = p.read_bytes()
    except OSError as exc:
        raise ModelError(f"cannot read model file {p}: {exc}") from exc
    return parse_dnn(data, str(p))


# ------------------------------------------------------------------ ONNX conversion


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


# ------------------------------------------------------------------ coordinates


def output_to_input_transform(model: DnnModel) -> tuple[float, float, float, float]:
    """(scale_y, offset_y, scale_x, offset_x): score map (r, c) -> input tensor (y, x).

    ``y = scale_y * r + offset_y`` (likewise x), composed from every layer's
    ``map_output_to_input`` exactly as dlib's ``output_tensor_to_input_tensor``
    does: a conv or pool maps ``p -> p*stride - padding + size//2``, every other
    layer is the identity.  Layers are walked along dlib's subnetwork chain (the
    stored order), which is what dlib follows too.
    """
    sy, oy, sx, ox = 1.0, 0.0, 1.0, 0.0
    for layer in reversed(model.layers):
        if layer.kind in ("con", "max_pool", "avg_pool"):
            p = layer.params
            if layer.kind == "con":
                nr, nc = layer.tensors["weight"].shape[2:]
            else:
                nr, nc = int(p["nr"]), int(p["nc"])
            # compose: current maps output->this layer's output; apply this layer after
            a_y, b_y = float(p["stride_y"]), float(-int(p["padding_y"]) + int(nr) // 2)
            a_x, b_x = float(p["stride_x"]), float(-int(p["padding_x"]) + int(nc) // 2)
            sy, oy = a_y * sy, a_y * oy + b_y
            sx, ox = a_x * sx, a_x * ox + b_x
        elif layer.kind == "fc":
            raise ModelError("a network with a fully connected layer has no spatial mapping")
    return sy, oy, sx, ox


def map_output_to_input(model: DnnModel, row: float, col: float) -> tuple[float, float]:
    """Map a score-map point (row, col) to input tensor coordinates (y, x)."""
    sy, oy, sx, ox = output_to_input_transform(model)
    return sy * row + oy, sx * col + ox


# ------------------------------------------------------------------ cached conversion

_convert_lock = threading.Lock()


#: Bump when to_onnx changes, so graphs converted by an older faceprint are not reused.
CONVERTER_VERSION = 1


def converted_onnx(spec: ModelFile, kind: str, model_dir: Path | str | None = None) -> Path:
    """Locate a dlib ``.dat`` model, convert it to ONNX once, and return the cached path."""
    source = store.locate(spec, model_dir)
    target = store.converted_path(f"{kind}-c{CONVERTER_VERSION}", store.sha256_of(source))
    if target.is_file():
        return target
    with _convert_lock:
        if not target.is_file():
            proto = to_onnx(load_dnn(source))
            store.save_converted(target, proto.SerializeToString())
    return target


def mmod_onnx_path(model_dir: Path | str | None = None) -> Path:
    """The cached ONNX conversion of dlib's MMOD CNN face detector."""
    from faceprint.models.packs import MMOD_DETECTOR

    return converted_onnx(MMOD_DETECTOR, "dlib_mmod", model_dir)


def mmod_model(model_dir: Path | str | None = None) -> DnnModel:
    """The parsed MMOD detector (its loss/input options and layer geometry)."""
    from faceprint.models.packs import MMOD_DETECTOR

    return load_dnn(store.locate(MMOD_DETECTOR, model_dir))


__all__ = [
    "DnnModel",
    "Layer",
    "converted_onnx",
    "load_dnn",
    "map_output_to_input",
    "mmod_model",
    "mmod_onnx_path",
    "output_to_input_transform",
    "parse_dnn",
    "to_onnx",
]
