"""The photo library over HTTP, on both engines: what ``faceprint index`` stored, shown and
corrected through /collections/{name}/library/..., and the People page in Chromium."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from faceprint.cli.main import main
from tests.conftest import FACES
from tests.servicetools import Service, chromium
from tests.test_library_cli import face, shrink

PHOTOS = ["img1.jpg", "img2.jpg", "img4.jpg", "img13.jpg", "img14.jpg", "img15.jpg",
          "img29.jpg", "img30.jpg", "couple.jpg"]  # fmt: skip


@pytest.fixture(scope="module")
def indexed(service: Service, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Collections 'lib' and 'web' of the service's database, indexed by the CLI."""
    root = tmp_path_factory.mktemp("library")
    for name in PHOTOS:
        shrink(FACES / name, root / name)
    for collection in ("lib", "web"):
        assert main(["index", str(root), *service.cli, "--collection", collection, "-q"]) == 0
    return root


def people(c: Any, collection: str = "lib") -> dict[str, Any]:
    r = c.get(f"/collections/{collection}/library/people")
    assert r.status_code == 200, r.text
    data: dict[str, Any] = r.json()
    return data


def group_of(data: dict[str, Any], photo: str) -> dict[str, Any]:
    return next(g for g in data["people"] if any(face(f)[0] == photo for f in g["faces"]))


def test_routes_list_correct_and_enroll(service: Service, indexed: Path) -> None:
    reader = service.key(["recognise"], ["lib"])
    editor = service.key(["enroll"], ["lib"])
    with service.client(reader) as c:
        data = people(c)
        assert set(data) == {"people", "unassigned"}
        ang, mark = group_of(data, "img1.jpg"), group_of(data, "img13.jpg")
        r = c.get(f"/collections/lib/library/faces/{ang['faces'][0]['face_id']}/thumbnail")
        assert r.status_code == 200 and r.headers["content-type"] == "image/jpeg"
        assert r.content[:2] == b"\xff\xd8" and len(r.content) > 1000
        r = c.post("/collections/lib/library/name", json={"cluster": ang["id"], "name": "ann"})
        assert r.status_code == 403  # changes need the enroll role
    with service.client(editor) as c:
        r = c.post("/collections/lib/library/name", json={"cluster": ang["id"], "name": "ann"})
        assert r.status_code == 200 and r.json()["cluster"] == ang["id"]
        r = c.post("/collections/lib/library/name", json={"cluster": mark["id"], "name": "mark"})
        assert r.status_code == 200
        # ann is a gallery person: identify finds her
        r = c.get("/collections/lib/people")
        assert {p["name"]: p["templates"] for p in r.json()["people"]} == {
            "ann": len(ang["faces"]), "mark": len(mark["faces"])}  # fmt: skip
        wrong = mark["faces"][-1]
        r = c.post(
            "/collections/lib/library/not", json={"face": wrong["face_id"], "person": "mark"}
        )
        assert r.status_code == 200
        r = c.post(
            "/collections/lib/library/move", json={"face": wrong["face_id"], "person": "ann"}
        )
        assert r.status_code == 200
        r = c.post("/collections/lib/library/split",
                   json={"cluster": ang["id"], "faces": [wrong["face_id"]]})  # fmt: skip
        assert r.status_code == 200
        r = c.post("/collections/lib/library/hide", json={"face": wrong["face_id"]})
        assert r.status_code == 200
        r = c.post("/collections/lib/library/merge", json={"a": ang["id"], "b": mark["id"]})
        assert r.status_code == 200 and "ann" in r.json()["message"]
        after = people(c)
        named = {g["name"]: {f["face_id"] for f in g["faces"]} for g in after["people"]}
        assert "mark" not in named and wrong["face_id"] not in named["ann"]
        assert {f["face_id"] for f in ang["faces"] + mark["faces"]} - {wrong["face_id"]} <= named[
            "ann"
        ]
        r = c.get("/collections/lib/library/photos", params={"person": "ann"})
        assert r.status_code == 200 and len(r.json()["photos"]) >= 5
        r = c.post(
            "/collections/lib/identify",
            files={"file": ("p.jpg", (FACES / "img10.jpg").read_bytes())},
        )
        assert r.status_code in (200, 403)  # enroll keys may not identify; the gallery is there


def test_bad_input_and_scopes_never_500(service: Service, indexed: Path) -> None:
    elsewhere = service.key(["enroll", "recognise"], ["other"])
    editor = service.key(["enroll"], ["lib"])
    with service.client(elsewhere) as c:
        assert c.get("/collections/lib/library/people").status_code == 403
        assert c.post("/collections/lib/library/hide", json={"face": 1}).status_code == 403
    with service.client(editor) as c:
        cluster = people(c)["people"][0]["id"]
        checks = [
            ("post", "name", {"cluster": -1, "name": "x"}, 422),
            ("post", "name", {"cluster": 2**70, "name": "x"}, 422),
            ("post", "name", {"cluster": "seven", "name": "x"}, 422),
            ("post", "name", {"cluster": cluster, "name": "bad\x00name"}, 422),
            ("post", "name", {"cluster": cluster, "name": ""}, 422),
            ("post", "name", {"cluster": cluster, "name": "x" * 401}, 422),
            ("post", "name", {"cluster": 999_999, "name": "x"}, 404),
            ("post", "merge", {"a": cluster, "b": 999_999}, 404),
            ("post", "merge", {"a": cluster}, 422),
            ("post", "split", {"cluster": cluster, "faces": []}, 422),
            ("post", "split", {"cluster": cluster, "faces": [999_999]}, 404),
            ("post", "move", {"face": 1}, 422),
            ("post", "move", {"face": 1, "person": "a", "cluster": cluster}, 422),
            ("post", "not", {"face": 999_999, "person": "x"}, 404),
            ("post", "hide", {"face": "x"}, 422),
            ("get", "faces/999999/thumbnail", None, 404),
            ("get", "faces/-4/thumbnail", None, 422),
            ("get", "faces/1/thumbnail?size=100000", None, 422),
            ("get", "photos?person=nobody", None, 404),
            ("get", "photos", None, 422),
        ]
        for method, path, body, want in checks:
            url = f"/collections/lib/library/{path}"
            r = c.post(url, json=body) if method == "post" else c.get(url)
            assert r.status_code == want, (path, body, r.status_code, r.text)
            assert set(r.json()) == {"error", "status"} and r.json()["status"] == want
        r = c.post("/collections/lib/library/hide", content=b"{not json",
                   headers={"content-type": "application/json"})  # fmt: skip
        assert r.status_code == 422
        assert c.get("/collections/nowhere/library/people").status_code == 403
    with service.client(service.admin) as c:
        assert c.get("/collections/nowhere/library/people").status_code == 404
        assert c.get("/collections/bad name!/library/people").status_code == 422


def test_people_page_names_merges_splits_and_moves_in_chromium(
    service: Service, indexed: Path, tmp_path: Path
) -> None:
    """The page at /people in headless Chromium; each action checked through the API."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    driver = chromium(1180, 760)
    api = service.client(service.admin)
    try:
        driver.get(service.url + "/people")
        driver.find_element(By.ID, "key").send_keys(service.admin)
        box = driver.find_element(By.ID, "collection")
        box.clear()
        box.send_keys("web")
        status = driver.find_element(By.ID, "status")
        groups = driver.find_element(By.ID, "groups")

        def act(click: Any, expect: str) -> None:
            version = groups.get_attribute("data-version")
            click()
            WebDriverWait(driver, 60).until(
                lambda d: groups.get_attribute("data-version") != version and expect in status.text
            )

        def by_id(css: str) -> Any:
            return driver.find_element(By.CSS_SELECTOR, css)

        def select(*faces: int) -> None:
            for f in faces:
                by_id(f".face[data-face='{f}']").click()

        def person(name: str) -> set[int]:
            found = next(g for g in people(api, "web")["people"] if g["name"] == name)
            return {f["face_id"] for f in found["faces"]}

        act(by_id("#load").click, "unnamed cluster")
        data = people(api, "web")
        ang, mark = group_of(data, "img1.jpg"), group_of(data, "img13.jpg")
        ang_faces = [f["face_id"] for f in ang["faces"]]
        assert len(ang_faces) >= 4
        # split two faces off, then merge the two halves again (ticked boxes)
        select(*ang_faces[:2])
        act(by_id("#split").click, "split 2 face(s)")
        half = group_of(people(api, "web"), "img1.jpg")["id"]
        rest = next(g["id"] for g in people(api, "web")["people"]
                    if ang_faces[2] in {f["face_id"] for f in g["faces"]})  # fmt: skip
        assert half != rest
        by_id(f".tick[data-cluster='{rest}']").click()
        by_id(f".tick[data-cluster='{half}']").click()
        act(by_id("#merge").click, "merged clusters")
        assert group_of(people(api, "web"), "img1.jpg")["id"] == rest
        # name both people
        for cluster, name in ((rest, "Angelina"), (mark["id"], "Mark")):
            by_id(f".card[data-cluster='{cluster}'] .name-input").send_keys(name)
            act(by_id(f".card[data-cluster='{cluster}'] .name-button").click, "named cluster")
        assert person("Angelina") == set(ang_faces) and person("Mark") == {
            f["face_id"] for f in mark["faces"]}  # fmt: skip
        # a face of Mark split off, then moved back to him by name
        stray = mark["faces"][-1]["face_id"]
        select(stray)
        act(by_id("#split").click, "split 1 face")
        assert stray not in person("Mark")
        select(stray)
        by_id("#target").send_keys("Mark")
        act(by_id("#move").click, "moved face")
        assert stray in person("Mark")
        # "not this person" takes a face out of Angelina; moving it back undoes that
        select(ang_faces[-1])
        act(by_id("#not").click, "is not Angelina")
        assert ang_faces[-1] not in person("Angelina")
        select(ang_faces[-1])
        target = by_id("#target")
        target.clear()
        target.send_keys("Angelina")
        act(by_id("#move").click, "moved face")
        assert person("Angelina") == set(ang_faces)
        # the gallery holds both people: identify finds them
        r = api.post(
            "/collections/web/identify",
            files={"file": ("p.jpg", (FACES / "img10.jpg").read_bytes())},
        )
        assert r.status_code == 200 and r.json()["faces"][0]["name"] == "Angelina"
        WebDriverWait(driver, 60).until(lambda d: d.execute_script(
            "return [...document.querySelectorAll('.face')].every((i) => i.dataset.loaded);"
        ))  # fmt: skip
        loaded = driver.execute_script(
            "return [...document.querySelectorAll('.face')]"
            ".filter((i) => i.naturalWidth > 0).length"
        )
        assert loaded >= len(ang_faces) + len(mark["faces"])  # thumbnails came through the API
        driver.execute_script("document.getElementById('target').value = '';")
        height = driver.execute_script("return document.documentElement.scrollHeight;")
        driver.set_window_size(1180, min(int(height) + 40, 2000))  # the whole page
        shot = tmp_path / "people.png"
        driver.save_screenshot(str(shot))
        assert shot.stat().st_size > 10_000
        if os.environ.get("FACEPRINT_KEEP_SCREENSHOT"):
            shot.replace(os.environ["FACEPRINT_KEEP_SCREENSHOT"])
    finally:
        api.close()
        driver.quit()
