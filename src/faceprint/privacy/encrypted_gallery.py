"""Encrypted 1:N search: packing of templates into CKKS ciphertexts and the three roles.

Column layout: block b holds templates b*4096 .. b*4096+4095; its ciphertext j holds
coordinate j of each of them (one slot per template). For a probe p the score of every
template of the block is ``sum_j p[j] * ct_j``: scalar multiplies and additions, no
rotations, so one score ciphertext per block.

* ``KeyHolder`` (secret key): creates the encrypted gallery, decrypts score blocks and
  releases only the decision (top-1 name or unknown, with a rounded score).
* ``MatchingServer`` (ciphertexts + public/relinearisation keys): computes score blocks.
* ``CaptureClient`` (public key): encrypts a probe, each coordinate replicated over all
  slots (128 ciphertexts), so the server multiplies ciphertext by ciphertext.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import tenseal.sealapi as seal

from faceprint.errors import GalleryError, KeyFileError, NotFoundError
from faceprint.match.search import combine, weights_of
from faceprint.privacy.he import SLOTS, He, PublicKeys, load_public, load_secret

#: 2: slot weights and per-person mean-template norms (the person score of search.py)
FORMAT = 2
MANIFEST = "manifest.json"
F64 = np.ndarray


@dataclass(frozen=True)
class Decision:
    """All the key holder releases for a probe: a name (None = unknown) and a rounded score."""

    name: str | None
    similarity: float


def _ct_name(block: int, col: int) -> str:
    return f"b{block:04d}_c{col:03d}.ct"


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


class EncryptedGallery:
    """The files of an encrypted gallery: ciphertext blocks and a manifest without templates.

    The manifest holds the key set id, the names, and which person (and template id)
    each slot belongs to (-1: an empty slot); the templates exist only encrypted.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        manifest = self.path / MANIFEST
        if not manifest.is_file():
            raise GalleryError(f"{self.path}: not an encrypted gallery (no {MANIFEST})")
        try:
            meta: dict[str, Any] = json.loads(manifest.read_text())
            if meta["format"] != FORMAT:
                raise GalleryError(
                    f"{self.path}: encrypted gallery format {meta['format']} (this faceprint "
                    f"reads {FORMAT}); encrypt the gallery again (faceprint encrypt-gallery)"
                )
            self.key_id = str(meta["key_id"])
            self.dim = int(meta["dim"])
            self.pack = str(meta["pack"])
            self.threshold = float(meta["threshold"])
            self.people: list[str] = [str(n) for n in meta["people"]]
            self.slot_person = np.asarray(meta["slot_person"], dtype=np.int64)
            self.slot_template = np.asarray(meta["slot_template"], dtype=np.int64)
            self.slot_weight = np.asarray(meta["slot_weight"], dtype=np.float64)
            self.person_norm = np.asarray(meta["person_norm"], dtype=np.float64)
            self.blocks = int(meta["blocks"])
            self.checksums: dict[str, str] = dict(meta["checksums"])
            n = len(self.slot_person)
            if len(self.slot_template) != n or len(self.slot_weight) != n:
                raise ValueError("slot lists of different lengths")
            if len(self.person_norm) != len(self.people) or n != self.blocks * SLOTS:
                raise ValueError("people or blocks do not match the slots")
            if n and not -1 <= self.slot_person.min() <= self.slot_person.max() < len(self.people):
                raise ValueError("a slot belongs to no person")
            if not -1.0 <= self.threshold <= 1.0:  # also refuses NaN
                raise ValueError(f"threshold {self.threshold} is not a cosine similarity")
        except (ValueError, KeyError, TypeError, RecursionError, OSError) as exc:
            raise GalleryError(f"{manifest}: corrupted manifest ({exc})") from exc

    def check_key(self, key_id: str) -> None:
        if key_id != self.key_id:
            raise KeyFileError(
                f"{self.path} was encrypted for key set {self.key_id}, not {key_id}: wrong keys"
            )

    def load_blocks(self, he: He) -> list[list[seal.Ciphertext]]:
        blocks = []
        for b in range(self.blocks):
            cols = []
            for j in range(self.dim):
                f = self.path / _ct_name(b, j)
                if not f.is_file() or _sha(f) != self.checksums.get(f.name):
                    raise GalleryError(f"{f}: missing or corrupted ciphertext block")
                cols.append(he.load(seal.Ciphertext, f))
            blocks.append(cols)
        return blocks


def check_out(out: Path) -> None:
    """``out`` (and its .tmp/.old siblings) may be written: missing, or an encrypted
    gallery's folder. Anything else (a gallery file, a folder of other files) is refused
    untouched: it would be replaced."""
    for p in (out, out.with_name(out.name + ".tmp"), out.with_name(out.name + ".old")):
        if p.is_symlink() or (p.exists() and not p.is_dir()):
            raise GalleryError(f"{p}: exists and is not an encrypted gallery; not replacing it")
    if out.is_dir() and any(out.iterdir()) and not (out / MANIFEST).is_file():
        raise GalleryError(f"{out}: a folder that is not an encrypted gallery; not replacing it")


def _write(
    out: Path,
    meta: dict[str, Any],
    blocks: dict[int, list[seal.Ciphertext]],
    keep_from: Path | None = None,
) -> None:
    """Write a gallery into a fresh directory, then swap it in (old one stays until then)."""
    check_out(out)
    tmp = out.with_name(out.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True, mode=0o700)
    checksums: dict[str, str] = {}
    for b in range(meta["blocks"]):
        for j in range(meta["dim"]):
            f = tmp / _ct_name(b, j)
            if b in blocks:
                blocks[b][j].save(str(f))
            elif keep_from is not None:
                shutil.copyfile(keep_from / f.name, f)
            os.chmod(f, 0o600)
            checksums[f.name] = _sha(f)
    manifest = tmp / MANIFEST  # it holds the names: private, like the ciphertexts
    fd = os.open(manifest, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(json.dumps({**meta, "checksums": checksums}))
    old = out.with_name(out.name + ".old")
    shutil.rmtree(old, ignore_errors=True)
    if out.exists():
        os.replace(out, old)
    os.replace(tmp, out)
    shutil.rmtree(old, ignore_errors=True)


class KeyHolder:
    """Holds the secret key: encrypts the gallery, decrypts scores, releases decisions."""

    def __init__(self, keys: str | Path, he: He | None = None) -> None:
        self.he = he or He()
        self.keys = load_public(keys, self.he)
        secret = load_secret(keys, self.he)
        self._encryptor = seal.Encryptor(self.he.context, self.keys.public)
        self._decryptor = seal.Decryptor(self.he.context, secret)

    def _encrypt_block(self, emb: np.ndarray) -> list[seal.Ciphertext]:
        """Ciphertext j = coordinate j of each template (rows of ``emb``), zeros elsewhere."""
        cols = np.zeros((emb.shape[1], SLOTS), dtype=np.float64)
        cols[:, : len(emb)] = emb.T
        out = []
        for col in cols:
            ct = seal.Ciphertext()
            self._encryptor.encrypt(self.he.encode(col), ct)
            out.append(ct)
        return out

    def encrypt_gallery(
        self,
        out: str | Path,
        embeddings: np.ndarray,
        names: list[str],
        template_ids: list[int],
        *,
        pack: str,
        threshold: float,
        quality: list[float | None] | None = None,
    ) -> EncryptedGallery:
        """Encrypt templates (rows, one name and id each, and their qualities) into the
        directory ``out``."""
        check_out(Path(out))  # before any work
        emb = np.asarray(embeddings, dtype=np.float64)
        if emb.ndim != 2 or len(emb) == 0:
            raise GalleryError("nothing to encrypt: need (N, D) templates")
        if not len(emb) == len(names) == len(template_ids):
            raise GalleryError(
                f"{len(emb)} templates, {len(names)} names and {len(template_ids)} template ids: "
                f"need one name and one id per template"
            )
        people = sorted(set(names))
        index = {n: i for i, n in enumerate(people)}
        n_blocks = -(-len(emb) // SLOTS)
        slot_person = np.full(n_blocks * SLOTS, -1, dtype=np.int64)
        slot_template = np.full(n_blocks * SLOTS, -1, dtype=np.int64)
        slot_person[: len(emb)] = [index[n] for n in names]
        slot_template[: len(emb)] = template_ids
        q = [np.nan if v is None else v for v in (quality or [None] * len(emb))]
        slot_weight = np.zeros(n_blocks * SLOTS)
        slot_weight[: len(emb)] = weights_of(np.array(q, np.float32), len(emb))
        sums = np.zeros((len(people), emb.shape[1]))
        np.add.at(sums, slot_person[: len(emb)], emb * slot_weight[: len(emb), None])
        blocks = {b: self._encrypt_block(emb[b * SLOTS : (b + 1) * SLOTS]) for b in range(n_blocks)}
        meta = {
            "format": FORMAT,
            "key_id": self.keys.key_id,
            "dim": int(emb.shape[1]),
            "pack": pack,
            "threshold": float(threshold),
            "people": people,
            "slot_person": slot_person.tolist(),
            "slot_template": slot_template.tolist(),
            "slot_weight": slot_weight.tolist(),
            "person_norm": np.linalg.norm(sums, axis=1).tolist(),
            "blocks": n_blocks,
        }
        _write(Path(out), meta, blocks)
        return EncryptedGallery(out)

    def decrypt_scores(self, gallery: EncryptedGallery, blocks: list[seal.Ciphertext]) -> F64:
        """Every slot's score (internal to the key holder: never released as such)."""
        gallery.check_key(self.keys.key_id)
        if len(blocks) != gallery.blocks:
            raise GalleryError(f"expected {gallery.blocks} score blocks, got {len(blocks)}")
        out = []
        for ct in blocks:
            plain = seal.Plaintext()
            self._decryptor.decrypt(ct, plain)
            out.append(self.he.decode(plain))
        return np.concatenate(out)

    def person_scores(self, gallery: EncryptedGallery, blocks: list[seal.Ciphertext]) -> F64:
        """The person score per person (index into ``gallery.people``): the rule of
        :func:`faceprint.match.search.person_score`, from slot scores, slot weights and the
        norms of the people's weighted template sums."""
        scores = self.decrypt_scores(gallery, blocks)
        used = gallery.slot_person >= 0
        who = gallery.slot_person[used]
        best = np.full(len(gallery.people), -np.inf)
        np.maximum.at(best, who, scores[used])
        weighted = np.zeros(len(gallery.people))
        np.add.at(weighted, who, scores[used] * gallery.slot_weight[used])
        mean = weighted / np.maximum(gallery.person_norm, 1e-12)
        return np.asarray(combine(best, mean), dtype=np.float64)

    def decide(
        self,
        gallery: EncryptedGallery,
        blocks: list[seal.Ciphertext],
        threshold: float | None = None,
    ) -> Decision:
        """The only output: top-1 name (None below the threshold) and its score to 2 decimals."""
        best = self.person_scores(gallery, blocks)
        if len(best) == 0:
            raise GalleryError(f"{gallery.path}: the encrypted gallery is empty")
        top = int(np.argmax(best))
        thr = gallery.threshold if threshold is None else threshold
        score = round(float(best[top]), 2)
        return Decision(gallery.people[top] if best[top] >= thr else None, score)

    def forget(self, path: str | Path, name: str) -> int:
        """Erase a person: zero their slots, re-encrypt those blocks afresh, drop their name."""
        return self.plan_forget(path, name)()

    def plan_forget(self, path: str | Path, name: str) -> Callable[[], int]:
        """Check and prepare erasing a person (every read, decryption and re-encryption);
        the returned call writes it. Nothing is written until then, so several stores can
        be checked first and then erased together."""
        gallery = EncryptedGallery(path)
        gallery.check_key(self.keys.key_id)
        if name not in gallery.people:
            raise NotFoundError(f"no person named {name!r} in {gallery.path}")
        pid = gallery.people.index(name)
        slots = np.flatnonzero(gallery.slot_person == pid)
        affected = sorted({int(s) // SLOTS for s in slots})
        all_blocks = gallery.load_blocks(self.he)
        fresh: dict[int, list[seal.Ciphertext]] = {}
        for b in affected:
            cols = []
            for ct in all_blocks[b]:
                plain = seal.Plaintext()
                self._decryptor.decrypt(ct, plain)
                cols.append(self.he.decode(plain))
            emb = np.stack(cols, axis=1)  # (SLOTS, dim)
            local = slots[slots // SLOTS == b] % SLOTS
            emb[local] = 0.0
            fresh[b] = self._encrypt_block(emb)
        slot_person = gallery.slot_person.copy()
        slot_template = gallery.slot_template.copy()
        slot_weight = gallery.slot_weight.copy()
        slot_person[slots] = -1
        slot_template[slots] = -1
        slot_weight[slots] = 0.0
        slot_person[slot_person > pid] -= 1
        meta = {
            "format": FORMAT,
            "key_id": gallery.key_id,
            "dim": gallery.dim,
            "pack": gallery.pack,
            "threshold": gallery.threshold,
            "people": [p for p in gallery.people if p != name],
            "slot_person": slot_person.tolist(),
            "slot_template": slot_template.tolist(),
            "slot_weight": slot_weight.tolist(),
            "person_norm": np.delete(gallery.person_norm, pid).tolist(),
            "blocks": gallery.blocks,
        }

        def apply() -> int:
            _write(gallery.path, meta, fresh, keep_from=gallery.path)
            return len(slots)

        return apply


class MatchingServer:
    """Scores probes against the encrypted gallery. Holds no secret key: it cannot decrypt."""

    def __init__(self, gallery: str | Path, keys: str | Path, he: He | None = None) -> None:
        self.he = he or He()
        self.public: PublicKeys = load_public(keys, self.he)
        self.gallery = EncryptedGallery(gallery)
        self.gallery.check_key(self.public.key_id)
        self.blocks = self.gallery.load_blocks(self.he)

    def score(self, probe: np.ndarray) -> list[seal.Ciphertext]:
        """Score blocks for a probe in the clear (the server sees the probe, not the gallery)."""
        p = np.asarray(probe, dtype=np.float64).reshape(-1)
        if len(p) != self.gallery.dim:
            raise GalleryError(f"probe has {len(p)} dimensions, gallery has {self.gallery.dim}")
        ev = self.he.evaluator
        plains = [self.he.encode(float(v)) for v in p]
        out = []
        for cols in self.blocks:
            acc = seal.Ciphertext()
            tmp = seal.Ciphertext()
            ev.multiply_plain(cols[0], plains[0], acc)
            for ct, pt in zip(cols[1:], plains[1:], strict=True):
                ev.multiply_plain(ct, pt, tmp)
                ev.add_inplace(acc, tmp)
            ev.rescale_to_next_inplace(acc)
            out.append(acc)
        return out

    def score_encrypted(self, probe: list[seal.Ciphertext]) -> list[seal.Ciphertext]:
        """Score blocks for an encrypted probe (one replicated ciphertext per coordinate)."""
        if len(probe) != self.gallery.dim:
            raise GalleryError(
                f"encrypted probe has {len(probe)} ciphertexts, gallery has {self.gallery.dim}"
            )
        ev = self.he.evaluator
        out = []
        for cols in self.blocks:
            acc = seal.Ciphertext()
            tmp = seal.Ciphertext()
            ev.multiply(cols[0], probe[0], acc)
            for ct, pt in zip(cols[1:], probe[1:], strict=True):
                ev.multiply(ct, pt, tmp)
                ev.add_inplace(acc, tmp)
            ev.relinearize_inplace(acc, self.public.relin)
            ev.rescale_to_next_inplace(acc)
            out.append(acc)
        return out


class CaptureClient:
    """Encrypts probes with the public key, for a server that must not see them."""

    def __init__(self, keys: str | Path, he: He | None = None) -> None:
        self.he = he or He()
        self.public = load_public(keys, self.he)
        self._encryptor = seal.Encryptor(self.he.context, self.public.public)

    def encrypt_probe(self, probe: np.ndarray) -> list[seal.Ciphertext]:
        """One ciphertext per coordinate, the coordinate replicated over every slot."""
        out = []
        for v in np.asarray(probe, dtype=np.float64).reshape(-1):
            ct = seal.Ciphertext()
            self._encryptor.encrypt(self.he.encode(float(v)), ct)
            out.append(ct)
        return out
