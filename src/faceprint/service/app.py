"""The FastAPI application: routes, JSON errors, upload limit and the audit log."""

from __future__ import annotations

import math
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from fastapi import FastAPI, HTTPException, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse
from starlette.concurrency import run_in_threadpool

import faceprint
from faceprint.errors import FaceprintError, GalleryError, ImageError, ModelError, NoFaceError
from faceprint.gallery.postgres import PostgresDatabase
from faceprint.gallery.store import NotFoundError
from faceprint.models.packs import DEFAULT_PACK
from faceprint.service import routes_gallery, routes_recognise
from faceprint.service.auth import AuthError, KeyRing
from faceprint.service.batching import MicroBatcher
from faceprint.service.deps import DEFAULT_MAX_UPLOAD, ServiceState
from faceprint.service.routes_gallery import MAX_FILES

PAGE = Path(__file__).with_name("static") / "index.html"
#: Multipart framing allowed on top of the per-file limit before a body is refused unread.
_OVERHEAD = 64 * 1024


def _status(exc: FaceprintError) -> int:
    if isinstance(exc, AuthError):
        return exc.status
    if isinstance(exc, NotFoundError):
        return 404
    if isinstance(exc, ImageError):
        return 415
    if isinstance(exc, NoFaceError):
        return 422
    if isinstance(exc, GalleryError):
        return 409
    if isinstance(exc, ModelError):
        return 503  # a model file the server was not given: the operator must fix it
    return 422


def _error(status: int, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": message, "status": status}, status_code=status, headers=headers)


def create_app(
    db: PostgresDatabase,
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
        db=db,
        keys=KeyRing(db),
        batcher=batcher,
        max_upload=max_upload,
        detector=detector,
        model_dir=model_dir,
    )
    app.include_router(routes_gallery.router)
    app.include_router(routes_recognise.router)

    @app.exception_handler(FaceprintError)
    async def on_faceprint_error(request: Request, exc: FaceprintError) -> JSONResponse:
        headers = None
        if isinstance(exc, AuthError) and exc.retry_after is not None:
            headers = {"Retry-After": str(max(1, math.ceil(exc.retry_after)))}
        return _error(_status(exc), str(exc), headers)

    @app.exception_handler(HTTPException)
    async def on_http_error(request: Request, exc: HTTPException) -> JSONResponse:
        return _error(exc.status_code, str(exc.detail), dict(exc.headers or {}))

    @app.exception_handler(RequestValidationError)
    async def on_invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        parts = []
        for err in exc.errors():
            where = ".".join(str(p) for p in err.get("loc", ()) if p != "body")
            parts.append(f"{where}: {err.get('msg', 'invalid')}")
        return _error(422, "invalid request: " + "; ".join(parts))

    @app.middleware("http")
    async def audit(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        start = time.perf_counter()
        length = request.headers.get("content-length", "")
        if length.isdigit() and int(length) > max_upload * MAX_FILES + _OVERHEAD:
            response: Response = _error(413, f"request body is larger than {max_upload} bytes")
        else:
            response = await call_next(request)
        path = request.url.path
        route = request.scope.get("route")
        if path not in ("/", "/health", "/version", "/openapi.json", "/docs"):
            row = (
                getattr(request.state, "key_id", None),
                request.method,
                getattr(route, "path", path),
                getattr(request.state, "collection", None),
                getattr(request.state, "result_size", None),
                response.status_code,
                (time.perf_counter() - start) * 1000,
            )
            await run_in_threadpool(_write_audit, db, row)
        return response

    @app.get("/health", tags=["service"])
    def health() -> JSONResponse:
        try:
            with db.pool.connection(timeout=5) as conn:
                conn.execute("SELECT 1")
        except Exception as exc:  # any database failure means "not healthy"
            return _error(503, f"database unavailable: {exc}")
        return JSONResponse({"status": "ok"})

    @app.get("/version", tags=["service"])
    def version() -> dict[str, Any]:
        return {
            "faceprint": faceprint.__version__,
            "schema": db.schema_version,
            "pack": DEFAULT_PACK.id,
            "search": "pgvector-hnsw" if db.vector else "exact-in-process",
        }

    @app.get("/", include_in_schema=False)
    def page() -> HTMLResponse:
        return HTMLResponse(PAGE.read_text(encoding="utf-8"))

    return app


def _write_audit(db: PostgresDatabase, row: tuple[Any, ...]) -> None:
    """One audit row per request: who, what, where, how many results, status, time.
    Never the image or a template."""
    with db.pool.connection() as conn:
        conn.execute(
            "INSERT INTO audit(key_id, method, endpoint, collection, result_size, status, ms) "
            "VALUES (%s, %s, %s, %s, %s, %s, %s)",
            row,
        )
