"""Check faceprint's ONNX conversion of the FER2013 mini-Xception against Keras itself.

Run with an interpreter that has Keras 3 (torch backend) *and* faceprint, e.g. a separate venv:

    python -m venv /tmp/kerasvenv && /tmp/kerasvenv/bin/pip install torch==2.13.0 keras h5py
    /tmp/kerasvenv/bin/pip install -e .
    KERAS_BACKEND=torch /tmp/kerasvenv/bin/python bench/fer_vs_keras.py [MODEL_DIR] [FACES_DIR]

Prints, over every face detected in the photos, the max abs difference of the 7 probabilities
and how often the top label agrees.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np

os.environ.setdefault("KERAS_BACKEND", "torch")

import keras  # noqa: E402

import faceprint  # noqa: E402
from faceprint.attributes.expression import expressions, face_tensor  # noqa: E402
from faceprint.models import store  # noqa: E402
from faceprint.models.packs import FER_MINI_XCEPTION  # noqa: E402

SHARED = Path(__file__).resolve().parents[2] / "shared"


def main() -> None:
    model_dir = Path(sys.argv[1]) if len(sys.argv) > 1 else SHARED / "models" / "fer"
    faces_dir = Path(sys.argv[2]) if len(sys.argv) > 2 else SHARED / "faces"
    model = keras.saving.load_model(store.locate(FER_MINI_XCEPTION, model_dir), compile=False)
    worst = 0.0
    agree = total = 0
    for path in sorted(faces_dir.glob("*.jpg")):
        image = faceprint.load_image(path)
        faces = faceprint.detect_faces(image)
        if not faces:
            continue
        ours = np.array(
            [list(e.probabilities.values()) for e in expressions(image, faces, model_dir=model_dir)]
        )
        theirs = np.asarray(
            model.predict(face_tensor(image, faces).transpose(0, 2, 3, 1), verbose=0)
        )
        diff = float(np.abs(ours - theirs).max())
        worst = max(worst, diff)
        agree += int((ours.argmax(1) == theirs.argmax(1)).sum())
        total += len(faces)
        print(f"{path.name:24s} faces {len(faces):2d}  max abs diff {diff:.2e}")
    print(f"{total} faces: max abs diff {worst:.2e}; top label agrees {agree}/{total}")


if __name__ == "__main__":
    main()
