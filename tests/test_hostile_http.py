"""Every HTTP endpoint over hostile requests, on each engine (tests/servicetools.py): NUL
bytes and odd values in paths, names, form fields and JSON; malformed multipart and JSON;
hostile images; chunked bodies without Content-Length past the limit; odd credentials.

Each answer is a documented 4xx (or a 2xx where the request is in fact valid), never a 500;
every error is ``{"error": message, "status": code}``; every request to an audited path
adds one audit row with the status it was answered; nothing is stored by a refused
request. The requests are tests/hostile_requests.py's, the image corpus tests/hostile.py's.
"""

from __future__ import annotations

import json
import socket
from collections.abc import Callable, Iterator

import httpx
import pytest

from tests import hostile
from tests.conftest import FACES
from tests.hostile_requests import (
    COLLECTION,
    JSON,
    MULTIPART,
    Probe,
    field_probes,
    image_probes,
    json_probes,
    library_probes,
    multipart_probes,
    path_probes,
)  # fmt: skip
from tests.servicetools import MAX_UPLOAD, Service, photo


@pytest.fixture(scope="module")
def team(service: Service) -> str:
    """A collection with one person enrolled (so searches reach the photo)."""
    with service.client(service.admin) as c:
        assert c.post("/collections", json={"name": COLLECTION}).status_code in (201, 409)
        r = c.post(f"/collections/{COLLECTION}/people/mark/faces",
                   files=[("files", photo("img13.jpg"))])  # fmt: skip
        assert r.status_code == 201, r.text
    return COLLECTION


def _last_audit(service: Service) -> tuple[int, int] | None:
    with service.db.reading() as tx:
        row = tx.one("SELECT id, status FROM audit ORDER BY id DESC LIMIT 1")
    return None if row is None else (int(row[0]), int(row[1]))


def _send(c: httpx.Client, p: Probe) -> httpx.Response:
    return c.request(p.method, p.url, **p.kw)


def check(service: Service, c: httpx.Client, probes: list[Probe]) -> list[str]:
    """Send each probe; the problems found (status, shape, audit row)."""
    problems = []
    for p in probes:
        before = _last_audit(service)
        try:
            r = _send(c, p)
        except httpx.HTTPError as exc:
            problems.append(f"{p.label}: {type(exc).__name__}: {exc}")
            continue
        where = f"{p.label} ({p.method} {p.url[:80]})"
        if r.status_code not in p.allowed and not (200 <= r.status_code < 300 and 200 in p.allowed):
            problems.append(f"{where}: {r.status_code} {r.text[:300]}")
        if r.status_code >= 400:
            try:
                body = r.json()
            except ValueError:
                body = None
            if not isinstance(body, dict) or set(body) != {"error", "status"} or \
                    body["status"] != r.status_code:  # fmt: skip
                problems.append(f"{where}: not the error shape: {r.text[:300]}")
        after = _last_audit(service)
        if after is None or after == before or after[1] != r.status_code:
            problems.append(f"{where}: {r.status_code} not audited (last row {after})")
    return problems


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> list[hostile.Case]:
    chosen = {"exif", "bomb", "corrupt", "depth", "tiny", "modern"}
    root = tmp_path_factory.mktemp("hostile-http")
    return hostile.build(root, chosen & set(hostile.categories()), face_photo=FACES / "img13.jpg")


def _people(service: Service, team: str) -> list[tuple[str, int]]:
    with service.client(service.admin) as c:
        people = c.get(f"/collections/{team}/people").json()["people"]
    return sorted((p["name"], p["templates"]) for p in people)


def _run(service: Service, team: str, probes: list[Probe]) -> None:
    before = _people(service, team)
    with service.client(service.admin) as c:
        problems = check(service, c, probes)
    after = _people(service, team)
    stored = [p for p in after if p not in before and not p[0].startswith("img-")]
    if stored:
        problems.append(f"refused requests stored people: {stored}")
    assert not problems, f"{len(problems)} of {len(probes)} requests:\n" + "\n".join(problems)


def test_hostile_paths(service: Service, team: str) -> None:
    _run(service, team, path_probes(team))


def test_hostile_json(service: Service, team: str) -> None:
    _run(service, team, json_probes())


def test_hostile_multipart(service: Service, team: str) -> None:
    _run(service, team, multipart_probes(team))


def test_hostile_form_fields(service: Service, team: str) -> None:
    _run(service, team, field_probes(team))


def test_hostile_library_routes(service: Service, team: str) -> None:
    _run(service, team, library_probes(team))


def test_hostile_images(service: Service, team: str, corpus: list[hostile.Case]) -> None:
    probes = image_probes(team, corpus)
    assert len(probes) >= 40
    _run(service, team, probes)


def _chunks(head: bytes, total: int, sent: list[int]) -> Callable[[], Iterator[bytes]]:
    def gen() -> Iterator[bytes]:
        yield head
        block = b"\xff" * 65536
        for _ in range(total // len(block)):
            sent.append(len(block))
            yield block
        yield b"\r\n--x--\r\n"

    return gen


def test_chunked_bodies_past_the_limit_are_413_on_every_upload_route(
    service: Service, team: str
) -> None:
    """No Content-Length: the limit holds while the body streams, on every route that takes
    a body (multipart and JSON), and nothing of it is stored."""
    limit = MAX_UPLOAD * 10 + 64 * 1024
    head = b'--x\r\nContent-Disposition: form-data; name="file"; filename="a.jpg"\r\n\r\n'
    routes = {
        "/detect": head,
        f"/collections/{team}/identify": head,
        "/verify": head.replace(b'"file"', b'"a"'),
        f"/collections/{team}/people/chunked/faces": head.replace(b'"file"', b'"files"'),
    }
    probes = []
    for url, first in routes.items():
        gen = _chunks(first, 2 * limit, [])
        probes.append(Probe(f"chunked_{url}", "POST", url, {413}, {
            "content": gen(), "headers": {"content-type": MULTIPART}}))  # fmt: skip
    gen = _chunks(b'{"name": "', 2 * limit, [])
    probes.append(Probe("chunked_json", "POST", "/collections", {413},
                        {"content": gen(), "headers": JSON}))  # fmt: skip
    _run(service, team, probes)
    assert ("chunked", 1) not in _people(service, team)
    # a Content-Length over the limit: refused before the body is read (none is sent)
    status, body = _raw(service, b"POST /detect HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer "
                        + service.admin.encode() + b"\r\nContent-Type: " + MULTIPART.encode()
                        + f"\r\nContent-Length: {limit + 1}\r\n\r\n".encode())  # fmt: skip
    assert status == 413 and json.loads(body) == {"error": json.loads(body)["error"],
                                                  "status": 413}  # fmt: skip


def _raw(service: Service, request: bytes) -> tuple[int, bytes]:
    """Send raw bytes; the status and body of the answer (one read of a short answer)."""
    host, port = service.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=30) as s:
        s.sendall(request)
        data = b""
        while b"\r\n\r\n" not in data or len(data.partition(b"\r\n\r\n")[2]) < 20:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split()[1]), body


def test_hostile_credentials(service: Service, team: str) -> None:
    """Odd tokens: 401 (or 429 once the address is throttled), in the shape, audited."""
    headers = {
        "bearer_huge": {"Authorization": "Bearer " + "a" * 8000},
        "bearer_empty": {"Authorization": "Bearer"},
        "basic": {"Authorization": "Basic dXNlcjpwYXNz"},
        "latin1": {"Authorization": b"Bearer fp_\xe9\xff"},
        "x_api_key_nul_escape": {"X-API-Key": "fp_%00"},
        "two_schemes": {"Authorization": "Bearer fp_x, Bearer fp_y"},
    }
    probes = [Probe(f"auth_{k}", "GET", f"/collections/{team}/people", {401, 429},
                    {"headers": h}) for k, h in headers.items()]  # fmt: skip
    try:
        with httpx.Client(base_url=service.url, timeout=60) as c:
            problems = check(service, c, probes)
        assert not problems, "\n".join(problems)
    finally:
        service.app.state.faceprint.keys._buckets.clear()  # let the other tests go on


def test_unaudited_pages_stay_up(service: Service) -> None:
    with httpx.Client(base_url=service.url, timeout=60) as c:
        for url in ("/health", "/version", "/openapi.json", "/"):
            r = c.get(url)
            assert r.status_code == 200, (url, r.text[:200])
        assert json.loads(c.get("/health").text) == {"status": "ok"}


def test_the_sweep_is_large(team: str, corpus: list[hostile.Case]) -> None:
    every = (path_probes(team) + json_probes() + multipart_probes(team) + field_probes(team)
             + library_probes(team) + image_probes(team, corpus))  # fmt: skip
    assert len(every) >= 300


def test_uploads_are_worked_on_a_few_at_a_time() -> None:
    """UploadSlots: of 12 simultaneous multipart requests at most ``limit`` are in the app
    at once (the others wait before their body is read); other requests never wait."""
    import asyncio

    from faceprint.service.limits import UploadSlots

    inside, most = 0, 0

    async def app(scope: object, receive: object, send: object) -> None:
        nonlocal inside, most
        inside += 1
        most = max(most, inside)
        await asyncio.sleep(0.01)
        inside -= 1

    slots = UploadSlots(app, limit=3)  # type: ignore[arg-type]

    def scope(ctype: bytes) -> dict[str, object]:
        return {"type": "http", "headers": [(b"content-type", ctype)]}

    async def nothing() -> None:
        return None

    async def run(ctype: bytes, n: int) -> int:
        nonlocal most
        most = 0
        await asyncio.gather(*(slots(scope(ctype), nothing, nothing) for _ in range(n)))  # type: ignore[arg-type]
        return most

    assert asyncio.run(run(b"multipart/form-data; boundary=x", 12)) == 3
    assert asyncio.run(run(b"application/json", 12)) == 12
