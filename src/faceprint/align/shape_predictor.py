"""dlib's shape predictor (cascade of regression trees) read and evaluated with numpy.

The model file is dlib's own serialization of ``dlib::shape_predictor``; it is parsed here
without dlib. Prediction reproduces dlib's arithmetic step by step: the detection box maps
the unit square to the image, each cascade level samples feature pixels placed relative to
the current shape through the similarity transform from the initial (mean) shape, the
pixel intensity of an RGB pixel is the integer mean ``(r + g + b) // 3`` (0 outside the
image), every tree compares two feature pixels against a threshold down to a leaf, and the
leaf vectors are added to the shape in tree order, in float32.
"""

from __future__ import annotations

import dataclasses
import functools
import io
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from faceprint.errors import ModelError

FloatArray = npt.NDArray[np.float32]
IntArray = npt.NDArray[np.int64]

# --------------------------------------------------------------------------------------
# dlib serialization primitives
# --------------------------------------------------------------------------------------
#
# An integer is a control byte -- magnitude length in the low nibble (0..8), sign in bit
# 0x80, bits 0x70 always clear -- followed by that many little-endian magnitude bytes.
# A float is two integers: an int64 mantissa and an int16 exponent (value = m * 2**e).
# Everything in a shape predictor file is built from these, so the whole file is first
# split into integer tokens (vectorised), and the structure is then read token by token.

_TOKEN = re.compile(
    b"|".join(
        b"[" + re.escape(bytes([k])) + re.escape(bytes([k | 0x80])) + b"]" + b"." * k
        for k in range(9)
    ),
    re.DOTALL,
)

# float_details' codes for special values in the exponent
_EXP_INF, _EXP_NINF, _EXP_NAN = 32000, 32001, 32002


def _tokenize(data: bytes, what: str) -> IntArray:
    """Split ``data`` into dlib-serialized integers and decode them all."""
    tokens = _TOKEN.findall(data)
    lengths = np.fromiter(map(len, tokens), dtype=np.int64, count=len(tokens))
    if int(lengths.sum()) != len(data):
        # findall skips bytes that cannot start an integer: the file is not a dlib
        # serialization made only of integers and floats.
        raise ModelError(f"{what}: not a dlib shape predictor file (unexpected byte layout)")
    starts = np.concatenate(([0], np.cumsum(lengths)[:-1]))
    raw = np.frombuffer(data + b"\0" * 9, dtype=np.uint8)
    control = raw[starts]
    size = (control & 0x0F).astype(np.int64)
    magnitude = np.zeros(len(starts), dtype=np.uint64)
    for k in range(8):
        has = size > k
        if not has.any():
            break
        byte = raw[starts[has] + 1 + k].astype(np.uint64)
        magnitude[has] |= byte << np.uint64(8 * k)
    if np.any(magnitude > np.uint64(2**63 - 1)):
        raise ModelError(f"{what}: integer out of range (not a dlib shape predictor file)")
    values = magnitude.astype(np.int64)
    negative = (control & 0x80) != 0
    values[negative] = -values[negative]
    return values


def _to_float(mantissa: IntArray, exponent: IntArray) -> FloatArray:
    out = np.ldexp(mantissa.astype(np.float64), exponent.clip(-2000, 2000).astype(np.int32))
    out[exponent == _EXP_INF] = np.inf
    out[exponent == _EXP_NINF] = -np.inf
    out[exponent == _EXP_NAN] = np.nan
    return out.astype(np.float32)


class _Reader:
    """Walks the decoded integer tokens, with clear errors on truncation or nonsense."""

    def __init__(self, tokens: IntArray, what: str) -> None:
        self.t = tokens
        self.pos = 0
        self.what = what

    def fail(self, msg: str) -> ModelError:
        return ModelError(f"{self.what}: {msg} (truncated or not a dlib shape predictor file)")

    def take(self, n: int) -> IntArray:
        if n < 0 or self.pos + n > len(self.t):
            raise self.fail("unexpected end of data")
        out = self.t[self.pos : self.pos + n]
        self.pos += n
        return out

    def count(self, limit: int = 10_000_000) -> int:
        v = int(self.take(1)[0])
        if v < 0 or v > limit:
            raise self.fail(f"implausible element count {v}")
        return v

    def floats(self, n: int) -> FloatArray:
        pairs = self.take(2 * n).reshape(n, 2)
        return _to_float(pairs[:, 0], pairs[:, 1])

    def column(self) -> FloatArray:
        """A ``matrix<float,0,1>``: sizes (negated in the current format), then values."""
        nr, nc = (abs(int(v)) for v in self.take(2))
        if nc != 1 or nr > 100_000:
            raise self.fail(f"unexpected matrix size {nr}x{nc}")
        return self.floats(nr)


# --------------------------------------------------------------------------------------
# model
# --------------------------------------------------------------------------------------


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
    r = _Reader(_tokenize(data, what), what)
    version = int(r.take(1)[0])
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
        splits = int(r.t[r.pos]) if r.pos < len(r.t) else -1
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
        thresh.append(_to_float(sp[..., 2], sp[..., 3]))
        pairs = lv[..., 2:].reshape(trees, n_leaves, 2 * n_parts, 2)
        leaves.append(_to_float(pairs[..., 0], pairs[..., 1]))

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
    if r.pos != len(r.t):
        raise r.fail(f"{len(r.t) - r.pos} unexpected trailing values")

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
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ModelError(f"cannot read shape predictor {path}: {exc}") from exc
    return parse_shape_predictor(data, str(path))


#: Bump when the parsed layout changes, so arrays cached by an older faceprint are not reused.
PARSED_VERSION = 1


@functools.lru_cache(maxsize=4)
def _cached_model(path: str, mtime_ns: int, size: int) -> ShapePredictorModel:
    """Parse once per file version; the arrays are also kept in the user cache as .npz,
    keyed by the file's sha256, so later processes load them in milliseconds."""
    from faceprint.models import store

    cached = store.converted_path(
        f"shape_predictor-p{PARSED_VERSION}", store.sha256_of(Path(path))
    ).with_suffix(".npz")
    if cached.is_file():
        try:
            with np.load(cached) as arrays:
                return ShapePredictorModel(**{k: arrays[k] for k in arrays.files})
        except (OSError, ValueError, TypeError):
            cached.unlink(missing_ok=True)  # damaged cache entry: parse the source again
    model = read_shape_predictor(path)
    buf = io.BytesIO()
    np.savez(buf, **{f.name: getattr(model, f.name) for f in dataclasses.fields(model)})
    store.save_converted(cached, buf.getvalue())
    return model


# --------------------------------------------------------------------------------------
# prediction
# --------------------------------------------------------------------------------------


def _similarity_weights(src: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """Weights K (2P, 2) such that ``dst.reshape(2P) @ K`` = (a, b) of the least-squares
    similarity transform src -> dst, whose linear part is [[a, -b], [b, a]].

    This is the closed form of Umeyama's solution (dlib's find_similarity_transform) for
    2-D points: with src centred, a = sum(s . d) / sum|s|^2, b = sum(s x d) / sum|s|^2, and
    centring dst is unnecessary because the centred src sums to zero.
    """
    s = src - src.mean(axis=0)
    sigma = float((s * s).sum())
    k = np.zeros((len(src), 2, 2))
    if sigma == 0:
        raise ModelError("shape predictor with a degenerate initial shape (all points equal)")
    k[:, 0, 0] = s[:, 0] / sigma  # a += sx*dx
    k[:, 1, 0] = s[:, 1] / sigma  # a += sy*dy
    k[:, 1, 1] = s[:, 0] / sigma  # b += sx*dy
    k[:, 0, 1] = -s[:, 1] / sigma  # b -= sy*dx
    return k.reshape(-1, 2)


def _leaf_table(depth: int) -> npt.NDArray[np.intp] | None:
    """Leaf reached for every pattern of split outcomes of a full tree of ``depth`` levels.

    The outcomes of a tree's 2**depth - 1 splits, packed most significant bit first into a
    16-bit code (split 0 in bit 15), index this table. Only for trees of up to 16 splits.
    """
    n_splits = 2**depth - 1
    if n_splits > 16 or depth == 0:
        return None
    codes = np.arange(1 << 16, dtype=np.int64)
    node = np.zeros_like(codes)
    for _ in range(depth):
        right = (codes >> (15 - node)) & 1  # 1: go right
        node = 2 * node + 1 + right
    return (node - n_splits).astype(np.intp)


class ShapePredictor:
    """dlib's 5-point (or any) shape predictor on numpy. Use :meth:`load`."""

    def __init__(self, model: ShapePredictorModel) -> None:
        self.model = model
        m = model
        c, t, s = m.split_idx1.shape
        self._depth = m.depth
        self._weights = _similarity_weights(m.initial_shape.astype(np.float64))
        self._init = m.initial_shape.astype(np.float32).view(np.complex64)[:, 0]  # (P,)
        self._deltas = np.ascontiguousarray(m.deltas).view(np.complex64)[..., 0]  # (C,F)
        self._anchor = m.anchor_idx.astype(np.intp)
        self._table = _leaf_table(self._depth)
        # with a leaf table, splits are padded to 16 per tree so that packing the
        # outcomes gives one 16-bit code per tree
        width = 16 if self._table is not None else s
        pad = ((0, 0), (0, 0), (0, width - s))
        self._width = width
        self._idx1 = np.pad(m.split_idx1, pad).reshape(c, t * width).astype(np.intp)
        self._idx2 = np.pad(m.split_idx2, pad).reshape(c, t * width).astype(np.intp)
        self._thr = np.pad(m.split_thresh, pad).reshape(c, t * width)
        self._tree_base = np.arange(t) * width
        n_leaves = s + 1
        self._leaf_base = np.arange(t) * n_leaves
        self._leaves = np.ascontiguousarray(m.leaf_values.reshape(c, t * n_leaves, -1))
        self._leaves_c = self._leaves.view(np.complex64)  # (C, T*L, P)

    @classmethod
    def load(cls, model_dir: Path | str | None = None) -> ShapePredictor:
        """The 5-point predictor from the model store; parsed once per process."""
        from faceprint.models import packs, store

        path = store.locate(packs.SHAPE_PREDICTOR_5, model_dir)
        return cls.from_file(path)

    @classmethod
    def from_file(cls, path: Path | str) -> ShapePredictor:
        """A predictor from any dlib shape predictor file (parsed once per file version)."""
        path = Path(path).resolve()
        try:
            st = path.stat()
        except OSError as exc:
            raise ModelError(f"cannot read shape predictor {path}: {exc}") from exc
        return _cached_predictor(str(path), st.st_mtime_ns, st.st_size)

    @property
    def num_parts(self) -> int:
        return self.model.num_parts

    def predict(
        self, image: np.ndarray, box_ltrb: npt.ArrayLike, *, subpixel: bool = False
    ) -> FloatArray:
        """Landmarks (num_parts, 2) as float32 (x, y) in image pixels.

        ``box_ltrb`` is dlib's rectangle (left, top, right, bottom), right/bottom inclusive.
        By default the points are rounded to integers like dlib's ``full_object_detection``;
        ``subpixel=True`` returns the unrounded positions.
        """
        box = np.asarray(box_ltrb, dtype=np.float64).reshape(1, 4)
        return self.predict_many(image, box, subpixel=subpixel)[0]

    def predict_many(
        self, image: np.ndarray, boxes: npt.ArrayLike, *, subpixel: bool = False
    ) -> FloatArray:
        """Landmarks for several boxes of one image: (N, num_parts, 2) float32."""
        img = np.ascontiguousarray(_check_image(image))
        rects = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
        n = len(rects)
        p = self.num_parts
        if n == 0:
            return np.zeros((0, p, 2), dtype=np.float32)
        h, w = img.shape[:2]
        flat_img = img.reshape(-1, 3)
        limits = np.array([w, h], dtype=np.uint64)
        # dlib's unnormalizing transform: (0,0) -> tl corner, (1,1) -> br corner
        origin = rects[:, None, 0:2]  # (N,1,2)
        scale = rects[:, None, 2:4] - origin  # (right-left, bottom-top)
        n_trees = len(self._tree_base)
        n_splits = self.model.split_idx1.shape[2]
        walk_base = np.arange(n)[:, None] * self._idx1.shape[1] + self._tree_base
        # shapes as complex64 x + iy: (N, P)
        shape = np.repeat(self._init[None, :], n, axis=0)
        for c in range(len(self._idx1)):
            # similarity transform from the initial shape to the current one, computed in
            # double and used in float32 like dlib: tform = a + ib acts as [[a,-b],[b,a]]
            ab = shape.view(np.float32).astype(np.float64) @ self._weights  # (N,2)
            tform = ab.astype(np.float32).view(np.complex64)  # (N,1)
            feat = tform * self._deltas[c] + shape[:, self._anchor[c]]  # (N,F) float32
            xy = np.floor(origin + scale * feat.view(np.float32).reshape(n, -1, 2) + 0.5)
            ixy = xy.astype(np.int64)
            ok = ixy.view(np.uint64) < limits  # negatives wrap to huge values
            inside = ok[..., 0] & ok[..., 1]
            flat = np.where(inside, ixy[..., 1] * w + ixy[..., 0], 0)
            rgb = np.take(flat_img, flat, axis=0)  # (N,F,3)
            feats = (rgb.sum(axis=-1, dtype=np.uint16) // 3 * inside).astype(np.float32)
            # every split of every tree at once (left when a - b > thresh) ...
            f1 = np.take(feats, self._idx1[c], axis=1)
            right = f1 - np.take(feats, self._idx2[c], axis=1) <= self._thr[c]
            # ... then the leaf each tree reaches
            if self._table is not None:
                code = np.packbits(right).view(">u2")  # one code per tree
                leaf = self._table[code].reshape(n, n_trees)
            else:
                flat_right = right.ravel()
                node = np.zeros((n, n_trees), dtype=np.intp)
                for _ in range(self._depth):
                    node = 2 * node + 1 + flat_right[walk_base + node]
                leaf = node - n_splits
            steps = np.take(self._leaves_c[c], leaf + self._leaf_base, axis=0)  # (N,T,P)
            # dlib adds the trees' leaf vectors to the shape one after another in float32;
            # a reduction over a non-contiguous axis accumulates in exactly that order
            seq = np.concatenate((shape[:, None, :], steps), axis=1).view(np.float32)
            shape = np.add.reduce(seq, axis=1, dtype=np.float32).view(np.complex64)
        pts = shape.view(np.float32).reshape(n, p, 2).astype(np.float64)
        out = origin + scale * pts
        if not subpixel:
            out = np.floor(out + 0.5)
        return out.astype(np.float32)


@functools.lru_cache(maxsize=4)
def _cached_predictor(path: str, mtime_ns: int, size: int) -> ShapePredictor:
    return ShapePredictor(_cached_model(path, mtime_ns, size))


def _check_image(image: np.ndarray) -> npt.NDArray[np.uint8]:
    img = np.asarray(image)
    if img.ndim != 3 or img.shape[2] != 3 or img.dtype != np.uint8:
        raise ValueError(
            f"expected an RGB uint8 image of shape (H, W, 3), got {img.dtype} {img.shape}"
        )
    return img
