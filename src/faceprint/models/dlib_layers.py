"""The records of a parsed dlib network, and the readers of its input, loss and layers.

Each reader takes a :class:`~faceprint.models.dlib_format.ByteReader` at the start of one
object as dlib's ``serialize`` wrote it (``dnn/input.h``, ``dnn/loss.h``,
``dnn/layers.h``) and returns its options as plain data; :mod:`faceprint.models.dlib_dnn`
puts them together into a :class:`DnnModel`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from faceprint.models.dlib_format import ByteReader

FloatArray = npt.NDArray[np.float32]

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


def _size(alias: tuple[int, int, int, int]) -> int:
    return alias[0] * alias[1] * alias[2] * alias[3]


# ------------------------------------------------------------------ loss and input


def read_loss(r: ByteReader) -> dict[str, Any]:
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


def _read_mmod_options(r: ByteReader) -> dict[str, Any]:
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


def read_input(r: ByteReader) -> dict[str, Any]:
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


def read_details(r: ByteReader) -> Layer:
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
