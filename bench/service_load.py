"""Load test of the HTTP service on loopback: N concurrent clients identify real photos.

Creates a throw-away PostgreSQL database, starts ``faceprint serve`` on 127.0.0.1,
enrolls a few people from ../shared/faces, then runs ``--clients`` concurrent clients
(httpx, async) for ``--seconds`` and prints requests/s, p50/p99 latency and errors.
Bounded: loopback only, fixed duration, one run.

    python bench/service_load.py --clients 50 --seconds 30 [--runs 3]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import httpx
import psycopg

ROOT = Path(__file__).resolve().parents[1]
FACES = ROOT.parent / "shared" / "faces"
YUNET = ROOT.parent / "shared" / "models" / "yunet" / "face_detection_yunet_2023mar.onnx"
PROBES = ["img3.jpg", "img6.jpg", "img14.jpg", "img21.jpg", "img17.jpg", "img23.jpg"]
ENROLL = {"a": ["img1.jpg", "img2.jpg"], "b": ["img13.jpg"], "c": ["img20.jpg"], "d": ["img16.jpg"]}


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def _client(
    client: httpx.AsyncClient, stop: float, bodies: list[bytes], lat: list[float], errs: list[str]
) -> None:
    i = 0
    while time.monotonic() < stop:
        body = bodies[i % len(bodies)]
        i += 1
        t0 = time.perf_counter()
        try:
            r = await client.post("/collections/load/identify", files={"file": ("p.jpg", body)})
            if r.status_code != 200:
                errs.append(f"{r.status_code} {r.text[:100]}")
                continue
        except httpx.HTTPError as exc:
            errs.append(repr(exc))
            continue
        lat.append(time.perf_counter() - t0)


async def _load(
    url: str, token: str, clients: int, seconds: float
) -> tuple[float, list[float], list[str]]:
    bodies = [(FACES / p).read_bytes() for p in PROBES]
    lat: list[float] = []
    errs: list[str] = []
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    headers = {"Authorization": f"Bearer {token}"}
    async with httpx.AsyncClient(
        base_url=url, headers=headers, timeout=120, limits=limits
    ) as client:
        start = time.monotonic()
        stop = start + seconds
        await asyncio.gather(*(_client(client, stop, bodies, lat, errs) for _ in range(clients)))
        elapsed = time.monotonic() - start
    return len(lat) / elapsed, lat, errs


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pg", default="postgresql://postgres@127.0.0.1:5432/postgres")
    ap.add_argument("--clients", type=int, default=50)
    ap.add_argument("--seconds", type=float, default=30)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument(
        "--engine", choices=["postgresql", "sqlite"], default="postgresql",
        help="the store: a throw-away PostgreSQL database or a gallery file",
    )  # fmt: skip
    args = ap.parse_args()
    name = f"faceprint_bench_{uuid.uuid4().hex[:8]}"
    cache = Path(tempfile.mkdtemp(prefix="faceprint-bench-"))
    (cache / "models").mkdir()
    if YUNET.exists():
        shutil.copy(YUNET, cache / "models" / YUNET.name)
    env = {**os.environ, "FACEPRINT_CACHE_DIR": str(cache)}
    admin = None
    if args.engine == "postgresql":
        admin = psycopg.connect(args.pg, autocommit=True)
        admin.execute(f'CREATE DATABASE "{name}"')
        env["FACEPRINT_DATABASE"] = args.pg.rsplit("/", 1)[0] + "/" + name
    else:
        env.pop("FACEPRINT_DATABASE", None)
        env["FACEPRINT_GALLERY"] = str(cache / "service.db")
    faceprint = [sys.executable, "-m", "faceprint.cli.main"]
    server: subprocess.Popen[bytes] | None = None
    try:
        token = subprocess.run(
            [*faceprint, "api-keys", "create", "--role", "admin", "--collections", "*",
             "--rate", "100000", "--burst", "100000", "--daily-quota", "10000000"],
            env=env, check=True, capture_output=True, text=True,
        ).stdout.strip()  # fmt: skip
        port = _port()
        server = subprocess.Popen(
            [*faceprint, "serve", "--host", "127.0.0.1", "--port", str(port)]
            + ["--log-level", "warning"],
            env=env,
        )
        base = f"http://127.0.0.1:{port}"
        with httpx.Client(
            base_url=base, headers={"Authorization": f"Bearer {token}"}, timeout=120
        ) as c:
            for _ in range(100):
                try:
                    if c.get("/health").status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                time.sleep(0.2)
            c.post("/collections", json={"name": "load"}).raise_for_status()
            for person, photos in ENROLL.items():
                files = [("files", (p, (FACES / p).read_bytes())) for p in photos]
                c.post(f"/collections/load/people/{person}/faces", files=files).raise_for_status()
            c.post("/collections/load/identify", files={"file": (FACES / PROBES[0]).open("rb")})
        print(f"{args.engine}: {args.clients} clients, {args.seconds:g} s per run, "
              f"{os.cpu_count()} CPU cores")  # fmt: skip
        rates, p50s, p99s, errors = [], [], [], 0
        for run in range(args.runs):
            rate, lat, errs = asyncio.run(_load(base, token, args.clients, args.seconds))
            lat.sort()
            p50 = lat[len(lat) // 2] * 1000 if lat else float("nan")
            p99 = lat[min(len(lat) - 1, int(len(lat) * 0.99))] * 1000 if lat else float("nan")
            rates.append(rate)
            p50s.append(p50)
            p99s.append(p99)
            errors += len(errs)
            print(
                f"run {run + 1}: {len(lat)} requests, {rate:.1f} req/s, p50 {p50:.0f} ms, "
                f"p99 {p99:.0f} ms, errors {len(errs)}" + (f" (first: {errs[0]})" if errs else "")
            )
        print(
            f"median of {args.runs}: {statistics.median(rates):.1f} req/s, "
            f"p50 {statistics.median(p50s):.0f} ms, p99 {statistics.median(p99s):.0f} ms, "
            f"errors {errors}"
        )
    finally:
        if server is not None:
            server.terminate()
            server.wait(timeout=30)
        if admin is not None:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        shutil.rmtree(cache, ignore_errors=True)
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
