"""Encrypted search (CKKS) against plaintext search on real embeddings; keys; erasure;
templates encrypted at rest."""

from __future__ import annotations

import csv
import os
import shutil
import sqlite3
from collections import defaultdict
from contextlib import closing
from pathlib import Path

import numpy as np
import pytest
import tenseal.sealapi as seal

import faceprint
from faceprint.cli.main import main
from faceprint.errors import GalleryError
from faceprint.gallery import open_store
from faceprint.gallery.crypto import ENV
from faceprint.gallery.store import NewTemplate
from faceprint.models.packs import DEFAULT_PACK
from faceprint.privacy import (
    CaptureClient,
    KeyFileError,
    KeyHolder,
    MatchingServer,
    create_keys,
    encrypt_gallery,
    forget_encrypted,
)
from faceprint.privacy.encrypted_gallery import EncryptedGallery
from faceprint.privacy.he import SECRET_FILE, SLOTS, He

from .conftest import FACES

IDENTITIES = Path(__file__).parent / "data" / "identities.csv"


@pytest.fixture(scope="module")
def faces() -> dict[str, list[tuple[str, np.ndarray]]]:
    """Real embeddings: up to 3 photos each of the people with at least 2 photos."""
    by_person: dict[str, list[str]] = defaultdict(list)
    with IDENTITIES.open() as fh:
        rows = csv.DictReader(line for line in fh if not line.startswith("#"))
        for row in rows:
            by_person[row["person"]].append(row["file"])
    out: dict[str, list[tuple[str, np.ndarray]]] = {}
    for person, files in sorted(by_person.items()):
        if len(files) < 2:
            continue
        for f in files[:3]:
            face = faceprint.embed_faces(FACES / f)[0]
            if face is not None and face.embedding is not None:
                out.setdefault(person, []).append((f, face.embedding))
    return {p: v for p, v in out.items() if len(v) >= 2}


@pytest.fixture(scope="module")
def setup(
    faces: dict[str, list[tuple[str, np.ndarray]]], tmp_path_factory: pytest.TempPathFactory
) -> tuple[Path, Path, Path, list[np.ndarray]]:
    """Gallery of everyone's first photos but one; probes are the left-out photos."""
    root = tmp_path_factory.mktemp("privacy")
    db, keys, enc = root / "g.db", root / "keys", root / "g.enc"
    probes = []
    with closing(open_store(db, create=True)) as g:
        for person, items in faces.items():
            g.add_templates(person, [NewTemplate(e) for _, e in items[:-1]], pack=DEFAULT_PACK.id)
            probes.append(items[-1][1])
    create_keys(keys)
    encrypt_gallery(db, keys, enc)
    return db, keys, enc, probes


def plaintext_person_scores(db: Path, people: list[str], probe: np.ndarray) -> np.ndarray:
    with closing(open_store(db, read_only=True)) as g:
        hits = g.search(probe[None, :], k=len(people))[0]
    by_name = {h.name: h.similarity for h in hits}
    return np.array([by_name[p] for p in people])


def test_encrypted_search_equals_plaintext(
    setup: tuple[Path, Path, Path, list[np.ndarray]],
) -> None:
    db, keys, enc, probes = setup
    he = He()
    server = MatchingServer(enc, keys, he)
    holder = KeyHolder(keys, he)
    client = CaptureClient(keys, he)
    assert len(server.gallery.people) >= 5
    for i, probe in enumerate(probes):
        plain = plaintext_person_scores(db, server.gallery.people, probe)
        got = holder.person_scores(server.gallery, server.score(probe))
        assert np.abs(got - plain).max() < 1e-3
        assert int(np.argmax(got)) == int(np.argmax(plain))
        if i < 2:  # the encrypted probe costs ~1 s of client encryption each
            blocks = server.score_encrypted(client.encrypt_probe(probe))
            got = holder.person_scores(server.gallery, blocks)
            assert np.abs(got - plain).max() < 1e-3
            assert int(np.argmax(got)) == int(np.argmax(plain))
        decision = holder.decide(server.gallery, server.score(probe))
        top = server.gallery.people[int(np.argmax(plain))]
        assert decision.similarity == round(float(plain.max()), 2)
        assert decision.name == (top if plain.max() >= server.gallery.threshold else None)


def test_server_and_client_hold_no_secret_key(
    setup: tuple[Path, Path, Path, list[np.ndarray]], tmp_path: Path
) -> None:
    _, keys, enc, probes = setup
    public_only = tmp_path / "public"
    shutil.copytree(keys, public_only)
    (public_only / SECRET_FILE).unlink()
    server = MatchingServer(enc, public_only)
    client = CaptureClient(public_only)
    for obj in (server, client, server.public, client.public):
        for value in vars(obj).values():
            assert not isinstance(value, seal.SecretKey | seal.Decryptor)
    assert len(server.score_encrypted(client.encrypt_probe(probes[0]))) == 1
    with pytest.raises(KeyFileError, match="missing secret key"):
        KeyHolder(public_only)


def test_key_files_refused_clearly(
    setup: tuple[Path, Path, Path, list[np.ndarray]], tmp_path: Path
) -> None:
    _, keys, enc, _ = setup
    loose = tmp_path / "loose"
    shutil.copytree(keys, loose)
    os.chmod(loose / SECRET_FILE, 0o644)
    with pytest.raises(KeyFileError, match="permissions 0644"):
        KeyHolder(loose)
    with pytest.raises(KeyFileError, match="no key set"):
        KeyHolder(tmp_path / "nowhere")
    with pytest.raises(KeyFileError, match="already holds a key set"):
        create_keys(keys)
    assert (os.stat(keys / SECRET_FILE).st_mode & 0o777) == 0o600
    other = tmp_path / "other"
    create_keys(other)
    with pytest.raises(KeyFileError, match="wrong keys"):  # exit 8, as the README says
        MatchingServer(enc, other)
    broken = tmp_path / "broken"
    shutil.copytree(keys, broken)
    (broken / SECRET_FILE).write_bytes(b"not a key")
    os.chmod(broken / SECRET_FILE, 0o600)
    with pytest.raises(KeyFileError, match="cannot be loaded"):
        KeyHolder(broken)


def test_corrupted_ciphertext_refused_and_original_kept(
    setup: tuple[Path, Path, Path, list[np.ndarray]], tmp_path: Path
) -> None:
    _, keys, enc, _ = setup
    copy = tmp_path / "g.enc"
    shutil.copytree(enc, copy)
    victim = sorted(copy.glob("*.ct"))[5]
    data = bytearray(victim.read_bytes())
    data[len(data) // 2] ^= 0xFF
    victim.write_bytes(bytes(data))
    with pytest.raises(GalleryError, match="corrupted ciphertext"):
        MatchingServer(copy, keys)
    name = EncryptedGallery(copy).people[0]
    with pytest.raises(GalleryError, match="corrupted ciphertext"):
        forget_encrypted(copy, keys, name)
    assert EncryptedGallery(copy).people[0] == name  # nothing was rewritten


def _decrypted_slots(enc: Path, keys: Path) -> np.ndarray:
    holder = KeyHolder(keys)
    gallery = EncryptedGallery(enc)
    blocks = gallery.load_blocks(holder.he)
    cols = []
    for col in blocks[0]:
        plain = seal.Plaintext()
        holder._decryptor.decrypt(col, plain)
        cols.append(holder.he.decode(plain))
    return np.stack(cols, axis=1)  # (SLOTS, dim)


def test_forget_encrypted_leaves_no_slot_near_the_template(
    faces: dict[str, list[tuple[str, np.ndarray]]],
    setup: tuple[Path, Path, Path, list[np.ndarray]],
    tmp_path: Path,
) -> None:
    db, keys, enc, probes = setup
    copy = tmp_path / "g.enc"
    shutil.copytree(enc, copy)
    victim = EncryptedGallery(copy).people[0]
    template = faces[victim][0][1].astype(np.float64)
    before = _decrypted_slots(copy, keys)
    assert np.abs(before - template).max(axis=1).min() < 1e-3  # it was there
    assert forget_encrypted(copy, keys, victim) == len(faces[victim]) - 1
    after = _decrypted_slots(copy, keys)
    assert after.shape == (SLOTS, len(template))
    assert np.abs(after - template).max(axis=1).min() > 0.05
    gallery = EncryptedGallery(copy)
    assert victim not in gallery.people
    assert victim not in (copy / "manifest.json").read_text()
    server = MatchingServer(copy, keys)
    holder = KeyHolder(keys)
    for probe in probes[1:]:
        plain = plaintext_person_scores(db, EncryptedGallery(enc).people, probe)[1:]
        got = holder.person_scores(gallery, server.score(probe))
        assert np.abs(got - plain).max() < 1e-3


def test_forget_sqlite_leaves_nothing_in_the_file(
    faces: dict[str, list[tuple[str, np.ndarray]]], tmp_path: Path
) -> None:
    path = tmp_path / "g.db"
    people = list(faces)[:3]
    with closing(open_store(path, create=True)) as g:
        for p in people:
            g.add_templates(
                p, [NewTemplate(e, f"{p}-{i:02d}" * 4) for i, (_, e) in enumerate(faces[p])],
                pack="dlib",
            )  # fmt: skip
        reader = open_store(path, read_only=True)
        assert reader.search(faces[people[0]][0][1][None, :])[0][0].name == people[0]
        reader.close()
        g.remove(people[0])
    raw = b"".join(f.read_bytes() for f in tmp_path.iterdir() if f.name.startswith("g.db"))
    assert people[0].encode() not in raw
    for _, emb in faces[people[0]]:
        assert (emb / np.linalg.norm(emb)).astype("<f4").tobytes()[:32] not in raw
    assert people[1].encode() in raw  # the check can see what is still there


def test_templates_encrypted_at_rest(
    faces: dict[str, list[tuple[str, np.ndarray]]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "g.db"
    monkeypatch.setenv(ENV, "11" * 32)
    people = list(faces)[:3]
    with closing(open_store(path, create=True)) as g:
        for p in people:
            g.add_templates(p, [NewTemplate(e) for _, e in faces[p]], pack="dlib")
        probe = faces[people[1]][-1][1]
        assert g.search(probe[None, :])[0][0].name == people[1]
        stored = g.templates(people[0])[0].embedding
        np.testing.assert_allclose(stored, faces[people[0]][0][1], atol=1e-6)
    raw = path.read_bytes() + b"".join(p.read_bytes() for p in tmp_path.glob("g.db-*"))
    assert faces[people[0]][0][1].astype("<f4").tobytes()[:32] not in raw
    monkeypatch.delenv(ENV)
    with pytest.raises(GalleryError, match="templates are encrypted"):
        open_store(path)
    monkeypatch.setenv(ENV, "22" * 32)
    with pytest.raises(GalleryError, match="not the key"):
        open_store(path)
    monkeypatch.setenv(ENV, "not a key")
    with pytest.raises(GalleryError, match="256-bit"):
        open_store(path)
    monkeypatch.setenv(ENV, "11" * 32)
    db = sqlite3.connect(path)  # move a blob to another person's row
    rows = db.execute("SELECT id, person_id, embedding FROM templates ORDER BY id").fetchall()
    other = next(r for r in rows if r[1] != rows[0][1])
    db.execute("UPDATE templates SET embedding=? WHERE id=?", (other[2], rows[0][0]))
    db.commit()
    db.close()
    with closing(open_store(path)) as g, pytest.raises(GalleryError, match="fails authentication"):
        g.templates()
    with closing(open_store(path)) as g:
        assert len(g.people()) == 3  # the rest of the gallery is still there


def test_cli_encrypted_identify(
    faces: dict[str, list[tuple[str, np.ndarray]]],
    setup: tuple[Path, Path, Path, list[np.ndarray]],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    db, _, _, _ = setup
    keys, enc = tmp_path / "k", tmp_path / "g.enc"
    assert main(["keys", "create", "--dir", str(keys)]) == 0
    assert (
        main(["encrypt-gallery", "--gallery", str(db), "--keys", str(keys), "--out", str(enc)]) == 0
    )
    person, items = next(iter(faces.items()))
    photo = str(FACES / items[-1][0])
    capsys.readouterr()
    for extra in ([], ["--encrypted-probe"]):
        assert (
            main(["identify-encrypted", photo, "--enc", str(enc), "--keys", str(keys), *extra]) == 0
        )
        assert capsys.readouterr().out.split("\t")[1] == person
    os.chmod(keys / SECRET_FILE, 0o640)
    assert main(["identify-encrypted", photo, "--enc", str(enc), "--keys", str(keys)]) == 8
    assert "permissions" in capsys.readouterr().err
    os.chmod(keys / SECRET_FILE, 0o600)

    # one `forget` erases the person from the gallery and the encrypted gallery
    copy = tmp_path / "copy.db"
    shutil.copy(db, copy)
    args = ["forget", person, "--gallery", str(copy), "--enc", str(enc), "--keys", str(keys)]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "templates removed" in out or "template removed" in out
    assert f"in {enc}" in out
    assert main(["identify-encrypted", photo, "--enc", str(enc), "--keys", str(keys)]) == 0
    assert capsys.readouterr().out.split("\t")[1] != person
    assert main(args) == 6  # nobody of that name anywhere any more
    assert "no person named" in capsys.readouterr().err
