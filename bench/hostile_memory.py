"""Peak memory of ``faceprint identify`` on the worst inputs of the hostile-input corpus.

Each case runs in a fresh child process; its peak resident memory is the child's own
``ru_maxrss`` (from ``os.wait4``). For comparison: a command that fails before loading any
model (the process itself), identify on a normal photo (the models' footprint), the decode
budget, and three threads decoding the 100 MP JPEG at once in one process (a server
receiving three such uploads).

The service cases start ``faceprint serve`` afresh for each case (on the bench's gallery, or
``--database URL``) and report its peak RSS and the most bytes it held in open files
(spooled uploads): one normal photo (the models' footprint), a chunked 1 GB body without
Content-Length (cut off at the body limit), and ``--clients`` (10) simultaneous uploads of
each 100 MP image (the decode and upload slots bound them).

The inputs are built by tests/hostile.py in a temporary directory. To measure another
version of faceprint, point PYTHONPATH at its ``src``:

    python bench/hostile_memory.py
    python bench/hostile_memory.py --no-cli            # the service cases only
    PYTHONPATH=/path/to/other/src python bench/hostile_memory.py --no-service

With ``--estimates``: the decode budget's estimate of each format's peak memory next to
the measured peak of decoding a 20 MP photo-like image in that format (the estimate must
not be lower, or the budget would let more through than it says).

Figures depend on the machine's load (times especially); memory figures are stable.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import resource
import select
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
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


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Server:
    """``faceprint serve`` in a child process; its peak RSS once stopped, and the bytes of
    the files it holds open (spooled uploads are unlinked temporary files: only their
    open descriptors show them) sampled while it runs."""

    def __init__(self, cli: list[str], where: list[str]) -> None:
        self.port = _free_port()
        cmd = [*cli, "serve", *where, "--port", str(self.port), "--log-level", "error"]
        self.child = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        self.disk = 0
        self._stop = threading.Event()
        deadline = time.monotonic() + 120
        while True:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                    break
            except OSError:
                if time.monotonic() > deadline or self.child.poll() is not None:
                    raise RuntimeError("the service did not start") from None
                time.sleep(0.2)
        self._sampler = threading.Thread(target=self._sample, daemon=True)
        self._sampler.start()

    def _sample(self) -> None:
        fds = Path(f"/proc/{self.child.pid}/fd")
        while not self._stop.is_set():
            total = 0
            for fd in list(fds.iterdir()) if fds.exists() else []:
                with contextlib.suppress(OSError):
                    st = os.stat(fd)
                    total += st.st_size if stat.S_ISREG(st.st_mode) else 0
            self.disk = max(self.disk, total)
            time.sleep(0.02)

    def stop(self) -> float:
        """Stop it; its peak RSS (MB)."""
        self._stop.set()
        self.child.send_signal(signal.SIGINT)
        try:
            _, _, usage = _wait4(self.child.pid, 60)
        except TimeoutError:
            self.child.kill()
            _, _, usage = os.wait4(self.child.pid, 0)
        self.child.returncode = 0
        return usage.ru_maxrss / 1024


def _wait4(pid: int, timeout: float) -> tuple[int, int, resource.struct_rusage]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = os.wait4(pid, os.WNOHANG)
        if found[0]:
            return found
        time.sleep(0.05)
    raise TimeoutError


def _status(answer: bytes) -> int:
    head = answer.split(b"\r\n", 1)[0].split()
    return int(head[1]) if len(head) > 1 and head[1].isdigit() else 0


def _post(port: int, token: str, path: str, ctype: str, body: bytes) -> int:
    """A whole request with Content-Length; the status (0: no answer)."""
    head = (
        f"POST {path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\n"
        f"Content-Type: {ctype}\r\nContent-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    )
    with socket.create_connection(("127.0.0.1", port), timeout=600) as s:
        s.sendall(head.encode() + body)
        answer = b""
        while chunk := s.recv(65536):
            answer += chunk
    return _status(answer)


def _chunked(port: int, token: str, total: int) -> tuple[int, int]:
    """A chunked multipart upload of ``total`` bytes (no Content-Length) to /detect; the
    status and how many bytes had been sent when the answer came."""
    head = (
        f"POST /detect HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\n"
        "Content-Type: multipart/form-data; boundary=x\r\nTransfer-Encoding: chunked\r\n\r\n"
    )
    part = b'--x\r\nContent-Disposition: form-data; name="file"; filename="a.jpg"\r\n\r\n'
    block = b"\xff" * (1 << 20)
    chunk = f"{len(block):x}\r\n".encode() + block + b"\r\n"
    sent, answer = 0, b""
    with socket.create_connection(("127.0.0.1", port), timeout=120) as s:
        s.sendall(head.encode() + f"{len(part):x}\r\n".encode() + part + b"\r\n")
        s.setblocking(False)
        while sent < total and b"\r\n" not in answer:
            readable, writable, _ = select.select([s], [s], [], 5)
            if readable:
                data = s.recv(65536)
                if not data:
                    break
                answer += data
            elif writable:
                try:
                    sent += s.send(chunk)
                except (BrokenPipeError, ConnectionResetError, BlockingIOError):
                    break
        s.setblocking(True)
        s.settimeout(30)
        with contextlib.suppress(OSError):
            while b"\r\n" not in answer and (data := s.recv(65536)):
                answer += data
    return _status(answer), sent


def _multipart(path: str) -> bytes:
    data = Path(path).read_bytes()
    return (
        b'--x\r\nContent-Disposition: form-data; name="file"; filename="a"\r\n'
        b"Content-Type: application/octet-stream\r\n\r\n" + data + b"\r\n--x--\r\n"
    )


def service_cases(cli: list[str], where: list[str], paths: dict[str, str], clients: int) -> None:
    """The service's peak RSS (a fresh server per case) and the most bytes it held in
    files: a normal photo, a chunked 1 GB body, ``clients`` concurrent 100 MP uploads."""
    made = subprocess.run([*cli, "api-keys", "create", "--collections", "*", "--role", "admin",
                           "--burst", "1000", *where], capture_output=True,
                          text=True, check=True)  # fmt: skip
    token = made.stdout.split()[0]
    ctype = "multipart/form-data; boundary=x"
    print(
        f"\n{'service case (fresh server each)':40} {'peak RSS':>10} {'files':>9} {'time':>7}"
        "  statuses"
    )
    normal = _multipart(str(FACES / "img10.jpg"))

    def one(port: int) -> str:
        return str(_post(port, token, "/detect", ctype, normal))

    def chunked(port: int) -> str:
        status, sent = _chunked(port, token, 10**9)
        return f"{status} after {sent / 1e6:.0f} MB sent"

    cases: list[tuple[str, Callable[[int], str]]] = [
        ("1 normal photo (models footprint)", one),
        ("chunked 1 GB body, no Content-Length", chunked),
    ]
    for name in ("png16_real_10000x10000", "png8_real_rgb_10000x10000", "jpeg_real_100mp"):
        body = _multipart(paths[name])

        def many(port: int, body: bytes = body) -> str:
            with ThreadPoolExecutor(clients) as pool:
                codes = list(pool.map(lambda _: _post(port, token, "/detect", ctype, body),
                                      range(clients)))  # fmt: skip
            return " ".join(f"{codes.count(c)}x{c}" for c in sorted(set(codes)))

        cases.append((f"{clients} concurrent {name}", many))
    for label, run in cases:
        server = Server(cli, where)  # the default upload limit (10 MB a file)
        start = time.perf_counter()
        try:
            outcome = run(server.port)
        finally:
            seconds = time.perf_counter() - start
            rss = server.stop()
        disk = f"{server.disk / 1e6:.0f} MB"
        print(f"{label:40} {rss:>7.0f} MB {disk:>9} {seconds:>6.1f}s  {outcome}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--timeout", type=float, default=600, help="seconds per case")
    parser.add_argument("--estimates", action="store_true", help="estimate vs measured")
    parser.add_argument("--clients", type=int, default=10, help="concurrent 100 MP uploads")
    parser.add_argument("--no-service", action="store_true", help="skip the service cases")
    parser.add_argument("--database", metavar="URL", help="serve PostgreSQL, not the gallery")
    parser.add_argument("--no-cli", action="store_true", help="skip the command-line cases")
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
        rows: list[tuple[str, list[str]]] = (
            []
            if args.no_cli
            else [
                ("process only (missing file)", [*cli, "identify", str(work / "none.jpg")]),
                ("models: identify img10.jpg", [*cli, "identify", str(FACES / "img10.jpg")]),
            ]
        )
        rows += [] if args.no_cli else [(n, [*cli, "identify", paths[n]]) for n in WORST]
        print(f"{'case':34} {'file':>9} {'peak RSS':>10} {'time':>8}  exit  message")
        for name, cmd in rows:
            target = Path(cmd[-1])
            size = f"{target.stat().st_size / 1e6:.1f} MB" if target.exists() else "-"
            rss, seconds, code, msg = peak([*cmd, "--gallery", gallery, "-q"], args.timeout)
            print(f"{name:34} {size:>9} {rss:>7.0f} MB {seconds:>7.1f}s  {code:>4}  {msg[-90:]}")
        if not args.no_cli:
            threads = [sys.executable, "-c", _THREADS, paths["jpeg_real_100mp"]]
            rss, seconds, code, msg = peak(threads, args.timeout)
            label = "3 threads load the 100 MP JPEG"
            print(f"{label:34} {'':>9} {rss:>7.0f} MB {seconds:>7.1f}s  {code:>4}  {msg[-90:]}")
        if not args.no_service:
            where = ["--database", args.database] if args.database else ["--gallery", gallery]
            service_cases(cli, where, paths, args.clients)
        floor = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(f"(this script's own peak, a floor for every figure: {floor:.0f} MB)")


if __name__ == "__main__":
    main()
