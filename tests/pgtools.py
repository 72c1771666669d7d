"""A real PostgreSQL for tests: one uniquely named database per test session, dropped after.

The server is $FACEPRINT_TEST_PG (default: postgresql://postgres@127.0.0.1:5432/postgres).
Without a server the tests skip locally but fail in CI (CI=true), so they never pass by
not running.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psycopg
import pytest

ADMIN_URL = os.environ.get("FACEPRINT_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres")


def _with_db(url: str, name: str) -> str:
    base, _, query = url.partition("?")
    base = base.rsplit("/", 1)[0] + "/" + name
    return base + ("?" + query if query else "")


@contextmanager
def temp_database(admin_url: str = ADMIN_URL) -> Iterator[str]:
    """Create ``faceprint_test_<random>``, yield its URL, drop it (closing stray sessions)."""
    try:
        admin = psycopg.connect(admin_url, autocommit=True, connect_timeout=5)
    except psycopg.OperationalError as exc:
        message = f"PostgreSQL is not reachable at {admin_url}: {exc}"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    name = f"faceprint_test_{uuid.uuid4().hex[:12]}"
    with admin:
        admin.execute(f'CREATE DATABASE "{name}"')
        try:
            yield _with_db(admin_url, name)
        finally:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@contextmanager
def opener_of(
    engine: str, tmp_path: Path, request: pytest.FixtureRequest, components: Any = None
) -> Iterator[Callable[[], Any]]:
    """A function opening (another connection to) one fresh database of ``engine``
    ("sqlite": a file in ``tmp_path``; "postgresql": the module's ``pg_url`` fixture),
    with ``components``; on exit the PostgreSQL database is left empty for the next test."""
    opened: list[Any] = []
    extra = {} if components is None else {"components": components}
    if engine == "sqlite":
        from faceprint.gallery.sqlite import SqliteDatabase

        def open_db() -> Any:
            opened.append(SqliteDatabase(tmp_path / "g.db", create=True, **extra))
            return opened[-1]
    else:
        from faceprint.gallery.postgres import PostgresDatabase

        url = request.getfixturevalue("pg_url")

        def open_db() -> Any:
            opened.append(PostgresDatabase(url, max_connections=4, **extra))
            return opened[-1]

    try:
        yield open_db
        if opened and engine != "sqlite":
            cleaner = opened[0]
            for c in cleaner.collections():
                cleaner.delete_collection(c.name)
            with cleaner.transaction() as tx:
                tx.execute("DELETE FROM db_meta")
    finally:
        for d in opened:
            d.close()
