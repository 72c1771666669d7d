"""Encrypted 1:N search speed and agreement with plaintext search.

Real embeddings of ../shared/faces plus random unit vectors up to 1,000 and 10,000
templates. Prints medians of several runs (the machine may be shared: say so).

    python bench/encrypted_search.py [--sizes 1000,10000] [--runs 5]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

import faceprint
from faceprint.match.search import ExactIndex
from faceprint.privacy import CaptureClient, KeyHolder, MatchingServer, create_keys
from faceprint.privacy.he import He

FACES = Path(__file__).resolve().parents[2] / "shared" / "faces"


def real_embeddings(limit: int) -> np.ndarray:
    out = []
    for path in sorted(FACES.glob("img*.jpg"))[:limit]:
        face = faceprint.embed_faces(path)[0]
        if face is not None and face.embedding is not None:
            out.append(face.embedding)
    return np.stack(out).astype(np.float64)


def median_ms(fn: object, runs: int) -> tuple[float, object]:
    times, result = [], None
    for _ in range(runs):
        t = time.perf_counter()
        result = fn()  # type: ignore[operator]
        times.append((time.perf_counter() - t) * 1000)
    return statistics.median(times), result


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", default="1000,10000")
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--real", type=int, default=40, help="real photos to embed")
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    real = real_embeddings(args.real)
    probes, enrolled = real[::2], real[1::2]
    print(f"{len(real)} real embeddings: {len(enrolled)} enrolled, {len(probes)} probes")
    he = He()
    with tempfile.TemporaryDirectory() as tmp:
        keys = Path(tmp) / "keys"
        create_keys(keys, he)
        holder, client = KeyHolder(keys, he), CaptureClient(keys, he)
        for n in [int(s) for s in args.sizes.split(",")]:
            fill = rng.standard_normal((n - len(enrolled), enrolled.shape[1]))
            emb = np.vstack([enrolled, fill / np.linalg.norm(fill, axis=1, keepdims=True)])
            names = [f"p{i}" for i in range(n)]
            enc = Path(tmp) / f"g{n}.enc"
            t = time.perf_counter()
            holder.encrypt_gallery(enc, emb, names, list(range(n)), pack="x", threshold=0.5)
            t_enc = time.perf_counter() - t
            server = MatchingServer(enc, keys, he)
            exact = ExactIndex(emb.astype(np.float32), np.arange(n, dtype=np.int64))
            agree, worst = 0, 0.0
            for p in probes:
                scores = holder.decrypt_scores(server.gallery, server.score(p))[:n]
                worst = max(worst, float(np.abs(scores - emb @ p).max()))
                agree += (
                    int(np.argmax(scores))
                    == exact.search(p[None, :].astype(np.float32))[0][0].person
                )
            p = probes[0]
            t_plain, blocks = median_ms(lambda p=p, s=server: s.score(p), args.runs)
            t_dec, _ = median_ms(lambda b=blocks, s=server: holder.decide(s.gallery, b), args.runs)
            t_cli, cts = median_ms(lambda p=p: client.encrypt_probe(p), max(2, args.runs // 2))
            t_srv, eblocks = median_ms(lambda c=cts, s=server: s.score_encrypted(c), args.runs)
            escores = holder.decrypt_scores(server.gallery, eblocks)[:n]
            eworst = float(np.abs(escores - emb @ p).max())
            print(
                f"N={n:>6} ({server.gallery.blocks} block(s)): encrypt gallery {t_enc:.1f} s"
                f" | server, plaintext probe {t_plain:.0f} ms | server, encrypted probe"
                f" {t_srv:.0f} ms | client encrypts probe {t_cli:.0f} ms | key holder decrypts"
                f"+decides {t_dec:.1f} ms | top-1 = plaintext {agree}/{len(probes)} | max |score"
                f" error| {worst:.1e} (plain probe), {eworst:.1e} (encrypted probe)"
            )
    print(f"medians of {args.runs} runs; 2 CPU cores shared with other work (noisy)")


if __name__ == "__main__":
    main()
