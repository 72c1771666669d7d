"""Model packs are data: which files, their sha256, licence, input spec and thresholds."""

from __future__ import annotations

from dataclasses import dataclass

from faceprint.errors import ModelError
from faceprint.models.store import ModelFile
from faceprint.models.thresholds import Calibrated, Threshold, for_fmr

_DLIB_PKG = "face_recognition_models"

MMOD_DETECTOR = ModelFile(
    name="mmod_human_face_detector.dat",
    sha256="4cb19393e2fbaf2b1609a9319ad5386618c886a6234ec1b971f3e87c85d87fe6",
    licence="CC0-1.0",
    package=_DLIB_PKG,
    runner="dlib_mmod",
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
    runner="dlib_resnet",
)
YUNET = ModelFile(
    name="face_detection_yunet_2023mar.onnx",
    sha256="8f2383e4dd3cfbb4553ea8718107fc0423210dc964f9f4280604804ed2552fa4",
    licence="MIT",
    url=(
        "https://github.com/opencv/opencv_zoo/raw/main/models/"
        "face_detection_yunet/face_detection_yunet_2023mar.onnx"
    ),
    runner="yunet",
)


#: One view of an aligned chip fed to the embedder: rotation (degrees), scale, shift
#: (x, y as fractions of the chip side) and mirror. A template is the renormalised mean of
#: the L2-normalised descriptors of its views.
View = tuple[float, float, float, float, bool]
SINGLE_VIEW: tuple[View, ...] = ((0.0, 1.0, 0.0, 0.0, False),)


@dataclass(frozen=True)
class Pack:
    """An embedding model pack: its files, how faces are aligned and viewed for it, and its
    calibrated thresholds.

    The pack ``id`` names everything that makes a template (model, chip geometry, views):
    templates of different packs are never compared or stored together. ``thresholds``
    are the similarities measured at target false-match rates, with the counts behind
    each (README, "Thresholds"); :meth:`threshold` applies the one threshold rule
    (:mod:`faceprint.models.thresholds`).
    """

    id: str
    embedder: ModelFile
    landmarks: ModelFile
    dim: int
    chip_size: int
    chip_padding: float
    views: tuple[View, ...]
    thresholds: tuple[Calibrated, ...]
    default_fmr: float
    calibration: str

    def threshold(self, fmr: float | None = None) -> Threshold:
        """The threshold for a target FMR (default: the pack's), by the one rule."""
        return for_fmr(self.thresholds, self.default_fmr if fmr is None else fmr)


def _points(rows: tuple[tuple[float, float, int, int, float], ...]) -> tuple[Calibrated, ...]:
    return tuple(Calibrated(*row) for row in rows)


#: The original single-view pack (faceprint 0.1): kept so galleries enrolled with it keep
#: working (their probes are embedded the same way). Recalibrated like the default pack
#: (bench/calibrate_threshold.py --pack dlib-resnet-v1): 1,294,957 impostor pairs.
DLIB_PACK_V1 = Pack(
    id="dlib-resnet-v1",
    embedder=DLIB_RESNET,
    landmarks=SHAPE_PREDICTOR_5,
    dim=128,
    chip_size=150,
    chip_padding=0.25,
    views=SINGLE_VIEW,
    thresholds=_points(
        (
            (1e-1, 0.8774, 1294957, 288, 0.0),
            (1e-2, 0.9069, 1294957, 288, 0.0035),
            (1e-3, 0.9262, 1294957, 288, 0.0382),
            (1e-4, 0.9419, 1294957, 288, 0.1319),
            (1e-5, 0.9542, 1294957, 288, 0.309),
        )
    ),
    default_fmr=1e-3,
    calibration="1,294,957 impostor / 288 genuine pairs: ../shared/faces + ../shared/lfw-dev, "
    "YuNet, faceprint 0.2.0",
)
#: Four views of each chip: shifted 1.5 % of its side down-right and up-left, each also
#: mirrored. Measured (bench/calibrate_threshold.py, all 1.3 M pairs of the dev sets,
#: YuNet): FNMR at FMR 1e-3 / 1e-4 / 1e-5 of 3.8 / 13.2 / 30.9 % with one view, 2.1 / 11.8 /
#: 31.6 % with the chip and its mirror, 0.7 / 11.1 / 27.4 % with these four; 8 views (four
#: shifts x mirror) 1.0 / 10.1 / 27.4 % at twice the cost. Embedding cost grows with the
#: number of views (bench/throughput.py).
FOUR_VIEWS: tuple[View, ...] = tuple(
    (0.0, 1.0, d, d, mirror) for d in (0.015, -0.015) for mirror in (False, True)
)

DLIB_PACK_4VIEW = Pack(
    id="dlib-resnet-v1-4view",
    embedder=DLIB_RESNET,
    landmarks=SHAPE_PREDICTOR_5,
    dim=128,
    chip_size=150,
    chip_padding=0.25,
    views=FOUR_VIEWS,
    # bench/calibrate_threshold.py --detector mmod (the offline default): every pair of the
    # 1,610 photos of ../shared/faces and ../shared/lfw-dev, subject face of each (a face
    # in 1,609): 1,294,957 impostor and 288 genuine pairs. YuNet gives the same thresholds
    # within 1e-4. (FMR, similarity, impostor pairs, genuine pairs, FNMR there.)
    thresholds=_points(
        (
            (1e-1, 0.8835, 1294957, 288, 0.0),
            (1e-2, 0.9122, 1294957, 288, 0.0035),
            (1e-3, 0.9308, 1294957, 288, 0.0278),
            (1e-4, 0.9460, 1294957, 288, 0.1181),
            (1e-5, 0.9583, 1294957, 288, 0.2708),
        )
    ),
    default_fmr=1e-3,
    calibration="1,294,957 impostor / 288 genuine pairs: ../shared/faces + ../shared/lfw-dev, "
    "offline default detector, faceprint 0.2.0",
)
DLIB_PACK = DLIB_PACK_4VIEW
DEFAULT_PACK = DLIB_PACK
#: Every pack faceprint knows, by id (a gallery's templates name theirs).
PACKS: dict[str, Pack] = {p.id: p for p in (DLIB_PACK_V1, DLIB_PACK_4VIEW)}


def pack(pack_id: str | None) -> Pack:
    """The pack of an id (None: the default pack); ModelError for an unknown one."""
    if pack_id is None:
        return DEFAULT_PACK
    found = PACKS.get(pack_id)
    if found is None:
        raise ModelError(
            f"templates of model pack {pack_id!r} are not known to this faceprint "
            f"(it knows {', '.join(sorted(PACKS))}); upgrade faceprint or re-enroll"
        )
    return found


# Presentation-attack detection (faceprint.liveness): MiniFASNet of
# minivision-ai/Silent-Face-Anti-Spoofing @ b6d5f04a, converted from its .pth weights to ONNX.
# There is no official download of these ONNX files: the user names a directory that holds
# them (--model-dir / FACEPRINT_MODEL_DIR).
MINIFASNET_V2 = ModelFile(
    name="2.7_80x80_MiniFASNetV2.onnx",
    sha256="3c56fd0648f8100dab3d78f80918e9605aadd5a1e7ac0b1c1a5037b92988cce1",
    licence="Apache-2.0",
    runner="minifasnet",
)
MINIFASNET_V1SE = ModelFile(
    name="4_0_0_80x80_MiniFASNetV1SE.onnx",
    sha256="94856577987ea54b594ca56ee22dbfaf54c71498d28a9d486d9cfabebd90f27a",
    licence="Apache-2.0",
    runner="minifasnet",
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
    runner="fer_mini_xception",
)
