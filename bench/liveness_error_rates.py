"""APCER / BPCER of faceprint's passive liveness on the labelled samples we have.

    python bench/liveness_error_rates.py MODEL_DIR [--threshold 0.5]

Attacks: ../shared/faces/antispoof/image_F*.jpg; bona fide: image_T*.jpg, and every ordinary
photo of ../shared/faces (largest face). APCER = attacks accepted as live / attacks;
BPCER = bona fide rejected / bona fide (ISO/IEC 30107-3). Three samples are far too few to
estimate APCER; these figures only show that the pipeline behaves as the original project.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import faceprint
from faceprint.liveness import liveness

SHARED = Path(__file__).resolve().parents[2] / "shared"


def scores(paths: list[Path], model_dir: Path, threshold: float) -> list[tuple[str, float]]:
    out = []
    for path in paths:
        image = faceprint.load_image(path)
        faces = faceprint.detect_faces(image)
        if faces:
            out.append(
                (
                    path.name,
                    liveness(image, faces[0], threshold=threshold, model_dir=model_dir).score,
                )
            )
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("model_dir", type=Path)
    parser.add_argument("--threshold", type=float, default=0.5)
    args = parser.parse_args()
    spoof_dir = SHARED / "faces" / "antispoof"
    sets = {
        "attacks (antispoof F*)": sorted(spoof_dir.glob("image_F*.jpg")),
        "bona fide (antispoof T*)": sorted(spoof_dir.glob("image_T*.jpg")),
        "bona fide (ordinary photos)": sorted((SHARED / "faces").glob("*.jpg")),
    }
    for label, paths in sets.items():
        found = scores(paths, args.model_dir, args.threshold)
        attack = label.startswith("attacks")
        wrong = [(n, s) for n, s in found if (s >= args.threshold) == attack]
        rate = "APCER" if attack else "BPCER"
        print(f"{label:28s} {rate} {len(wrong)}/{len(found)} = {len(wrong) / len(found):.1%}")
        for name, score in wrong:
            print(f"    {name}: live score {score:.3f}")


if __name__ == "__main__":
    main()
