"""dlib DNN reader and ONNX conversion, checked against dlib's own outputs."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import pytest
from PIL import Image

from faceprint import runtime
from faceprint.embed.dlib_resnet import embed_chips, onnx_path
from faceprint.errors import ModelError
from faceprint.models import dlib_format, store
from faceprint.models.dlib_dnn import (
    DnnModel,
    Layer,
    load_dnn,
    map_output_to_input,
    mmod_model,
    mmod_onnx_path,
    parse_dnn,
    to_onnx,
)
from faceprint.models.packs import DLIB_RESNET, MMOD_DETECTOR

SHARED = Path(__file__).resolve().parents[2] / "shared"
FIXTURES = SHARED / "fixtures"
CHIPS = sorted((FIXTURES / "chips").glob("*_face0_150.png"))


@pytest.fixture(scope="module")
def reference() -> dict[str, dict]:
    return json.loads((FIXTURES / "dlib_reference.json").read_text())["images"]


def test_resnet_parses_fully() -> None:
    model = load_dnn(store.locate(DLIB_RESNET))
    assert model.input["type"] == "input_rgb_image_sized"
    assert (model.input["nr"], model.input["nc"]) == (150, 150)
    assert model.loss["type"] == "loss_metric_"
    kinds = [layer.kind for layer in model.layers]
    assert kinds.count("con") == 29 and kinds.count("add_prev") == 14
    assert kinds.count("skip") == 4 and kinds[-2:] == ["avg_pool", "fc"]
    fc = model.layers[-1]
    assert fc.tensors["weight"].shape == (256, 128) and "bias" not in fc.tensors


def test_detector_options() -> None:
    model = mmod_model()
    assert model.is_detector
    assert model.loss["detector_windows"] == [{"width": 80, "height": 80, "label": ""}]
    assert 0 < model.loss["overlaps_nms"]["iou_thresh"] < 1
    assert model.input["pyramid_padding"] == 10 and model.input["pyramid_outer_padding"] == 11
    assert len(model.input["mean_rgb"]) == 3
    # three 5x5 stride-2 convolutions without padding, then stride-1 "same" convolutions
    assert map_output_to_input(model, 0, 0) == (14.0, 14.0)
    assert map_output_to_input(model, 2, 1) == (30.0, 22.0)


@pytest.mark.skipif(not CHIPS, reason="no fixture chips")
def test_embed_chips_matches_dlib(reference: dict[str, dict]) -> None:
    chips = np.stack([np.asarray(Image.open(p).convert("RGB")) for p in CHIPS])
    names = [p.name.replace("_face0_150.png", ".jpg") for p in CHIPS]
    want = np.array(
        [reference[n]["faces"][0]["descriptor_from_chip"] for n in names], dtype=np.float32
    )
    got = embed_chips(chips)
    assert got.shape == (len(CHIPS), 128) and got.dtype == np.float32
    cos = (got * want).sum(1) / np.linalg.norm(got, axis=1) / np.linalg.norm(want, axis=1)
    assert cos.min() >= 0.99
    assert np.abs(got - want).max() < 1e-4
    # one chip alone gives the same answer as inside the batch
    np.testing.assert_allclose(embed_chips(chips[:1])[0], got[0], atol=1e-5)


def test_detector_scores_the_face(reference: dict[str, dict]) -> None:
    face = reference["img10.jpg"]["faces"][0]
    left, top, right, bottom = face["box_ltrb"]
    img = Image.open(SHARED / "faces" / "img10.jpg").convert("RGB")
    scale = 80 / (right - left)  # bring the face to the 80x80 detector window
    small = img.resize((round(img.width * scale), round(img.height * scale)), Image.BILINEAR)
    x = np.asarray(small, dtype=np.float32).transpose(2, 0, 1)[None].copy()
    (scores,) = runtime.run(mmod_onnx_path(), x)
    assert scores.ndim == 4 and scores.shape[:2] == (1, 1)
    assert scores.max() > 0
    row, col = np.unravel_index(int(scores[0, 0].argmax()), scores.shape[2:])
    y, xx = map_output_to_input(mmod_model(), float(row), float(col))
    cy, cx = (top + bottom) / 2, (left + right) / 2
    assert abs(y / scale - cy) < 0.25 * (bottom - top)
    assert abs(xx / scale - cx) < 0.25 * (right - left)


def test_detector_graph_has_dynamic_size() -> None:
    proto = onnx.load(str(mmod_onnx_path()))
    dims = proto.graph.input[0].type.tensor_type.shape.dim
    assert [d.dim_param or d.dim_value for d in dims] == ["N", 3, "H", "W"]
    (scores,) = runtime.run(mmod_onnx_path(), np.full((2, 3, 101, 77), 128, np.float32))
    assert scores.shape[0] == 2


def test_truncated_file_raises(tmp_path: Path) -> None:
    data = store.locate(MMOD_DETECTOR).read_bytes()
    for cut in (3, 200, len(data) // 2, len(data) - 1):
        path = tmp_path / f"cut{cut}.dat"
        path.write_bytes(data[:cut])
        with pytest.raises(ModelError):
            load_dnn(path)


def test_not_a_dlib_file_raises(tmp_path: Path) -> None:
    for i, data in enumerate([b"", b"\x89PNG\r\n\x1a\n" + bytes(100), b"hello world" * 50]):
        path = tmp_path / f"junk{i}.dat"
        path.write_bytes(data)
        with pytest.raises(ModelError):
            load_dnn(path)
    # a shape predictor is a dlib file, but not a DNN
    sp = store.locate(MMOD_DETECTOR).with_name("shape_predictor_5_face_landmarks.dat")
    if sp.is_file():
        with pytest.raises(ModelError):
            parse_dnn(sp.read_bytes()[:100000], str(sp))


def test_unknown_layer_raises() -> None:
    data = bytearray(store.locate(MMOD_DETECTOR).read_bytes())
    at = data.index(b"relu_")
    data[at : at + 5] = b"relx_"
    with pytest.raises(ModelError, match="relx_"):
        parse_dnn(bytes(data))


def test_conversion_is_cached(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FACEPRINT_CACHE_DIR", str(tmp_path))
    first = onnx_path()
    assert first.is_relative_to(tmp_path) and first.is_file()
    assert first.name == f"dlib-dnn-onnx-v1-{DLIB_RESNET.sha256}.onnx"
    mtime = first.stat().st_mtime_ns
    assert onnx_path() == first
    assert first.stat().st_mtime_ns == mtime


# ------------------------------------------------------------------ zero-padded add_prev


def _conv(x: np.ndarray, w: np.ndarray, b: np.ndarray, stride: int) -> np.ndarray:
    n, _, h, wd = x.shape
    f, _, kr, kc = w.shape
    ho, wo = (h - kr) // stride + 1, (wd - kc) // stride + 1
    out = np.zeros((n, f, ho, wo), np.float64)
    for i in range(ho):
        for j in range(wo):
            patch = x[:, :, i * stride : i * stride + kr, j * stride : j * stride + kc]
            out[:, :, i, j] = np.einsum("nkrc,fkrc->nf", patch, w) + b
    return out


def test_residual_down_with_dynamic_size(tmp_path: Path) -> None:
    """residual_down on a 9x9 input: block gives 4x4x4, avg_pool gives 4x4x3 -> padded."""
    rng = np.random.default_rng(0)
    w = rng.normal(size=(4, 3, 3, 3)).astype(np.float32)
    b = rng.normal(size=4).astype(np.float32)
    conv = Layer(
        "con",
        "con_4",
        {"stride_y": 2, "stride_x": 2, "padding_y": 0, "padding_x": 0},
        {"weight": w, "bias": b},
    )
    pool = Layer(
        "avg_pool",
        "avg_pool_2",
        {"nr": 2, "nc": 2, "stride_y": 2, "stride_x": 2, "padding_y": 0, "padding_x": 0},
    )
    layers = [
        Layer("tag", "tag", {"id": 1}),
        conv,
        Layer("tag", "tag", {"id": 2}),
        Layer("skip", "skip", {"tag": 1}),
        pool,
        Layer("add_prev", "add_prev_", {"tag": 2}),
    ]
    mean = (0.0, 0.0, 0.0)
    model = DnnModel({"type": "input_rgb_image_pyramid", "mean_rgb": mean}, {}, layers)
    path = tmp_path / "residual_down.onnx"
    onnx.save(to_onnx(model), str(path))
    for size in (9, 10):  # 4x4 vs 4x4, then 4x4 (block) vs 5x5 (pool)
        x = rng.uniform(0, 255, size=(2, 3, size, size)).astype(np.float32)
        (got,) = runtime.run(path, x)
        xs = x.astype(np.float64) / 256
        block = _conv(xs, w, b, 2)
        half = size // 2
        pooled = xs[:, :, : half * 2, : half * 2].reshape(2, 3, half, 2, half, 2).mean(axis=(3, 5))
        hh = max(block.shape[2], pooled.shape[2])
        want = np.zeros((2, 4, hh, hh))
        want[:, :, : block.shape[2], : block.shape[3]] += block
        want[:, :3, : pooled.shape[2], : pooled.shape[3]] += pooled
        assert got.shape == want.shape
        np.testing.assert_allclose(got, want, atol=1e-4)


# ------------------------------------------------------------------ dlib serialization primitives


def _dlib_int(value: int) -> bytes:
    """dlib's integer encoding, written out here independently of the reader."""
    mag = abs(value)
    body = mag.to_bytes((mag.bit_length() + 7) // 8, "little")
    return bytes([len(body) | (0x80 if value < 0 else 0)]) + body


def _dlib_float(value: float) -> bytes:
    mantissa, exponent = np.frexp(np.float64(value))
    m = int(mantissa * 2**53)
    return _dlib_int(m) + _dlib_int(int(exponent) - 53)


@pytest.mark.parametrize("seed", range(6))
def test_vectorised_ints_equal_one_by_one(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n = int(rng.integers(1, 20000))
    shifts = rng.integers(0, 63, n)
    values = rng.integers(-(2**62), 2**62, n) >> shifts
    if seed % 3 == 0:
        values[: n // 2] = 1  # 0x01 0x01 repeated: parsings from odd and even offsets never meet
    data = b"".join(_dlib_int(int(v)) for v in values)
    decoded, end = dlib_format.decode_ints(data, "test")
    assert end == len(data)
    np.testing.assert_array_equal(decoded, values)
    reader = dlib_format.ByteReader(data + b"tail", "test")
    head = [reader.int_() for _ in range(3)]
    rest = reader.ints(n - 3)
    np.testing.assert_array_equal(np.concatenate([head, rest]), values)
    assert reader.take(4) == b"tail"


def test_vectorised_floats_and_errors() -> None:
    values = np.array([0.0, 1.5, -2.25, 1e-30, 3.4e38, 0.1], dtype=np.float32)
    data = b"".join(_dlib_float(float(v)) for v in values)
    data += _dlib_int(1) + _dlib_int(32000) + _dlib_int(1) + _dlib_int(32002)  # inf, nan
    got = dlib_format.ByteReader(data, "test").floats(len(values) + 2)
    np.testing.assert_array_equal(got[:-2], values)
    assert got[-2] == np.inf and np.isnan(got[-1])
    scalar = dlib_format.ByteReader(data, "test")
    assert [scalar.float_() for _ in values] == [float(v) for v in values]
    with pytest.raises(ModelError, match="truncated"):
        dlib_format.decode_ints(data[:-1], "test")
    with pytest.raises(ModelError, match="truncated"):
        dlib_format.ByteReader(data, "test").ints(1000)
    with pytest.raises(ModelError, match="control byte 0x7f"):
        dlib_format.decode_ints(_dlib_int(5) + b"\x7f" + _dlib_int(6), "test")


def test_mmod_runner_from_the_registry() -> None:
    from faceprint.models import registry
    from faceprint.models.dlib_dnn import output_to_input_transform
    from faceprint.models.mmod_runner import MmodRunner

    runner = registry.load(MMOD_DETECTOR)
    assert isinstance(runner, MmodRunner) and runner.model.is_detector
    assert runner.transform == output_to_input_transform(mmod_model())
    canvas = np.full((3, 120, 90), 122.0, np.float32)
    tensor = runner.prepare(canvas)
    assert tensor.shape == (1, 3, 120, 90) and tensor.flags.c_contiguous
    (scores,) = runner.run(tensor)
    assert scores.shape[:2] == (1, 1) and scores.ndim == 4
    with pytest.raises(ValueError):
        runner.prepare(np.zeros((120, 90, 3), np.float32))


def test_resnet_runner_from_the_registry() -> None:
    from faceprint.embed.dlib_resnet import ResnetRunner
    from faceprint.models import registry

    runner = registry.load(DLIB_RESNET)
    assert isinstance(runner, ResnetRunner)
    chips = np.zeros((2, 150, 150, 3), np.uint8)
    tensor = runner.prepare(chips)
    assert tensor.shape == (2, 3, 150, 150) and tensor.dtype == np.float32
    (out,) = runner.run(tensor)
    assert out.shape == (2, 128)
    assert embed_chips(np.zeros((0, 150, 150, 3), np.uint8)).shape == (0, 128)
    with pytest.raises(ValueError, match="chips"):
        runner.prepare(np.zeros((2, 64, 64, 3), np.uint8))
