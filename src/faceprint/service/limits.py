"""The request-body limit, enforced while the body streams in.

A ``Content-Length`` over the limit is refused before anything is read (in the app); a
chunked body without one is counted as it arrives and cut off at the limit, so nothing
beyond it is ever spooled to memory or disk. Requests carrying uploads are worked on a
few at a time (:class:`UploadSlots`), so N simultaneous large photos cannot hold N decoded
images.
"""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send


class BodyTooLarge(HTTPException):
    """A request body went past the limit while streaming (413; FastAPI re-raises an
    HTTPException from the body reader as it is)."""

    def __init__(self, limit: int) -> None:
        super().__init__(413, f"request body is larger than {limit} bytes")


class BodyLimit:
    """ASGI middleware: raises BodyTooLarge from ``receive`` once ``limit`` bytes passed."""

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        seen = 0

        async def limited() -> Message:
            nonlocal seen
            message: dict[str, Any] = dict(await receive())
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.limit:
                    raise BodyTooLarge(self.limit)
            return message

        await self.app(scope, limited, send)


def upload_slots() -> int:
    """How many requests with uploads are worked on at once (``FACEPRINT_MAX_UPLOADS``;
    default twice the decode slots: one decoding, one detecting, per slot)."""
    from faceprint.io.limits import _positive_int, max_decodes

    return _positive_int("FACEPRINT_MAX_UPLOADS", 2 * max_decodes())


class UploadSlots:
    """ASGI middleware: at most ``limit`` requests carrying uploads (multipart bodies) are
    in the app at once; the others wait before their body is read. A decoded photo lives
    until its request ends, so the decode slots alone would let N waiting requests hold N
    decoded images; this bounds them (and the spooled uploads) to ``limit``."""

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app = app
        self.limit = limit
        self._slots: asyncio.Semaphore | None = None  # made in the server's event loop

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not _multipart(scope):
            await self.app(scope, receive, send)
            return
        if self._slots is None:
            self._slots = asyncio.Semaphore(self.limit)
        async with self._slots:
            await self.app(scope, receive, send)


def _multipart(scope: Scope) -> bool:
    for key, value in scope.get("headers", ()):
        if key == b"content-type":
            return bool(value[:20].lower().startswith(b"multipart/"))
    return False
