"""dlib's shape predictor (cascade of regression trees) read and evaluated with numpy.

The model file is dlib's own serialization of ``dlib::shape_predictor``; it is parsed here
without dlib. Prediction reproduces dlib's arithmetic step by step: the detection box maps
the unit square to the image, each cascade level samples feature pixels placed relative to
the current shape through the similarity transform from the initial (mean) shape, the
pixel intensity of an RGB pixel is the integer mean ``(r + g + b) // 3`` (0 outside the
image), every tree compares two feature pixels against a threshold down to a leaf, and the
leaf vectors are added to the shape in tree order, in float32.

The file is read by :mod:`faceprint.align.shape_predictor_file`.
"""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np
import numpy.typing as npt

from faceprint.align.shape_predictor_file import (
    ShapePredictorModel,
    cached_model,
    parse_shape_predictor,
    read_shape_predictor,
)
from faceprint.errors import ModelError

FloatArray = npt.NDArray[np.float32]

__all__ = [
    "ShapePredictor",
    "ShapePredictorModel",
    "parse_shape_predictor",
    "read_shape_predictor",
]

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
    return ShapePredictor(cached_model(path, mtime_ns, size))


def _check_image(image: np.ndarray) -> npt.NDArray[np.uint8]:
    img = np.asarray(image)
    if img.ndim != 3 or img.shape[2] != 3 or img.dtype != np.uint8:
        raise ValueError(
            f"expected an RGB uint8 image of shape (H, W, 3), got {img.dtype} {img.shape}"
        )
    return img
