"""The FastAPI application: routes, errors in one JSON shape, body limits and the audit log.

Every error, whatever raised it (the core, FastAPI's validation, the router's 404/405, a
body over the limit, a bug), is answered as ``{"error": message, "status": code}`` and
audited; bad input is never a 500.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

import faceprint
from faceprint.errors import (
    AuthError,
    FaceprintError,
    GalleryError,
    ImageError,
    ModelError,
    NoFaceError,
    NotFoundError,
    SpoofError,
)  # fmt: skip
from faceprint.gallery.database import Conflict, Database
from faceprint.models.packs import DEFAULT_PACK
from faceprint.service import routes_gallery, routes_library, routes_recognise
from faceprint.service.auth import KeyRing
from faceprint.service.batching import MicroBatcher
from faceprint.service.deps import DEFAULT_MAX_UPLOAD, ServiceState, client_address
from faceprint.service.limits import BodyLimit, UploadSlots, upload_slots
from faceprint.service.routes_gallery import MAX_FILES

PAGE = Path(__file__).with_name("static") / "index.html"
#: Multipart framing allowed on top of the per-file limit.
_OVERHEAD = 64 * 1024
_UNAUDITED = ("/", "/people", "/health", "/version", "/openapi.json", "/docs")
log = logging.getLogger("faceprint.service")


def status_of(exc: FaceprintError) -> int:
    if isinstance(exc, AuthError):
        return exc.status
    if isinstance(exc, NotFoundError):
        return 404
    if isinstance(exc, ImageError):
        return 415
    if isinstance(exc, NoFaceError | SpoofError):
        return 422
    if isinstance(exc, Conflict):
        return 409
    if isinstance(exc, GalleryError):
        return 422 if "quality" in str(exc) or "faces of similar" in str(exc) else 409
    if isinstance(exc, ModelError):
        return 503  # a model file the server was not given: the operator must fix it
    return 422


def error(status: int, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": message, "status": status}, status_code=status, headers=headers)


def _clean(value: Any, limit: int = 200) -> Any:
    """Audit fields without NUL or control characters, bounded."""
    if not isinstance(value, str):
        return value
    return "".join(c if c.isprintable() else "?" for c in value[:limit])


def create_app(
    db: Database,
    *,
    max_upload: int = DEFAULT_MAX_UPLOAD,
    batch_window: float = 0.004,
    detector: str | None = None,
    model_dir: str | Path | None = None,
) -> FastAPI:
    batcher = MicroBatcher(window=batch_window, model_dir=model_dir)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        yield
        batcher.close()

    app = FastAPI(
        lifespan=lifespan,
        title="faceprint",
        version=faceprint.__version__,
        description="Face recognition service: collections, enrollment, detect, verify, "
        "identify. Send 'Authorization: Bearer <API key>' with every request.",
    )
    app.state.faceprint = ServiceState(
        db=db, keys=KeyRing(db), batcher=batcher, max_upload=max_upload, detector=detector,
        model_dir=model_dir,
    )  # fmt: skip
    app.include_router(routes_gallery.router)
    app.include_router(routes_recognise.router)
    app.include_router(routes_library.router)
    body_limit = max_upload * MAX_FILES + _OVERHEAD

    @app.exception_handler(FaceprintError)
    async def on_faceprint_error(request: Request, exc: FaceprintError) -> JSONResponse:
        headers = None
        if isinstance(exc, AuthError) and exc.retry_after is not None:
            headers = {"Retry-After": str(max(1, math.ceil(exc.retry_after)))}
        return error(status_of(exc), str(exc), headers)

    @app.exception_handler(StarletteHTTPException)
    async def on_http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        # a body that cannot be parsed (malformed JSON or multipart) is invalid input: 422
        status = 422 if exc.status_code == 400 else exc.status_code
        return error(status, str(exc.detail), dict(exc.headers or {}))

    @app.exception_handler(RequestValidationError)
    async def on_invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        parts = []
        for err in exc.errors()[:10]:
            where = ".".join(str(p) for p in err.get("loc", ()) if p != "body")
            parts.append(f"{_clean(where, 80)}: {_clean(str(err.get('msg', 'invalid')), 200)}")
        return error(422, "invalid request: " + "; ".join(parts))

    # Innermost (added before the audit middleware): the body reader raises its 413 in the
    # route's own call stack, where FastAPI passes an HTTPException on unchanged.
    app.add_middleware(BodyLimit, limit=body_limit)
    app.add_middleware(UploadSlots, limit=upload_slots())  # waits before the body is read

    @app.middleware("http")
    async def audit(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        start = time.perf_counter()
        length = request.headers.get("content-length", "")
        if length.isdigit() and int(length) > body_limit:
            response: Response = error(413, f"request body is larger than {body_limit} bytes")
        else:
            try:
                response = await call_next(request)
            except Exception:  # a bug, not bad input: logged, answered 500, audited
                log.exception("internal error on %s %s", request.method, request.url.path)
                response = error(500, "internal error (logged on the server)")
        path = request.url.path
        if path not in _UNAUDITED:
            route = request.scope.get("route")
            row = (
                time.time(),
                getattr(request.state, "key_id", None),
                _clean(client_address(request), 64),
                _clean(request.method, 16),
                _clean(getattr(route, "path", None) or path),
                _clean(getattr(request.state, "collection", None), 100),
                getattr(request.state, "result_size", None),
                response.status_code,
                (time.perf_counter() - start) * 1000,
                _clean(getattr(request.state, "event", None)),
            )
            try:
                await run_in_threadpool(_write_audit, db, row)
            except FaceprintError:
                log.exception("could not write the audit row")
        return response

    @app.get("/health", tags=["service"])
    def health() -> JSONResponse:
        try:
            with db.reading() as tx:
                tx.execute("SELECT 1")
        except FaceprintError:
            return error(503, "database unavailable")
        return JSONResponse({"status": "ok"})

    @app.get("/version", tags=["service"])
    def version() -> dict[str, Any]:
        return {
            "faceprint": faceprint.__version__,
            "schema": {
                "gallery": db.schema_version("gallery"),
                "service": db.schema_version("service"),
            },
            "engine": db.kind,
            "pack": DEFAULT_PACK.id,
        }

    @app.get("/", include_in_schema=False)
    def page() -> HTMLResponse:
        return HTMLResponse(PAGE.read_text(encoding="utf-8"))

    return app


def _write_audit(db: Database, row: tuple[Any, ...]) -> None:
    """One audit row per request: who, from where, what, how many results, status, time.
    Never the image or a template."""
    with db.transaction() as tx:
        tx.execute(
            "INSERT INTO audit(at, key_id, client, method, endpoint, collection, result_size, "
            "status, ms, event) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
            row,
        )
