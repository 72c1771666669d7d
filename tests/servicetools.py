"""A live faceprint service for tests, on each engine in turn (imported by the service
test modules: ``from tests.servicetools import service, ...``)."""

from __future__ import annotations

import io
import os
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
import uvicorn
from PIL import Image

from faceprint.gallery.database import Database
from faceprint.service.app import create_app
from faceprint.service.auth import create_key
from tests.conftest import FACES
from tests.pgtools import temp_database

MAX_UPLOAD = 3 * 1024 * 1024


@dataclass
class Service:
    url: str
    db: Database
    app: Any
    admin: str
    cli: list[str]  # how the CLI names this service's database

    def key(self, roles: list[str], collections: list[str], **kw: Any) -> str:
        token, _ = create_key(self.db, "test", roles, collections, **kw)
        return token

    def client(self, token: str | None) -> httpx.Client:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=120)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def database(engine: str, tmp: Path) -> Iterator[tuple[Database, list[str]]]:
    """A fresh database of the engine, with the service's tables, and its CLI options."""
    from faceprint.service.tables import COMPONENTS

    if engine == "sqlite":
        from faceprint.gallery.sqlite import SqliteDatabase

        path = tmp / "service.db"
        db: Database = SqliteDatabase(path, create=True, components=COMPONENTS)
        yield db, ["--gallery", str(path)]
        db.close()
        return
    from faceprint.gallery.postgres import PostgresDatabase

    with temp_database() as url:
        db = PostgresDatabase(url, components=COMPONENTS)
        yield db, ["--database", url]
        db.close()


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def service(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Service]:
    """The service live on loopback, on each engine in turn."""
    with database(request.param, tmp_path_factory.mktemp("service")) as (db, cli):
        app = create_app(db, max_upload=MAX_UPLOAD)
        with serving(app) as url:
            admin, _ = create_key(db, "admin", ["admin"], ["*"], rate=1000, burst=1000)
            yield Service(url, db, app, admin, cli)


@contextmanager
def serving(app: Any) -> Iterator[str]:
    """``app`` served by uvicorn on a free loopback port (in a thread); yields its URL."""
    port = _free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="error"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert time.monotonic() < deadline, "the service did not start"
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def photo(name: str) -> tuple[str, bytes, str]:
    return (name, (FACES / name).read_bytes(), "image/jpeg")


def no_face_png() -> bytes:
    """A real PNG (a smooth gradient) with no face in it."""
    ramp = np.linspace(0, 255, 320, dtype=np.uint8)
    img = np.stack([np.tile(ramp, (240, 1))] * 3, axis=-1)
    buf = io.BytesIO()
    Image.fromarray(img).save(buf, format="PNG")
    return buf.getvalue()


CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")


def chromium(width: int, height: int) -> Any:
    """A headless Debian Chromium under selenium (quit it when done); skipped where it is
    missing, but a failure in CI (CI=true)."""
    if not (CHROMIUM.exists() and CHROMEDRIVER.exists()):
        message = "Debian chromium and chromium-driver are needed (apt-get install ...)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service as DriverService

    opts = webdriver.ChromeOptions()
    opts.binary_location = str(CHROMIUM)
    for arg in ("--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                "--disable-background-networking", "--disable-component-update",
                f"--window-size={width},{height}"):  # fmt: skip
        opts.add_argument(arg)
    return webdriver.Chrome(options=opts, service=DriverService(str(CHROMEDRIVER)))
