"""Read dlib DNN model files (``.dat``) and turn them into ONNX graphs, without dlib.

dlib serialises a network as nested C++ objects (primitives: :mod:`.dlib_format`). This
module parses that byte stream into a plain :class:`DnnModel` (input layer options, loss
options, and the computational layers in forward order with numpy parameters; the
readers of each object are in :mod:`.dlib_layers`), converts it into an ONNX graph with
:func:`to_onnx` (:mod:`.dlib_onnx`), and caches the conversion with :func:`converted_onnx`
(:mod:`.cache`).

How a network is laid out (learned from reading dlib's ``dnn/core.h``):

* ``add_loss_layer`` writes its version, the loss details, then the subnetwork.
  ``add_layer`` writes its version, then its *subnetwork first*, then its own details and
  some state, so the stream holds all versions outermost first, then the input layer,
  then the layer details innermost first.
* ``add_tag_layer`` and ``add_skip_layer`` write only ``version=1`` and their
  subnetwork: the tag IDs are *not* in the file, and neither is the tag an
  ``add_prev_`` refers to.  :func:`_resolve_tags` reconstructs them with the rule
  that holds for dlib's residual blocks (see there).
"""

from __future__ import annotations

from pathlib import Path

from faceprint.errors import ModelError
from faceprint.models import cache, store
from faceprint.models.dlib_format import ByteReader
from faceprint.models.dlib_layers import DnnModel, Layer, read_details, read_input, read_loss
from faceprint.models.dlib_onnx import to_onnx
from faceprint.models.store import ModelFile

KIND = "dlib DNN file"


# ------------------------------------------------------------------ whole network


def parse_dnn(data: bytes, source: str = "<bytes>") -> DnnModel:
    """Parse a whole dlib DNN serialisation; raise ModelError if it is not one."""
    r = ByteReader(data, source, KIND)
    try:
        version = r.int_()
    except ModelError as exc:
        raise ModelError(f"{source} is not a dlib DNN file (empty or unreadable)") from exc
    head = r.peek_string() if version == 1 else None
    if head is None or not head.startswith("loss_"):
        raise ModelError(f"{source} is not a dlib DNN file (no add_loss_layer header)")
    loss = read_loss(r)
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
    input_opts = read_input(r)
    sequence: list[Layer] = []
    if innermost == 1:  # add_tag_layer directly on the input layer
        sequence.append(Layer("tag", "tag"))
    else:
        layer = read_details(r)
        layer.state = {
            "add_layer_version": innermost,
            "this_layer_setup_called": r.bool_(),
            "gradient_input_is_stale": r.bool_(),
            "get_output_and_gradient_input_disabled": r.bool_(),
            "x_grad_shape": r.tensor_shape(),
            "cached_output_shape": r.tensor_shape(),
            "grad_final_shape": r.tensor_shape(),
        }
        if innermost == 3:
            layer.state["sample_expansion_factor"] = r.uint()
        sequence.append(layer)
    for v in reversed(outer):
        if v == 1:
            sequence.append(Layer("tag", "tag"))  # tag or skip, resolved below
            continue
        layer = read_details(r)
        layer.state = {
            "add_layer_version": v,
            "this_layer_setup_called": r.bool_(),
            "gradient_input_is_stale": r.bool_(),
            "get_output_and_gradient_input_disabled": r.bool_(),
            "x_grad_shape": r.tensor_shape(),
            "cached_output_shape": r.tensor_shape(),
            "params_grad_shape": r.tensor_shape(),
        }
        sequence.append(layer)
    if r.pos != len(data):
        raise r.fail(f"{len(data) - r.pos} unexpected trailing bytes after the network")
    _resolve_tags(sequence, r)
    return DnnModel(input=input_opts, loss=loss, layers=sequence)


def _resolve_tags(layers: list[Layer], r: ByteReader) -> None:
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
    from faceprint.io import read_file
    from faceprint.models.store import MAX_MODEL_BYTES

    return parse_dnn(read_file(path, MAX_MODEL_BYTES, error=ModelError), str(path))


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


def _convert(source: Path) -> bytes:
    return to_onnx(load_dnn(source)).SerializeToString()


#: dlib .dat -> ONNX. Bump the version when to_onnx changes its output.
DLIB_TO_ONNX = cache.Converter("dlib-dnn-onnx", 1, _convert)


def converted_onnx(spec: ModelFile, model_dir: Path | str | None = None) -> Path:
    """Locate a dlib ``.dat`` model, convert it to ONNX once, and return the cached path."""
    return cache.converted(store.locate(spec, model_dir), DLIB_TO_ONNX, spec.sha256)


def mmod_onnx_path(model_dir: Path | str | None = None) -> Path:
    """The cached ONNX conversion of dlib's MMOD CNN face detector."""
    from faceprint.models.packs import MMOD_DETECTOR

    return converted_onnx(MMOD_DETECTOR, model_dir)


def mmod_model(model_dir: Path | str | None = None) -> DnnModel:
    """The parsed MMOD detector (its loss/input options and layer geometry)."""
    from faceprint.models.packs import MMOD_DETECTOR

    return load_dnn(store.locate(MMOD_DETECTOR, model_dir))


__all__ = [
    "DLIB_TO_ONNX",
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
