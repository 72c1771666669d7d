"""Added latency per face of the optional attributes: liveness (2 MiniFASNets) and expression.

    python bench/attributes_latency.py MODEL_DIR [--runs 7]

MODEL_DIR holds the two MiniFASNet .onnx files and the FER .hdf5. Faces are detected once
(largest face of each photo of ../shared/faces); each run times every face, and the median of
the per-run means is printed (noisy shared CPUs: use several runs). Model loading and the
one-off Keras->ONNX conversion happen in a warm-up pass and are reported separately.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import faceprint
from faceprint.attributes import expressions
from faceprint.liveness import liveness
from faceprint.types import Face, Image

SHARED = Path(__file__).resolve().parents[2] / "shared"


def per_face_ms(jobs: list[tuple[Image, Face]], fn: str, model_dir: Path) -> float:
    start = time.perf_counter()
    for image, face in jobs:
        if fn == "liveness":
            liveness(image, face, model_dir=model_dir)
        else:
            expressions(image, [face], model_dir=model_dir)
    return (time.perf_counter() - start) * 1000 / len(jobs)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("model_dir", type=Path)
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args()
    jobs: list[tuple[Image, Face]] = []
    for path in sorted((SHARED / "faces").glob("*.jpg")):
        image = faceprint.load_image(path)
        faces = faceprint.detect_faces(image)
        if faces:
            jobs.append((image, faces[0]))
    for fn in ("liveness", "expression"):
        start = time.perf_counter()
        per_face_ms(jobs[:1], fn, args.model_dir)
        first = (time.perf_counter() - start) * 1000
        runs = [per_face_ms(jobs, fn, args.model_dir) for _ in range(args.runs)]
        print(
            f"{fn:10s}: {statistics.median(runs):6.2f} ms per face (median of {args.runs} runs "
            f"over {len(jobs)} faces; min {min(runs):.2f}, max {max(runs):.2f}); "
            f"first call incl. loading {first:.0f} ms"
        )


if __name__ == "__main__":
    main()
