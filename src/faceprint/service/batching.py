"""A micro-batcher: faces of requests arriving within a few ms are embedded in one call.

Request threads detect faces themselves (per image), then hand (image, faces) to the
batcher and wait; one worker thread gathers whatever arrives within ``window`` seconds
(up to ``max_faces``) and runs ``embed_many`` once for all of it.
"""

from __future__ import annotations

import queue
import threading
import time
from concurrent.futures import Future
from pathlib import Path

from faceprint.embed import embed_many
from faceprint.models.packs import Pack
from faceprint.types import Face, Image

_Item = tuple[Image, list[Face], Pack | None, "Future[list[Face]]"]


class MicroBatcher:
    def __init__(
        self,
        *,
        window: float = 0.004,
        max_faces: int = 32,
        model_dir: str | Path | None = None,
    ) -> None:
        self.window = window
        self.max_faces = max_faces
        self.model_dir = model_dir
        self.batches = 0  # ONNX calls made, for tests and stats
        self.items = 0  # requests served
        self._queue: queue.Queue[_Item | None] = queue.Queue()
        self._thread = threading.Thread(target=self._run, name="faceprint-batcher", daemon=True)
        self._thread.start()

    def embed(
        self, image: Image, faces: list[Face], *, pack: Pack | None = None, timeout: float = 60.0
    ) -> list[Face]:
        """Embed the faces of one image (blocks until its batch has run)."""
        if not faces:
            return faces
        fut: Future[list[Face]] = Future()
        self._queue.put((image, faces, pack, fut))
        return fut.result(timeout=timeout)

    def close(self) -> None:
        self._queue.put(None)
        self._thread.join(timeout=5)

    def _run(self) -> None:
        while True:
            first = self._queue.get()
            if first is None:
                return
            batch = [first]
            n = len(first[1])
            deadline = time.monotonic() + self.window
            while n < self.max_faces:
                remaining = deadline - time.monotonic()
                try:
                    if remaining > 0:
                        item = self._queue.get(timeout=remaining)
                    else:
                        item = self._queue.get_nowait()
                except queue.Empty:
                    break
                if item is None:
                    self._queue.put(None)  # stop after this batch
                    break
                batch.append(item)
                n += len(item[1])
            by_pack: dict[str | None, list[_Item]] = {}
            for item in batch:
                by_pack.setdefault(item[2].id if item[2] else None, []).append(item)
            for items in by_pack.values():
                self._run_batch(items)

    def _run_batch(self, batch: list[_Item]) -> None:
        try:
            out = embed_many(
                [(img, faces) for img, faces, _, _ in batch], pack=batch[0][2],
                model_dir=self.model_dir,
            )  # fmt: skip
        except BaseException as exc:  # hand the failure to every waiting request
            for *_, fut in batch:
                fut.set_exception(exc)
            return
        self.batches += 1
        self.items += len(batch)
        for (*_, fut), faces in zip(batch, out, strict=True):
            fut.set_result(faces)
