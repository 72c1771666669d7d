"""The HTTP service, live on loopback against a real PostgreSQL and real photos."""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from faceprint.service.auth import create_key, revoke_key
from tests.conftest import FACES, SHARED
from tests.servicetools import MAX_UPLOAD, Service, chromium, no_face_png, photo


@pytest.fixture(scope="module")
def enrolled(service: Service, groups: list[list[str]]) -> dict[str, list[str]]:
    """Collection 'team' with three people (1-2 photos each); their other photos."""
    with service.client(service.admin) as c:
        assert c.post("/collections", json={"name": "team"}).status_code == 201
        assert c.post("/collections", json={"name": "other"}).status_code == 201
        people = {}
        for i, group in enumerate(groups[:3]):
            name = f"person{i}"
            n = min(2, len(group) - 1)  # keep at least one photo back for identify
            r = c.post(
                f"/collections/team/people/{name}/faces",
                files=[("files", photo(p)) for p in group[:n]],
            )
            assert r.status_code == 201, r.text
            assert len(r.json()["templates"]) == n
            people[name] = group[n:]
        return people


def test_health_version_page_and_openapi_need_no_key(service: Service) -> None:
    with service.client(None) as c:
        assert c.get("/health").json() == {"status": "ok"}
        assert c.get("/version").json()["engine"] in ("sqlite", "postgresql")
        assert "<canvas" in c.get("/").text
        paths = c.get("/openapi.json").json()["paths"]
        for p in ("/collections/{name}/identify", "/verify", "/detect", "/collections"):
            assert p in paths


def test_no_key_bad_key_and_revoked_key_get_401(service: Service) -> None:
    token, key = create_key(service.db, "gone", ["recognise"], ["*"])
    for t in (None, "fp_not-a-key", token[:-1]):
        with service.client(t) as c:
            r = c.get("/collections")
            assert r.status_code == 401 and "API key" in r.json()["error"]
    with service.client(token) as c:
        assert c.get("/collections").status_code == 200
        revoke_key(service.db, key.id)  # takes effect on the very next request
        assert c.get("/collections").status_code == 401


def test_api_keys_cli_prints_token_once_lists_and_revokes(
    service: Service, enrolled: dict[str, list[str]], capsys: pytest.CaptureFixture[str]
) -> None:
    from faceprint.cli.main import main

    db = service.cli
    args = ["api-keys", "create", *db, "--role", "recognise", "--collections", "team"]
    assert main([*args, "--name", "cli-key"]) == 0
    token = capsys.readouterr().out.strip()
    assert token.startswith("fp_") and len(token) > 40
    with service.client(token) as c:
        assert [x["name"] for x in c.get("/collections").json()["collections"]] == ["team"]
    assert main(["api-keys", "list", *db]) == 0
    line = next(x for x in capsys.readouterr().out.splitlines() if "cli-key" in x)
    assert "active" in line and token not in line and "recognise" in line
    assert main(["api-keys", "revoke", line.split()[0], *db]) == 0
    with service.client(token) as c:
        assert c.get("/collections").status_code == 401
    assert main(["api-keys", "create", *db, "--role", "root", "--collections", "*"]) == 1
    assert "roles must be some of" in capsys.readouterr().err


def test_scopes_give_403(service: Service, enrolled: dict[str, list[str]]) -> None:
    probe = next(iter(enrolled.values()))[0]
    recognise = service.key(["recognise"], ["team"])
    enroll = service.key(["enroll"], ["team"])
    other_only = service.key(["recognise", "enroll"], ["other"])
    with service.client(recognise) as c:
        assert c.post("/collections/team/identify", files={"file": photo(probe)}).is_success
        r = c.post("/collections/team/people/x/faces", files=[("files", photo(probe))])
        assert r.status_code == 403 and "'enroll' role" in r.json()["error"]
        assert c.post("/collections", json={"name": "mine"}).status_code == 403
    with service.client(enroll) as c:
        assert c.get("/collections/team/people").is_success
        r = c.post("/collections/team/identify", files={"file": photo(probe)})
        assert r.status_code == 403
        assert c.delete("/collections/team").status_code == 403
    with service.client(other_only) as c:
        r = c.post("/collections/team/identify", files={"file": photo(probe)})
        assert r.status_code == 403 and "collection 'team'" in r.json()["error"]
        assert [x["name"] for x in c.get("/collections").json()["collections"]] == ["other"]


def test_identify_finds_enrolled_people_with_rounded_scores(
    service: Service, enrolled: dict[str, list[str]]
) -> None:
    user = service.key(["recognise"], ["team"])
    for name, rest in enrolled.items():
        with service.client(user) as c:
            r = c.post("/collections/team/identify", files={"file": photo(rest[0])})
        assert r.status_code == 200, r.text
        face = r.json()["faces"][0]
        assert face["name"] == name
        assert face["similarity"] == round(face["similarity"], 2)
    with service.client(service.admin) as c:
        r = c.post(
            "/collections/team/identify",
            files={"file": photo(enrolled["person0"][0])},
            data={"top_k": "3"},
        )
    faces = r.json()["faces"]
    assert [c["name"] for c in faces[0]["candidates"]][0] == "person0"
    assert len(faces[0]["candidates"]) == 3
    scores = [c["similarity"] for c in faces[0]["candidates"]]
    assert scores == sorted(scores, reverse=True)
    assert any(s != round(s, 2) for s in scores)  # admins see 4 decimals


def test_verify_two_photos_and_photo_against_person(
    service: Service, enrolled: dict[str, list[str]]
) -> None:
    p0, p1 = enrolled["person0"][0], enrolled["person1"][0]
    with service.client(service.key(["recognise"], ["team"])) as c:
        same = c.post("/verify", files={"a": photo(p0), "b": photo(enrolled["person0"][-1])})
        diff = c.post("/verify", files={"a": photo(p0), "b": photo(p1)})
        vs = c.post(
            "/verify", files={"a": photo(p1)}, data={"collection": "team", "person": "person1"}
        )
        wrong = c.post(
            "/verify", files={"a": photo(p1)}, data={"collection": "team", "person": "person0"}
        )
        missing = c.post(
            "/verify", files={"a": photo(p1)}, data={"collection": "team", "person": "nobody"}
        )
        neither = c.post("/verify", files={"a": photo(p1)})
    assert same.json()["same"] is True and diff.json()["same"] is False
    assert vs.json()["same"] is True and wrong.json()["same"] is False
    assert missing.status_code == 404
    assert neither.status_code == 422


def test_people_and_templates_crud(service: Service, groups: list[list[str]]) -> None:
    g = groups[3]
    with service.client(service.key(["enroll"], ["other"])) as c:
        r = c.post("/collections/other/people/dana/faces", files=[("files", photo(g[0]))])
        assert r.status_code == 201
        c.post("/collections/other/people/dana/faces", files=[("files", photo(g[1]))])
        listed = c.get("/collections/other/people/dana/faces").json()["templates"]
        assert len(listed) == 2 and "embedding" not in listed[0]
        assert c.get("/collections/other/people").json()["people"][0]["templates"] == 2
        assert c.delete(f"/collections/other/people/dana/faces/{listed[0]['id']}").is_success
        assert (
            c.delete(f"/collections/other/people/dana/faces/{listed[0]['id']}").status_code == 404
        )
        assert c.delete("/collections/other/people/dana").json()["templates"] == 1
        assert c.delete("/collections/other/people/dana").status_code == 404
        assert c.get("/collections/other/people").json()["people"] == []
        assert c.get("/collections/nope/people").status_code == 403  # not in scope
    with service.client(service.admin) as c:
        r = c.post("/collections/nope/identify", files={"file": photo(g[0])})
        assert r.status_code == 404 and "no collection named 'nope'" in r.json()["error"]


def test_bad_inputs_are_clear_4xx_and_store_nothing(
    service: Service, enrolled: dict[str, list[str]], groups: list[list[str]]
) -> None:
    good = photo(groups[4][0])
    with service.client(service.admin) as c:
        before = c.get("/collections/team/people").json()
        r = c.post("/detect", files={"file": ("notes.jpg", b"%PDF-1.4 not an image", "image/jpeg")})
        assert r.status_code == 415 and "PDF" in r.json()["error"]
        r = c.post(
            "/detect", files={"file": ("big.jpg", b"\xff" * (MAX_UPLOAD + 10), "image/jpeg")}
        )
        assert r.status_code == 413 and "limit" in r.json()["error"]
        blank = ("blank.png", no_face_png(), "image/png")
        r = c.post("/collections/team/identify", files={"file": blank})
        assert r.status_code == 422 and "blank.png: no face found" in r.json()["error"]
        # One good photo and one without a face: the whole enrollment is refused.
        r = c.post("/collections/team/people/eve/faces", files=[("files", good), ("files", blank)])
        assert r.status_code == 422 and "no face" in r.json()["error"]
        r = c.post("/collections/team/people/eve/faces", files=[("files", good)] * 11)
        assert r.status_code == 413 and "at most 10 photos" in r.json()["error"]
        r = c.post("/collections/team/identify", data={"top_k": "1"})
        assert r.status_code == 422 and "file" in r.json()["error"]
        r = c.post("/collections/team/identify", files={"file": good}, data={"top_k": "999"})
        assert r.status_code == 422
        r = c.post("/collections", json={"name": "bad name!"})
        assert r.status_code == 422
        assert c.get("/collections/team/people").json() == before


def test_rate_limit_and_daily_budget_give_429(
    service: Service, enrolled: dict[str, list[str]]
) -> None:
    limited = service.key(["recognise"], ["team"], rate=0.5, burst=2)
    with service.client(limited) as c:
        codes = [c.get("/collections").status_code for _ in range(3)]
        assert codes == [200, 200, 429]
        r = c.get("/collections")
        assert r.status_code == 429 and int(r.headers["Retry-After"]) >= 1
    budget = service.key(["recognise"], ["team"], daily_quota=2)
    probe = photo(enrolled["person0"][0])
    with service.client(budget) as c:
        codes = [
            c.post("/collections/team/identify", files={"file": probe}).status_code
            for _ in range(3)
        ]
        assert codes == [200, 200, 429]
        r = c.post("/detect", files={"file": probe})
        assert r.status_code == 429 and "daily query budget" in r.json()["error"]


def test_concurrent_requests_are_batched_and_all_correct(
    service: Service, enrolled: dict[str, list[str]]
) -> None:
    token = service.key(["recognise"], ["team"], rate=1000, burst=1000)
    jobs = [(name, rest[i % len(rest)]) for name, rest in enrolled.items() for i in range(5)]
    batcher = service.app.state.faceprint.batcher
    batches, items = batcher.batches, batcher.items

    def run(job: tuple[str, str]) -> tuple[str, int, str | None]:
        with service.client(token) as c:
            r = c.post("/collections/team/identify", files={"file": photo(job[1])})
        return job[0], r.status_code, r.json()["faces"][0]["name"] if r.is_success else None

    with ThreadPoolExecutor(max_workers=len(jobs)) as pool:
        results = list(pool.map(run, jobs))
    assert all(code == 200 for _, code, _ in results), results
    assert sum(want == got for want, _, got in results) >= len(jobs) - 1
    served = batcher.items - items
    assert served == len(jobs)
    assert batcher.batches - batches < served  # several requests shared an ONNX call


def test_web_page_enrolls_identifies_and_draws_boxes(
    service: Service, groups: list[list[str]], tmp_path: Path
) -> None:
    """The page at / in headless Chromium: key, enroll from photos, identify, boxes drawn."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    driver = chromium(1000, 1400)
    group = groups[0]
    try:
        driver.get(service.url + "/")
        driver.find_element(By.ID, "key").send_keys(service.admin)
        box = driver.find_element(By.ID, "collection")
        box.clear()
        box.send_keys("web")
        status = driver.find_element(By.ID, "status")
        driver.find_element(By.ID, "create").click()
        WebDriverWait(driver, 30).until(lambda d: "created collection web" in status.text)
        driver.find_element(By.ID, "person").send_keys("ada")
        paths = "\n".join(str(FACES / p) for p in group[:2])
        driver.find_element(By.ID, "enroll-files").send_keys(paths)
        driver.find_element(By.ID, "enroll").click()
        WebDriverWait(driver, 120).until(lambda d: "enrolled ada: 2" in status.text)
        driver.find_element(By.ID, "probe").send_keys(str(FACES / group[2]))
        driver.find_element(By.ID, "identify").click()
        canvas = driver.find_element(By.ID, "canvas")
        WebDriverWait(driver, 120).until(lambda d: canvas.get_attribute("data-boxes") != "0")
        shot = tmp_path / "page.png"
        driver.save_screenshot(str(shot))
        assert shot.stat().st_size > 10_000
        assert canvas.get_attribute("data-names") == "ada"
        assert "ada" in status.text
        green = driver.execute_script(
            "const c = document.getElementById('canvas');"
            "const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;"
            "let n = 0; for (let i = 0; i < d.length; i += 4)"
            " if (d[i] === 0 && d[i + 1] === 255 && d[i + 2] === 0) n++; return n;"
        )
        assert green > 500, f"only {green} pure-green pixels: no box drawn"
        if os.environ.get("FACEPRINT_KEEP_SCREENSHOT"):
            shot.replace(os.environ["FACEPRINT_KEEP_SCREENSHOT"])
        # A wrong key shows the service's error on the page instead of drawing.
        key = driver.find_element(By.ID, "key")
        key.clear()
        key.send_keys("fp_wrong")
        driver.find_element(By.ID, "identify").click()
        WebDriverWait(driver, 30).until(lambda d: "401" in status.text)
    finally:
        driver.quit()


def test_every_request_is_audited_without_images(service: Service) -> None:
    """Each outcome this test causes (200, 401, 404, 413, 415, 422) gets an audit row."""
    with service.db.reading() as tx:
        start = int(tx.one("SELECT COALESCE(MAX(id), 0) FROM audit")[0])  # type: ignore[index]
    user = service.key(["recognise"], ["team"])
    with service.client(service.admin) as c:
        c.post("/collections", json={"name": "audited"})
        assert c.post("/detect", files={"file": photo("img1.jpg")}).status_code == 200
        assert (
            c.post("/detect", files={"file": ("x.jpg", b"%PDF-1", "image/jpeg")}).status_code == 415
        )
        assert c.post("/collections/audited/identify", data={"top_k": "1"}).status_code == 422
        assert c.get("/collections/nowhere/people").status_code == 404
        big = ("big.jpg", b"\xff" * (MAX_UPLOAD + 10), "image/jpeg")
        assert c.post("/detect", files={"file": big}).status_code == 413
    with service.client("fp_wrong") as c:
        assert c.get("/collections").status_code == 401
    with service.client(user) as c:
        assert c.get("/collections").status_code == 200
    with service.db.reading() as tx:
        rows = tx.execute(
            "SELECT status, endpoint, collection, result_size, key_id, client FROM audit "
            "WHERE id > %s",
            (start,),
        )
    assert {200, 201, 401, 404, 413, 415, 422} <= {r[0] for r in rows}
    detect = [r for r in rows if r[1] == "/detect" and r[0] == 200]
    assert detect and detect[0][3] == 1 and detect[0][5] == "127.0.0.1"
    assert all(isinstance(v, int | float | str | type(None)) for r in rows for v in r)


def test_detect_with_attributes_only_when_asked(
    service: Service, monkeypatch: pytest.MonkeyPatch
) -> None:
    models = SHARED / "models"
    monkeypatch.setenv(
        "FACEPRINT_MODEL_DIR", os.pathsep.join(str(models / d) for d in ("minifasnet", "fer"))
    )
    token = service.key(["recognise"], ["team"], rate=1000, burst=1000)
    with service.client(token) as c:
        plain = c.post("/detect", files={"file": photo("img1.jpg")})
        assert plain.status_code == 200 and "attributes" not in plain.json()["faces"][0]
        r = c.post(
            "/detect",
            files={"file": photo("img1.jpg")},
            data={"attributes": "expression,liveness"},
        )
        assert r.status_code == 200, r.text
        attrs = r.json()["faces"][0]["attributes"]
        assert attrs["expression"]["label"] == "happy"  # img1 smiles
        assert attrs["liveness"]["live"] is True
        bad = c.post("/detect", files={"file": photo("img1.jpg")}, data={"attributes": "age"})
        assert bad.status_code == 422 and "unknown attribute 'age'" in bad.json()["error"]
