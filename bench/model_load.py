"""How long faceprint takes to read its dlib model files, cold (parse the .dat) and warm.

Each whole load runs in a fresh Python process with its own cache directory, so nothing
is memoised in memory (medians over the repeats):

* the import of the shape predictor module, timed on its own;
* ``ShapePredictor.load()`` cold (an empty cache: parse the .dat, write the parsed arrays
  to the cache) and warm (the cache filled: read the arrays back);
* parse only: ``read_shape_predictor`` / ``load_dnn`` in one process.

Usage: python bench/model_load.py [--repeats 5]
Figures depend on the machine's load; run it on an otherwise idle machine.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time

_LOAD = (
    "import time; t0 = time.perf_counter();"
    "from faceprint.align.shape_predictor import ShapePredictor;"
    "t1 = time.perf_counter(); ShapePredictor.load(); t2 = time.perf_counter();"
    "print(t1 - t0, t2 - t1)"
)


def _in_fresh_process(cache: str) -> tuple[float, float]:
    """(import seconds, load seconds) in a new interpreter using the given cache."""
    env_code = f"import os; os.environ['FACEPRINT_CACHE_DIR'] = {cache!r}\n" + _LOAD
    done = subprocess.run(
        [sys.executable, "-c", env_code], capture_output=True, text=True, check=True
    )
    imported, loaded = done.stdout.strip().splitlines()[-1].split()
    return float(imported), float(loaded)


def _median_ms(fn: object, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()  # type: ignore[operator]
        times.append(time.perf_counter() - start)
    return 1000 * statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    cold, warm, imports = [], [], []
    for _ in range(args.repeats):
        with tempfile.TemporaryDirectory() as cache:
            imported, loaded = _in_fresh_process(cache)
            imports.append(imported)
            cold.append(loaded)
            warm.append(_in_fresh_process(cache)[1])
    med = statistics.median
    print(f"import faceprint.align.shape_predictor: {1000 * med(imports):7.1f} ms")
    print(f"ShapePredictor.load(), cold cache:      {1000 * med(cold):7.1f} ms")
    print(f"ShapePredictor.load(), warm cache:      {1000 * med(warm):7.1f} ms")

    from faceprint.align.shape_predictor import read_shape_predictor
    from faceprint.models import packs, store
    from faceprint.models.dlib_dnn import load_dnn

    sp = store.locate(packs.SHAPE_PREDICTOR_5)
    ms = _median_ms(lambda: read_shape_predictor(sp), args.repeats)
    print(f"parse {packs.SHAPE_PREDICTOR_5.name:<34s}{ms:7.1f} ms")
    for spec in (packs.DLIB_RESNET, packs.MMOD_DETECTOR):
        path = store.locate(spec)
        ms = _median_ms(lambda p=path: load_dnn(p), args.repeats)
        print(f"parse {spec.name:<34s}{ms:7.1f} ms")


if __name__ == "__main__":
    main()
