"""The score-leak defences on a live service: score exposure per key, the per-person
budget, and probing detection, shown by short attacks (a few hundred queries in all)
through the HTTP API with the attack harness (faceprint.eval.attack)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from faceprint.eval import attack, attack_pca
from faceprint.eval.attack_client import ServiceClient
from faceprint.gallery.database import Database
from faceprint.service.auth import create_key, list_keys
from faceprint.service.defences import LOCK, PROBES_TO_LOCK, shown
from tests.conftest import FACES, SHARED
from tests.servicetools import database, photo, serving

LFW = SHARED / "lfw-dev"
LABELS = Path(__file__).parent / "data" / "identities.csv"
COLLECTION = "defended"
OTHERS = 160  # lfw-dev people in the attacker's small face space
COMPONENTS = 24


@dataclass
class Live:
    url: str
    db: Database
    admin: str
    targets: list[str]

    def key(self, roles: list[str] | None = None, **kw: Any) -> tuple[str, int]:
        token, key = create_key(self.db, "defence-test", roles or ["recognise"], ["*"], **kw)
        return token, key.id

    def events(self, key_id: int) -> list[tuple[int, str | None]]:
        with self.db.reading() as tx:
            rows = tx.execute(
                "SELECT status, event FROM audit WHERE key_id = %s ORDER BY id", (key_id,)
            )
        return [(int(s), e) for s, e in rows]


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    """The service on loopback (embedded gallery file) with ten people enrolled."""
    from faceprint.service.app import create_app

    with (
        database("sqlite", tmp_path_factory.mktemp("service")) as (db, _),
        serving(create_app(db)) as url,
    ):
        admin, _ = create_key(db, "admin", ["admin"], ["*"], rate=1000, burst=1000)
        with ServiceClient(url, admin) as setup:
            people = attack.enroll_targets(setup, COLLECTION, FACES, LABELS, 10, per_target=1)
        yield Live(url, db, admin, sorted(people))


@pytest.fixture(scope="module")
def space(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, attack_pca.FaceSpace]:
    root = tmp_path_factory.mktemp("others")
    for person in sorted(p for p in LFW.iterdir() if p.is_dir())[:OTHERS]:
        (root / person.name).symlink_to(person, target_is_directory=True)
    work = tmp_path_factory.mktemp("work")
    return root, attack_pca.face_space(
        root, attack_pca.person_photos(root), work, components=COMPONENTS
    )


def _reconstructor(
    client: ServiceClient, space: tuple[Path, attack_pca.FaceSpace], **kw: Any
) -> attack.Reconstructor:
    root, fs = space
    carrier = attack_pca.carrier(root, attack_pca.pick_carrier(fs), fs)
    return attack.Reconstructor(client, COLLECTION, fs, carrier, **kw)


def _identify(token: str, url: str, name: str, **form: str) -> httpx.Response:
    with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {token}"}) as c:
        return c.post(
            f"/collections/{COLLECTION}/identify", files={"file": photo(name)},
            data={"top_k": "5", **form}, timeout=120,
        )  # fmt: skip


def test_shown_rounds_or_hides() -> None:
    assert shown("full", 0.912345) == 0.9123
    assert shown("rounded", 0.912345) == 0.91
    assert shown("none", 0.912345) is None


def test_score_exposure_follows_the_key(live: Live) -> None:
    full = _identify(live.admin, live.url, "img1.jpg").json()["faces"][0]
    assert full["name"] == "angelina_jolie" and len(full["candidates"]) == 5
    assert any(round(c["similarity"], 2) != c["similarity"] for c in full["candidates"])
    rounded_token, _ = live.key()  # a non-admin key's default: 2 decimals
    rounded = _identify(rounded_token, live.url, "img1.jpg").json()
    assert all(
        round(c["similarity"], 2) == c["similarity"] for c in rounded["faces"][0]["candidates"]
    )
    token, _ = live.key(scores="none")
    body = _identify(token, live.url, "img1.jpg").json()
    face = body["faces"][0]
    assert face["name"] == "angelina_jolie" and face["similarity"] is None
    assert face["candidates"] == [] and body["threshold"] is None
    stranger = _identify(token, live.url, "img18.jpg").json()["faces"][0]  # elon_musk
    assert stranger["similarity"] is None and stranger["candidates"] == []
    with httpx.Client(base_url=live.url, headers={"Authorization": f"Bearer {token}"}) as c:
        form = {"collection": COLLECTION, "person": "angelina_jolie"}
        r = c.post("/verify", files={"a": photo("img1.jpg")}, data=form, timeout=120)
    assert r.status_code == 200 and r.json()["same"] is True
    assert r.json()["similarity"] is None and r.json()["threshold"] is None
    keys = {k.id: k for k in list_keys(live.db)}
    admin = next(k for k in keys.values() if k.admin)
    assert admin.scores == "full" and admin.target_quota == 2_000_000_000
    assert keys[max(keys)].scores == "none" and keys[max(keys)].target_quota == 100


def test_clients_cannot_loosen_the_threshold(live: Live) -> None:
    """At FMR 1e-1 a 100-face dictionary matched every target: a non-admin key may ask for
    at most the default 1e-3 (403 above it, before any work); an admin key may."""
    token, key_id = live.key()
    for fmr, status in (("0.1", 403), ("0.0011", 403), ("0.001", 200), ("0.0001", 200)):
        r = _identify(token, live.url, "img1.jpg", fmr=fmr)
        assert r.status_code == status, (fmr, r.text)
        if status == 403:
            assert r.json()["error"].startswith(f"fmr {float(fmr):g} is looser")
    with httpx.Client(base_url=live.url, headers={"Authorization": f"Bearer {token}"}) as c:
        form = {"collection": COLLECTION, "person": "angelina_jolie", "fmr": "0.1"}
        r = c.post("/verify", files={"a": photo("img1.jpg")}, data=form, timeout=120)
    assert r.status_code == 403
    assert [s for s, _ in live.events(key_id)] == [403, 403, 200, 200, 403]
    assert _identify(live.admin, live.url, "img1.jpg", fmr="0.1").status_code == 200


def test_reconstruction_locks_the_key_and_is_audited(
    live: Live, space: tuple[Path, attack_pca.FaceSpace]
) -> None:
    token, key_id = live.key(rate=1000, burst=1000)  # default: rounded, watched
    target = live.targets[0]
    with ServiceClient(live.url, token) as client:
        rows = attack.reconstruct_all(_reconstructor(client, space), live.targets[:2], 300, 0)
        acc = client.accounting
    first = rows[0]
    assert not first["success"] and first["stopped"] == "key locked (probing)", first
    assert PROBES_TO_LOCK <= first["queries"] < 300
    assert rows[1] == {"target": live.targets[1], "stopped": "not attempted: key locked (probing)"}
    events = live.events(key_id)
    assert events.count((429, "probing")) == 1  # the probe that locked the key
    assert all(e is None for s, e in events if s == 200)
    assert acc.answered == first["queries"] and acc.refused >= 1
    # still locked: refused before any work, with the lock's Retry-After
    r = _identify(token, live.url, "img1.jpg")
    assert r.status_code == 429 and "probing" in r.json()["error"]
    assert LOCK - 60 <= int(r.headers["retry-after"]) <= LOCK
    # the attack's target is still recognised for other keys
    other, _ = live.key()
    assert _identify(other, live.url, "img1.jpg").status_code == 200
    del target


def test_ordinary_use_is_not_locked(live: Live) -> None:
    """Many different people's photos from one key, none enrolled: no lock."""
    token, key_id = live.key(rate=1000, burst=1000)
    photos = [p for d in sorted(LFW.iterdir())[:60] for p in sorted(d.glob("*.jpg"))[:1]]
    with httpx.Client(base_url=live.url, headers={"Authorization": f"Bearer {token}"}) as c:
        codes = [
            c.post(f"/collections/{COLLECTION}/identify",
                   files={"file": (p.name, p.read_bytes(), "image/jpeg")}, timeout=120).status_code
            for p in photos
        ]  # fmt: skip
    assert 429 not in codes and codes.count(200) >= 50
    assert all(e is None for _, e in live.events(key_id))


def test_per_person_budget_stops_the_attack_on_that_person(
    live: Live, space: tuple[Path, attack_pca.FaceSpace]
) -> None:
    token, key_id = live.key(rate=1000, burst=1000, target_quota=5)  # below the lock's 10
    with ServiceClient(live.url, token) as client:
        rows = attack.reconstruct_all(_reconstructor(client, space), live.targets[:2], 50, 0)
        acc = client.accounting
    # the probes' top candidate is often someone else: the budget of whoever it is runs out
    assert rows[0]["stopped"] == "target budget exhausted", rows[0]
    assert rows[1]["stopped"] in ("target budget exhausted", "key locked (probing)")
    assert acc.target_refused >= 1
    assert (429, None) in live.events(key_id)
    # verify against the claimed person: 12 answered, then 429 before any work
    token, _ = live.key(target_quota=12)
    with httpx.Client(base_url=live.url, headers={"Authorization": f"Bearer {token}"}) as c:

        def ask(person: str) -> httpx.Response:
            form = {"collection": COLLECTION, "person": person}
            return c.post("/verify", files={"a": photo("img1.jpg")}, data=form, timeout=120)

        codes = [ask("angelina_jolie").status_code for _ in range(13)]
        assert codes == [200] * 12 + [429]
        r = ask("angelina_jolie")
        assert "one person" in r.json()["error"] and int(r.headers["retry-after"]) >= 1
        assert ask("elon_musk").status_code == 200  # another person's budget is untouched


def test_cli_creates_keys_with_the_defences(tmp_path: Path) -> None:
    from faceprint.cli.main import main

    gallery = str(tmp_path / "g.db")
    base = ["api-keys", "create", "--gallery", gallery, "--collections", "*"]
    assert main([*base, "--scores", "none", "--target-quota", "7"]) == 0
    assert main([*base, "--scores", "loud"]) == 1
    assert main([*base, "--target-quota", "0"]) == 1
    assert main([*base, "--role", "admin"]) == 0
    from faceprint.gallery.sqlite import SqliteDatabase
    from faceprint.service.tables import COMPONENTS

    db = SqliteDatabase(Path(gallery), components=COMPONENTS)
    try:
        keys = list_keys(db)
    finally:
        db.close()
    assert [(k.scores, k.target_quota) for k in keys] == [("none", 7), ("full", 2_000_000_000)]
