"""dlib's ``shape_predictor`` file format, read without dlib into numpy arrays.

Everything in a shape predictor file is a dlib integer or float (two integers), so the
file is decoded whole into integers, vectorised (:mod:`faceprint.models.dlib_format`),
and its structure is then walked value by value; each cascade level's trees are read as
one block. The parsed arrays are cached (:mod:`faceprint.models.cache`, as ``.npz``)
keyed by the file's sha256, so later processes load them in milliseconds.
"""

from __future__ import annotations

import dataclasses
import functools
import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from faceprint.errors import ModelError
from faceprint.models import cache
from faceprint.models.dlib_format import IntReader, to_floats

FloatArray = npt.NDArray[np.float32]
IntArray = npt.NDArray[np.int64]

KIND = "dlib shape predictor file"


@dataclass(frozen=True)
class ShapePredictorModel:
    """The parsed arrays of a shape predictor (C cascades, T trees, S splits, L leaves)."""

    initial_shape: FloatArray  # (P, 2)
    split_idx1: IntArray  # (C, T, S)
    split_idx2: IntArray  # (C, T, S)
    split_thresh: FloatArray  # (C, T, S)
    leaf_values: FloatArray  # (C, T, L, P, 2)
    anchor_idx: IntArray  # (C, F)
    deltas: FloatArray  # (C, F, 2)

    @property
    def num_parts(self) -> int:
        return int(self.initial_shape.shape[0])

    @property
    def depth(self) -> int:
        return int(self.split_idx1.shape[2] + 1).bit_length() - 1


def parse_shape_predictor(data: bytes, what: str = "shape predictor") -> ShapePredictorModel:
    """Parse the bytes of a dlib ``shape_predictor`` serialization."""
    if len(data) < 8:
        raise ModelError(f"{what}: file too short to be a dlib shape predictor")
    r = IntReader(data, what, KIND)
    version = r.int_()
    if version != 1:
        raise ModelError(
            f"{what}: not a dlib shape predictor (version field {version}, expected 1)"
        )
    initial = r.column()
    if initial.size == 0 or initial.size % 2:
        raise r.fail(f"initial shape of odd or zero length {initial.size}")
    n_parts = initial.size // 2

    n_casc = r.count(1000)
    idx1: list[IntArray] = []
    idx2: list[IntArray] = []
    thresh: list[FloatArray] = []
    leaves: list[FloatArray] = []
    n_trees = n_splits = -1
    for _ in range(n_casc):
        trees = r.count(1_000_000)
        if n_trees not in (-1, trees):
            raise r.fail("cascade levels with different numbers of trees are not supported")
        n_trees = trees
        if trees == 0:
            continue
        # all trees of a model have the same depth: read a cascade level as one block
        peeked = r.peek()
        splits = -1 if peeked is None else peeked
        if splits < 0 or splits > 1 << 16 or n_splits not in (-1, splits):
            raise r.fail("trees of different or implausible depths")
        n_splits = splits
        n_leaves = splits + 1
        if n_leaves & (n_leaves - 1):
            raise r.fail(f"tree with {splits} splits is not a full binary tree")
        per_leaf = 2 + 2 * 2 * n_parts
        per_tree = 2 + 4 * splits + n_leaves * per_leaf
        block = r.take(trees * per_tree).reshape(trees, per_tree)
        if np.any(block[:, 0] != splits) or np.any(block[:, 1 + 4 * splits] != n_leaves):
            raise r.fail("trees of different depths are not supported")
        sp = block[:, 1 : 1 + 4 * splits].reshape(trees, splits, 4)
        lv = block[:, 2 + 4 * splits :].reshape(trees, n_leaves, per_leaf)
        if np.any(np.abs(lv[..., 0]) != 2 * n_parts) or np.any(np.abs(lv[..., 1]) != 1):
            raise r.fail("leaf vector of unexpected size")
        idx1.append(sp[..., 0])
        idx2.append(sp[..., 1])
        thresh.append(to_floats(sp[..., 2], sp[..., 3]))
        pairs = lv[..., 2:].reshape(trees, n_leaves, 2 * n_parts, 2)
        leaves.append(to_floats(pairs[..., 0], pairs[..., 1]))

    if r.count(1000) != n_casc:
        raise r.fail("anchor index list does not match the number of cascades")
    anchors: list[IntArray] = []
    n_feat = -1
    for _ in range(n_casc):
        n = r.count(1_000_000)
        if n_feat not in (-1, n):
            raise r.fail("cascade levels with different numbers of feature pixels")
        n_feat = n
        anchors.append(r.take(n).copy())
    if r.count(1000) != n_casc:
        raise r.fail("delta list does not match the number of cascades")
    deltas: list[FloatArray] = []
    for _ in range(n_casc):
        if r.count(1_000_000) != n_feat:
            raise r.fail("delta list does not match the anchor list")
        deltas.append(r.floats(2 * n_feat).reshape(n_feat, 2))
    if r.remaining:
        raise r.fail(f"{r.remaining} unexpected trailing values")

    if n_casc == 0 or n_trees <= 0:
        raise r.fail("model without trees")
    a = np.stack(anchors)
    i1 = np.stack(idx1).reshape(n_casc, n_trees, n_splits)
    i2 = np.stack(idx2).reshape(n_casc, n_trees, n_splits)
    if a.min() < 0 or a.max() >= n_parts:
        raise r.fail("anchor index out of range")
    if min(i1.min(), i2.min()) < 0 or max(i1.max(), i2.max()) >= n_feat:
        raise r.fail("split feature index out of range")
    return ShapePredictorModel(
        initial_shape=initial.reshape(n_parts, 2),
        split_idx1=i1,
        split_idx2=i2,
        split_thresh=np.stack(thresh).reshape(n_casc, n_trees, n_splits),
        leaf_values=np.stack(leaves).reshape(n_casc, n_trees, n_splits + 1, n_parts, 2),
        anchor_idx=a,
        deltas=np.stack(deltas).astype(np.float32),
    )


def read_shape_predictor(path: Path | str) -> ShapePredictorModel:
    """Read a dlib shape predictor file; ModelError if it is missing, truncated or foreign."""
    from faceprint.io import read_file
    from faceprint.models.store import MAX_MODEL_BYTES

    data = read_file(path, MAX_MODEL_BYTES, error=ModelError)
    return parse_shape_predictor(data, str(path))


def _to_npz(source: Path) -> bytes:
    model = read_shape_predictor(source)
    buf = io.BytesIO()
    np.savez(buf, **{f.name: getattr(model, f.name) for f in dataclasses.fields(model)})
    return buf.getvalue()


#: .dat -> parsed arrays (.npz). Bump the version when the parsed layout changes.
SHAPE_PREDICTOR_TO_NPZ = cache.Converter("dlib-shape-predictor-npz", 1, _to_npz, ".npz")


@functools.lru_cache(maxsize=4)
def cached_model(path: str, mtime_ns: int, size: int) -> ShapePredictorModel:
    """The parsed arrays of a shape predictor file, from the conversion cache (parsed
    once per file content); the file's mtime and size only key the in-process cache."""
    npz = cache.converted(Path(path), SHAPE_PREDICTOR_TO_NPZ)
    try:
        with np.load(npz) as arrays:
            return ShapePredictorModel(**{k: arrays[k] for k in arrays.files})
    except (OSError, ValueError, TypeError) as exc:
        raise ModelError(f"cannot load the parsed shape predictor {npz}: {exc}") from exc
