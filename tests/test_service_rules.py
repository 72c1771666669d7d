"""The service follows the core's rules and answers every error in one shape (on each
engine): the CLI's enrollment gate, one template per photo, scoped admin keys, streaming
body limits, hostile paths and names, throttled unknown tokens, audited 500s."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import cv2
import httpx
import pytest

from faceprint.cli.main import main
from faceprint.errors import GalleryError
from faceprint.io import load_image, save_image
from tests.conftest import FACES
from tests.servicetools import MAX_UPLOAD, Service, photo


def _blurred(tmp_path: Path) -> Path:
    path = tmp_path / "blurred.jpg"
    save_image(path, cv2.GaussianBlur(load_image(FACES / "img13.jpg"), (61, 61), 0))
    return path


def test_http_enrollment_refuses_what_the_cli_refuses_with_the_same_message(
    service: Service, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    blurred = _blurred(tmp_path)
    assert main(["enroll", "mark", str(blurred), "--gallery", str(tmp_path / "g.db")]) == 6
    cli_message = capsys.readouterr().err.strip().removeprefix("faceprint: ")
    with service.client(service.admin) as c:
        c.post("/collections", json={"name": "gate"})
        r = c.post(
            "/collections/gate/people/mark/faces",
            files=[("files", (str(blurred), blurred.read_bytes(), "image/jpeg"))],
        )
        assert r.status_code == 422 and r.json()["error"] == cli_message
        assert "blurred" in cli_message
        assert c.get("/collections/gate/people").json()["people"] == []


def test_the_same_photo_twice_adds_one_template(service: Service) -> None:
    with service.client(service.admin) as c:
        c.post("/collections", json={"name": "twice"})
        url = "/collections/twice/people/mark/faces"
        first = c.post(url, files=[("files", photo("img13.jpg"))])
        again = c.post(url, files=[("files", photo("img13.jpg"))])
        assert first.status_code == again.status_code == 201
        assert len(first.json()["templates"]) == 1 and again.json()["templates"] == []
        assert again.json()["already_enrolled"] == 1
        other = c.post("/collections/twice/people/bob/faces", files=[("files", photo("img13.jpg"))])
        assert other.status_code == 409 and "already enrolled as 'mark'" in other.json()["error"]
        people = c.get("/collections/twice/people").json()["people"]
        assert [(p["name"], p["templates"]) for p in people] == [("mark", 1)]


def test_a_scoped_admin_key_stays_in_its_scope(service: Service) -> None:
    scoped = service.key(["admin"], ["scope-a"])
    with service.client(service.admin) as c:
        assert c.post("/collections", json={"name": "scope-a"}).status_code == 201
    with service.client(scoped) as c:
        r = c.post("/collections", json={"name": "scope-c"})
        assert r.status_code == 403 and "scope-c" in r.json()["error"]
        assert [x["name"] for x in c.get("/collections").json()["collections"]] == ["scope-a"]
        assert c.delete("/collections/scope-a").status_code == 200


JSON = {"content-type": "application/json"}


def test_router_errors_and_hostile_names_come_back_in_one_shape(service: Service) -> None:
    img = {"a": photo("img1.jpg")}
    with service.client(service.admin) as c:
        cases = [
            c.get("/no/such/route"),
            c.put("/collections"),
            c.get("/%00"),
            c.get("/collections/a%00b/people"),
            c.get("/collections/team%00/people/x%00/faces"),
            c.post("/collections", json={"name": "x\u0000y"}),
            c.post("/collections", content=b"{" * 100_000, headers=JSON),
            c.post("/collections", content=b"not json", headers=JSON),
            c.post("/verify", files=img, data={"collection": "t\x00", "person": "p"}),
            c.post("/collections/team/identify", files={"file": img["a"]}, data={"top_k": "x"}),
            c.delete("/collections/team/people/p/faces/99999999999999999999999"),
        ]  # fmt: skip
    for r in cases:
        assert 400 <= r.status_code < 500, (r.request.url, r.status_code, r.text)
        body = r.json()
        assert set(body) == {"error", "status"} and body["status"] == r.status_code, body


def test_a_chunked_body_is_cut_off_at_the_limit(service: Service) -> None:
    head = (
        b'--x\r\nContent-Disposition: form-data; name="file"; filename="a.jpg"\r\n'
        b"Content-Type: image/jpeg\r\n\r\n"
    )
    sent = []

    def chunks() -> Iterator[bytes]:  # no Content-Length: the limit holds while streaming
        yield head
        for _ in range(40 * MAX_UPLOAD // 65536):
            sent.append(1)
            yield b"\xff" * 65536
        yield b"\r\n--x--\r\n"

    with service.client(service.admin) as c:
        r = c.post(
            "/detect", content=chunks(),
            headers={"content-type": "multipart/form-data; boundary=x"},
        )  # fmt: skip
    assert r.status_code == 413 and r.json()["status"] == 413


def test_unknown_tokens_are_throttled_per_address(service: Service) -> None:
    codes = []
    with httpx.Client(base_url=service.url, timeout=30) as c:
        for i in range(40):
            codes.append(
                c.get("/collections", headers={"Authorization": f"Bearer fp_x{i}"}).status_code
            )
    assert codes[0] == 401 and 429 in codes and codes[-1] == 429
    with service.db.reading() as tx:  # the refused floods cost no key lookups: few rows
        audited = tx.one("SELECT COUNT(*) FROM audit WHERE status = 429 AND key_id IS NULL")
    assert audited is not None and audited[0] >= 40 - 25
    service.app.state.faceprint.keys._buckets.clear()  # let the other tests go on


def test_health_does_not_leak_the_database_error(
    service: Service, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken() -> None:
        raise GalleryError("password=hunter2 at db.internal:5432")

    monkeypatch.setattr(service.db, "reading", broken)
    with httpx.Client(base_url=service.url, timeout=30) as c:
        r = c.get("/health")
    assert r.status_code == 503 and "hunter2" not in r.text and r.json()["status"] == 503


def test_a_bug_is_a_logged_audited_500_in_the_same_shape(
    service: Service, monkeypatch: pytest.MonkeyPatch
) -> None:
    def boom(*args: object, **kw: object) -> None:
        raise RuntimeError("a bug")

    monkeypatch.setattr("faceprint.service.routes_recognise.detect", boom)
    with service.client(service.admin) as c:
        r = c.post("/detect", files={"file": photo("img1.jpg")})
    assert r.status_code == 500 and r.json() == {
        "error": "internal error (logged on the server)", "status": 500,
    }  # fmt: skip
    with service.db.reading() as tx:
        row = tx.one("SELECT status, endpoint FROM audit ORDER BY id DESC LIMIT 1")
    assert row == (500, "/detect")


def test_serve_refuses_a_bad_port(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["serve", "--gallery", str(tmp_path / "g.db"), "--port", "80000"]) == 1
    assert "not a TCP port" in capsys.readouterr().err
    with socket.socket() as s:
        assert s  # nothing was started


def test_serve_takes_upload_sizes_with_units(capsys: pytest.CaptureFixture[str]) -> None:
    from faceprint.cli.main import build_parser

    for text, size in (
        ("10485760", 10 << 20),
        ("10M", 10 << 20),
        ("512K", 512 << 10),
        ("1G", 1 << 30),
    ):
        assert build_parser().parse_args(["serve", "--max-upload", text]).max_upload == size
    for text in ("0", "2G", "ten", "nan"):
        assert main(["serve", "--max-upload", text]) == 1
        assert "--max-upload" in capsys.readouterr().err
