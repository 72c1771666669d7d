"""The numbers MMOD's pre/post-processing needs: options read from the model file, and the
map from MMOD's margin to a probability."""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass
from pathlib import Path

from faceprint.errors import ModelError
from faceprint.models import dlib_dnn

__all__ = ["SCORE_MAP", "MmodConfig", "load_config", "probability"]

Conv = tuple[tuple[int, int, int], tuple[int, int, int]]


@dataclass(frozen=True)
class MmodConfig:
    """The numbers from the ``.dat`` file that the pre/post-processing needs."""

    onnx_path: Path
    mean_rgb: tuple[float, float, float]
    pyramid_padding: int
    pyramid_outer_padding: int
    pyramid_down: int  # N of pyramid_down<N>
    windows: tuple[tuple[int, int], ...]  # detector windows (width, height), one per channel
    nms_iou: float
    nms_covered: float
    #: output cell (c, r) -> input position: (c * sx + ox, r * sy + oy)
    out_to_in: tuple[float, float, float, float]
    #: the convolutions as (kernel, stride, padding) per axis, to know when the score map
    #: of a canvas would be empty: ((ky, sy, py), (kx, sx, px)) per layer
    convs: tuple[Conv, ...] = ()

    def output_size(self, rows: int, cols: int) -> tuple[int, int]:
        """Score map size for a canvas of ``rows x cols`` (<= 0 when too small)."""
        for (ky, sy, py), (kx, sx, px) in self.convs:
            if rows <= 0 or cols <= 0:
                break
            rows = 1 + (rows + 2 * py - ky) // sy
            cols = 1 + (cols + 2 * px - kx) // sx
        return rows, cols

    @property
    def rate(self) -> float:
        """dlib's pyramid scale step, ``(N - 1) / N``."""
        return (self.pyramid_down - 1.0) / self.pyramid_down

    @property
    def window(self) -> float:
        """Side of the smallest detector window (geometric mean of its width and height): the
        face size, in pyramid-level pixels, the network is made to find."""
        return min(math.sqrt(w * h) for w, h in self.windows)


# --------------------------------------------------------------------------------------------
# score: MMOD's margin -> probability

#: ``probability = 1 / (1 + exp(-(a * margin + b)))``: a logistic regression of "is a face"
#: on the margin, fitted by ``bench/calibrate_mmod_score.py`` (maximum likelihood) on the
#: fast mode's detections with margin > -1 (``adjust_threshold=-1``) in the photos of
#: ../shared/faces and ../shared/lfw-dev, a detection labelled a face when it overlaps a
#: YuNet face (one to one) or is LFW's centred person. 0.986 at margin 0 (MMOD's threshold:
#: nearly everything it reports at the default threshold is a face), 0.5 at -0.74, 0.18 at -1.
SCORE_MAP: dict[str, float | str] = {
    "a": 5.7426,
    "b": 4.2329,
    "detections": "1,891 with margin > -1: 1,821 faces, 70 not",
    "faces": "64 photos, 72 face / 8 non-face detections",
    "lfw-dev": "1548 photos, 1749 face / 62 non-face detections",
}


def probability(margin: float) -> float:
    """MMOD's margin as a probability that the box is a face (see :data:`SCORE_MAP`)."""
    z = float(SCORE_MAP["a"]) * margin + float(SCORE_MAP["b"])
    if z >= 0:
        return 1.0 / (1.0 + math.exp(-z))
    e = math.exp(z)
    return e / (1.0 + e)


# --------------------------------------------------------------------------------------------
# model loading (the reader and converter live in faceprint.models.dlib_dnn)

_configs: dict[str, MmodConfig] = {}
_config_lock = threading.Lock()


def _conv_geometry(model: dlib_dnn.DnnModel) -> tuple[Conv, ...]:
    out = []
    for layer in model.layers:
        if layer.kind in ("con", "max_pool", "avg_pool"):
            p = layer.params
            if layer.kind == "con":
                ky, kx = (int(v) for v in layer.tensors["weight"].shape[2:])
            else:
                ky, kx = int(p["nr"]), int(p["nc"])
            out.append(
                (
                    (ky, int(p["stride_y"]), int(p["padding_y"])),
                    (kx, int(p["stride_x"]), int(p["padding_x"])),
                )
            )
    return tuple(out)


def load_config(model_dir: str | Path | None = None) -> MmodConfig:
    """Locate the ``.dat`` file, convert it once to ONNX (cached) and read its options."""
    onnx_path = dlib_dnn.mmod_onnx_path(model_dir)
    key = str(onnx_path)
    with _config_lock:
        cfg = _configs.get(key)
    if cfg is not None:
        return cfg
    model = dlib_dnn.mmod_model(model_dir)
    if not model.is_detector or model.input.get("type") != "input_rgb_image_pyramid":
        raise ModelError("the MMOD detector file is not an image-pyramid MMOD network")
    loss = model.loss
    if loss.get("use_bounding_box_regression"):
        raise ModelError("MMOD models with bounding box regression are not supported")
    sy, oy, sx, ox = dlib_dnn.output_to_input_transform(model)
    mean = model.input["mean_rgb"]
    cfg = MmodConfig(
        onnx_path=onnx_path,
        mean_rgb=(float(mean[0]), float(mean[1]), float(mean[2])),
        pyramid_padding=int(model.input["pyramid_padding"]),
        pyramid_outer_padding=int(model.input["pyramid_outer_padding"]),
        pyramid_down=int(model.input.get("pyramid_down", 6)),
        windows=tuple((int(w["width"]), int(w["height"])) for w in loss["detector_windows"]),
        nms_iou=float(loss["overlaps_nms"]["iou_thresh"]),
        nms_covered=float(loss["overlaps_nms"]["percent_covered_thresh"]),
        out_to_in=(sx, ox, sy, oy),
        convs=_conv_geometry(model),
    )
    with _config_lock:
        _configs[key] = cfg
    return cfg
