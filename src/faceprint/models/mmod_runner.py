"""The runner of dlib's MMOD CNN face detector (``mmod_human_face_detector.dat``, CC0).

:mod:`faceprint.detect.mmod` builds the image pyramid canvas and decodes the score map;
this runner is the network between them: a canvas of raw RGB values (3 x H x W, or a
batch N x 3 x H x W) in, the score map (N x windows x H' x W') out. It also carries the
parsed network (:attr:`MmodRunner.model`: loss options, detector windows) and the map from
score-map cells back to canvas pixels (:attr:`MmodRunner.transform`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Self

from faceprint.models import dlib_dnn, store
from faceprint.models.dlib_layers import DnnModel
from faceprint.models.runner import FloatArray, OnnxRunner, as_batch
from faceprint.models.store import ModelFile


class MmodRunner(OnnxRunner[FloatArray]):
    """dlib's MMOD network converted to ONNX."""

    def __init__(self, spec: ModelFile, path: Path, model: DnnModel) -> None:
        super().__init__(spec, path)
        self.model = model
        #: (scale_y, offset_y, scale_x, offset_x): score map (r, c) -> canvas (y, x).
        self.transform = dlib_dnn.output_to_input_transform(model)

    @classmethod
    def load(cls, spec: ModelFile, model_dir: Path | str | None = None) -> Self:
        model = dlib_dnn.load_dnn(store.locate(spec, model_dir))
        return cls(spec, dlib_dnn.converted_onnx(spec, model_dir), model)

    def prepare(self, inputs: FloatArray) -> FloatArray:
        """A canvas (3, H, W) or canvases (N, 3, H, W) of raw RGB 0..255 as one batch."""
        return as_batch(inputs, 3)
