"""Model packs are data: which files, their sha256, licence, input spec and thresholds."""

from __future__ import annotations

import math
from dataclasses import dataclass

from faceprint.models.store import ModelFile

_DLIB_PKG = "face_recognition_models"

MMOD_DETECTOR = ModelFile(
    name="mmod_human_face_detector.dat",
    sha256="4cb19393e2fbaf2b1609a9319ad5386618c886a6234ec1b971f3e87c85d87fe6",
    licence="CC0-1.0",
    package=_DLIB_PKG,
)
SHAPE_PREDICTOR_5 = ModelFile(
    name="shape_predictor_5_face_landmarks.dat",
    sha256="c4b1e9804792707d3a405c2c16a80a20269e6675021f64a41d30fffafbc41888",
    licence="CC0-1.0",
    package=_DLIB_PKG,
)
DLIB_RESNET = ModelFile(
    name="dlib_face_recognition_resnet_model_v1.dat",
    sha256="55533b28a95800a551ba546ba62fe69625c7e95a7061c338adffead08719da30",
    licence="CC0-1.0",
    package=_DLIB_PKG,
)
YUNET = ModelFile(
    name="face_detection_yunet_2023mar.onnx",
    sha256="8f2383e4dd3cfbb4553ea8718107fc0423210dc964f9f4280604804ed2552fa4",
    licence="MIT",
    url=(
        "https://github.com/opencv/opencv_zoo/raw/main/models/"
        "face_detection_yunet/face_detection_yunet_2023mar.onnx"
    ),
)


@dataclass(frozen=True)
class Pack:
    """An embedding model pack: its files, how faces are aligned for it, and its thresholds.

    ``thresholds`` maps a target false-match rate to the cosine similarity at which that
    rate was measured on labelled impostor pairs (see README, "Thresholds").
    """

    id: str
    embedder: ModelFile
    landmarks: ModelFile
    dim: int
    chip_size: int
    chip_padding: float
    thresholds: dict[float, float]
    default_fmr: float
    calibration: str

    def threshold(self, fmr: float | None = None) -> float:
        """Cosine threshold for a target false-match rate (the nearest one calibrated)."""
        target = self.default_fmr if fmr is None else fmr
        nearest = min(self.thresholds, key=lambda f: abs(math.log10(f) - math.log10(target)))
        return self.thresholds[nearest]


DLIB_PACK = Pack(
    id="dlib-resnet-v1",
    embedder=DLIB_RESNET,
    landmarks=SHAPE_PREDICTOR_5,
    dim=128,
    chip_size=150,
    chip_padding=0.25,
    # Measured by bench/calibrate_threshold.py: all 1891 pairs of the 62 labelled photos
    # in ../shared/faces (148 genuine, 1743 impostor), YuNet + dlib landmarks + ResNet.
    # At 1e-3 only one impostor pair (a Damon/DiCaprio look-alike) may pass, so that
    # figure is an estimate from a small sample; recalibrate on your own data
    # (README, "Thresholds").
    thresholds={1e-1: 0.8776, 1e-2: 0.9064, 1e-3: 0.9325},
    default_fmr=1e-3,
    calibration="1743 impostor / 148 genuine pairs, ../shared/faces, faceprint 0.1.0",
)
DEFAULT_PACK = DLIB_PACK

# Presentation-attack detection (faceprint.liveness): MiniFASNet of
# minivision-ai/Silent-Face-Anti-Spoofing @ b6d5f04a, converted from its .pth weights to ONNX.
# There is no official download of these ONNX files: the user names a directory that holds
# them (--model-dir / FACEPRINT_MODEL_DIR).
MINIFASNET_V2 = ModelFile(
    name="2.7_80x80_MiniFASNetV2.onnx",
    sha256="3c56fd0648f8100dab3d78f80918e9605aadd5a1e7ac0b1c1a5037b92988cce1",
    licence="Apache-2.0",
)
MINIFASNET_V1SE = ModelFile(
    name="4_0_0_80x80_MiniFASNetV1SE.onnx",
    sha256="94856577987ea54b594ca56ee22dbfaf54c71498d28a9d486d9cfabebd90f27a",
    licence="Apache-2.0",
)
# Facial expression (faceprint.attributes.expression): mini-Xception trained on FER2013,
# oarriaga/face_classification, a Keras .hdf5 converted to ONNX on first use.
FER_MINI_XCEPTION = ModelFile(
    name="fer2013_mini_XCEPTION.102-0.66.hdf5",
    sha256="59534287fdfb125e30a94400296c25ea9f5d706fca93dd8adbbbed916799ea0e",
    licence="MIT",
    url=(
        "https://github.com/oarriaga/face_classification/raw/master/trained_models/"
        "emotion_models/fer2013_mini_XCEPTION.102-0.66.hdf5"
    ),
)
