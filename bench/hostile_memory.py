"""Peak memory of ``faceprint identify`` on the worst inputs of the hostile-input corpus.

Each case runs in a fresh child process; its peak resident memory is the child's own
``ru_maxrss`` (from ``os.wait4``). For comparison: a command that fails before loading any
model (the process itself), identify on a normal photo (the models' footprint), the decode
budget, and three threads decoding the 100 MP JPEG at once in one process (a server
receiving three such uploads).

The inputs are built by tests/hostile.py in a temporary directory. To measure another
version of faceprint, point PYTHONPATH at its ``src``:

    python bench/hostile_memory.py
    PYTHONPATH=/path/to/other/src python bench/hostile_memory.py

With ``--estimates``: the decode budget's estimate of each format's peak memory next to
the measured peak of decoding a 20 MP photo-like image in that format (the estimate must
not be lower, or the budget would let more through than it says).

Figures depend on the machine's load (times especially); memory figures are stable.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FACES = ROOT.parent / "shared" / "faces"
WORST = ("png16_real_10000x10000", "jpeg_real_100mp", "png8_real_rgb_10000x10000", "sparse_3gb")
_THREADS = (
    "import sys, threading\n"
    "from faceprint.io import load_image\n"
    "def one():\n"
    "    try:\n"
    "        load_image(sys.argv[1])\n"
    "    except Exception as exc:\n"
    "        print(type(exc).__name__, exc, file=sys.stderr)\n"
    "workers = [threading.Thread(target=one) for _ in range(3)]\n"
    "[w.start() for w in workers]; [w.join() for w in workers]\n"
)
#: Built in a child process: Linux counts a parent's resident memory at fork/exec in the
#: child's ru_maxrss, so this process must stay small (it imports neither numpy nor Pillow).
_BUILD = (
    "import json, sys; from pathlib import Path; sys.path.insert(0, sys.argv[1])\n"
    "from tests import hostile\n"
    "cases = hostile.build(Path(sys.argv[2]), {'bomb', 'filesystem'})\n"
    "print(json.dumps({c.name: str(c.path) for c in cases}))\n"
)
_BUDGET = (
    "try:\n    from faceprint.io.limits import decode_budget, max_decodes\n"
    "except ImportError:\n    print('none (no decode budget in this version)')\n"
    "else:\n    print(f'{decode_budget() / 1e6:.0f} MB per decode, {max_decodes()} at once')\n"
)


def peak(cmd: list[str], timeout: float) -> tuple[float, float, int, str]:
    """(peak RSS in MB, seconds, exit code, last stderr line) of a child process."""
    with tempfile.TemporaryFile() as err:
        start = time.perf_counter()
        child = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=err)
        deadline = start + timeout
        while True:
            pid, status, usage = os.wait4(child.pid, os.WNOHANG)
            if pid:
                break
            if time.perf_counter() > deadline:
                child.kill()
                pid, status, usage = os.wait4(child.pid, 0)
                break
            time.sleep(0.05)
        child.returncode = os.waitstatus_to_exitcode(status)  # reaped here, not by Popen
        seconds = time.perf_counter() - start
        err.seek(0)
        lines = err.read().decode(errors="replace").strip().splitlines()
    return usage.ru_maxrss / 1024, seconds, child.returncode, lines[-1] if lines else ""


_MAKE = (
    "import sys, numpy as np; from PIL import Image; import pillow_heif\n"
    "pillow_heif.register_heif_opener(); out = sys.argv[1]\n"
    "noise = np.random.default_rng(0).integers(0, 255, (500, 625, 3), dtype=np.uint8)\n"
    "im = Image.fromarray(noise).resize((5000, 4000), Image.BILINEAR)\n"
    "exif = Image.Exif(); exif[0x0112] = 6\n"
    "im.save(f'{out}/baseline.jpg', quality=90)\n"
    "im.save(f'{out}/progressive.jpg', quality=90, progressive=True)\n"
    "im.save(f'{out}/progressive-444.jpg', quality=90, progressive=True, subsampling=0)\n"
    "im.save(f'{out}/rotated.jpg', quality=90, exif=exif.tobytes())\n"
    "im.save(f'{out}/rgb.png'); im.convert('RGBA').save(f'{out}/rgba.png')\n"
    "Image.fromarray(np.asarray(im.convert('L')).astype(np.uint16) * 257).save(f'{out}/16.png')\n"
    "im.save(f'{out}/raw.tif'); im.save(f'{out}/lzw.tif', compression='tiff_lzw')\n"
    "im.save(f'{out}/lossy.webp', quality=80); im.save(f'{out}/photo.avif', quality=60)\n"
    "im.save(f'{out}/photo.heic', quality=60); im.convert('P').save(f'{out}/palette.gif')\n"
    "im.save(f'{out}/photo.bmp')\n"
)
_MEASURE = (
    "import resource, sys; import pillow_heif\n"
    "from faceprint.io import budget, decode, formats, metadata\n"
    "data = open(sys.argv[1], 'rb').read()\n"
    "kind = formats.identify(data, 'x'); im = formats.open_as(data, kind, 'x')\n"
    "turn = metadata.read_metadata(im, kind).orientation != 1\n"
    "scans = budget.jpeg_scans(data) if kind == 'JPEG' else 0\n"
    "_, cost = budget.plan(im, kind, len(data), rotates=turn, scans=scans, budget=10**12)\n"
    "im.close(); before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
    "decode(data); after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
    "print(kind, cost - len(data), (after - before) * 1024)\n"
)


def estimates() -> None:
    """The budget's estimate next to the measured peak of a 20 MP decode, per format."""
    with tempfile.TemporaryDirectory(prefix="decode-estimates-") as tmp:
        subprocess.run([sys.executable, "-c", _MAKE, tmp], check=True)
        env = {**os.environ, "FACEPRINT_DECODE_BUDGET": "100GB"}
        print(f"{'5000x4000 file':22} {'format':6} {'estimate':>10} {'measured':>10}  (MB)")
        for path in sorted(Path(tmp).iterdir()):
            cmd = [sys.executable, "-c", _MEASURE, str(path)]
            done = subprocess.run(cmd, capture_output=True, text=True, env=env, check=True)
            kind, cost, used = done.stdout.split()
            print(f"{path.name:22} {kind:6} {int(cost) / 1e6:>10.0f} {int(used) / 1e6:>10.0f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--timeout", type=float, default=600, help="seconds per case")
    parser.add_argument("--estimates", action="store_true", help="estimate vs measured")
    args = parser.parse_args()
    if args.estimates:
        estimates()
        return
    cli = [sys.executable, "-m", "faceprint.cli.main"]
    with tempfile.TemporaryDirectory(prefix="hostile-memory-") as tmp:
        work = Path(tmp)
        built = [sys.executable, "-c", _BUILD, str(ROOT), str(work / "corpus")]
        paths = json.loads(subprocess.run(built, check=True, capture_output=True).stdout)
        gallery = str(work / "g.db")
        enroll = [*cli, "enroll", "mark", str(FACES / "img13.jpg"), "--gallery", gallery, "-q"]
        subprocess.run(enroll, check=True, capture_output=True)
        budget = subprocess.run([sys.executable, "-c", _BUDGET], capture_output=True, text=True)
        print(f"faceprint from: {os.environ.get('PYTHONPATH') or 'the installed package'}")
        print(f"decode budget: {budget.stdout.strip() or budget.stderr.strip()[-200:]}")
        rows = [
            ("process only (missing file)", [*cli, "identify", str(work / "none.jpg")]),
            ("models: identify img10.jpg", [*cli, "identify", str(FACES / "img10.jpg")]),
        ]
        rows += [(name, [*cli, "identify", paths[name]]) for name in WORST]
        print(f"{'case':34} {'file':>9} {'peak RSS':>10} {'time':>8}  exit  message")
        for name, cmd in rows:
            target = Path(cmd[-1])
            size = f"{target.stat().st_size / 1e6:.1f} MB" if target.exists() else "-"
            rss, seconds, code, msg = peak([*cmd, "--gallery", gallery, "-q"], args.timeout)
            print(f"{name:34} {size:>9} {rss:>7.0f} MB {seconds:>7.1f}s  {code:>4}  {msg[-90:]}")
        threads = [sys.executable, "-c", _THREADS, paths["jpeg_real_100mp"]]
        rss, seconds, code, msg = peak(threads, args.timeout)
        label = "3 threads load the 100 MP JPEG"
        print(f"{label:34} {'':>9} {rss:>7.0f} MB {seconds:>7.1f}s  {code:>4}  {msg[-90:]}")
        floor = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(f"(this script's own peak, a floor for every figure: {floor:.0f} MB)")


if __name__ == "__main__":
    main()
