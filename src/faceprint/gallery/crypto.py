"""Templates at rest: AES-256-GCM encryption of the embedding column.

The key comes from ``FACEPRINT_TEMPLATE_KEY`` (32 bytes, base64 or hex). A gallery that
was first written with a key stores a key-check value in its meta table; from then on
every template blob is ``MAGIC + nonce + ciphertext`` with the row's person id and model
pack as associated data, so a blob moved to another person's row fails to decrypt.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
import sqlite3
from typing import Any

from faceprint.errors import GalleryError

ENV = "FACEPRINT_TEMPLATE_KEY"
META_KEY = "template_key_check"
MAGIC = b"FPT1"
NONCE = 12


def key_from_env() -> bytes | None:
    """The 256-bit template key from the environment, or None when it is not set."""
    text = os.environ.get(ENV, "").strip()
    if not text:
        return None
    raw: bytes | None = None
    if len(text) == 64:
        try:
            raw = bytes.fromhex(text)
        except ValueError:
            raw = None
    if raw is None:
        try:
            raw = base64.b64decode(text, validate=True)
        except (binascii.Error, ValueError):
            raw = None
    if raw is None or len(raw) != 32:
        raise GalleryError(f"{ENV} must be a 256-bit key: 64 hex digits or 44 base64 characters")
    return raw


def key_check(key: bytes) -> str:
    """A value that identifies the key without revealing it."""
    return hmac.new(key, b"faceprint template key check", hashlib.sha256).hexdigest()[:32]


def aad(person_id: int, pack: str) -> bytes:
    return f"{person_id}:{pack}".encode()


class TemplateCodec:
    """Encodes template blobs for storage and decodes them back (no-op without a key)."""

    def __init__(self, key: bytes | None, where: str = "gallery") -> None:
        self._aes: Any = None
        if key is not None:
            try:  # the optional "privacy" extra: only needed once a key is set
                from cryptography.hazmat.primitives.ciphers.aead import AESGCM
            except ImportError as exc:
                raise GalleryError(
                    f"{ENV} is set but the cryptography package is missing: "
                    f"pip install 'faceprint[privacy]'"
                ) from exc
            self._aes = AESGCM(key)
        self.where = where

    @property
    def encrypted(self) -> bool:
        return self._aes is not None

    def encode(self, raw: bytes, associated: bytes) -> bytes:
        if self._aes is None:
            return raw
        nonce = os.urandom(NONCE)
        return MAGIC + nonce + self._aes.encrypt(nonce, raw, associated)

    def decode(self, blob: bytes, associated: bytes) -> bytes:
        if self._aes is None:
            return blob
        from cryptography.exceptions import InvalidTag

        if not blob.startswith(MAGIC):
            raise GalleryError(f"{self.where}: a template is not encrypted as it should be")
        nonce = blob[len(MAGIC) : len(MAGIC) + NONCE]
        try:
            return self._aes.decrypt(nonce, blob[len(MAGIC) + NONCE :], associated)
        except InvalidTag as exc:
            raise GalleryError(
                f"{self.where}: an encrypted template fails authentication (corrupted, or "
                f"moved from another row)"
            ) from exc


def choose_codec(
    stored_check: str | None, has_templates: bool, where: str
) -> tuple[TemplateCodec, str | None]:
    """The codec for a store, given its recorded key check and whether it holds templates.

    Returns the codec and the key check to record (None: nothing to record). Without a key
    and without a key check: templates in the clear. With a key on a store that has no
    templates yet: the store becomes encrypted. Any mismatch is refused.
    """
    key = key_from_env()
    if stored_check is not None:
        if key is None:
            raise GalleryError(f"{where}: templates are encrypted; set {ENV} to the gallery's key")
        if not hmac.compare_digest(stored_check, key_check(key)):
            raise GalleryError(f"{where}: {ENV} is not the key this gallery was encrypted with")
        return TemplateCodec(key, where), None
    if key is None:
        return TemplateCodec(None, where), None
    if has_templates:
        raise GalleryError(
            f"{where}: holds templates in the clear; unset {ENV} to use it, or enroll into "
            f"a new gallery to have templates encrypted"
        )
    return TemplateCodec(key, where), key_check(key)


def open_codec(db: sqlite3.Connection, where: str) -> TemplateCodec:
    """The codec for a SQLite gallery (call inside a write transaction: it may record the
    key check in ``meta``)."""
    row = db.execute("SELECT value FROM meta WHERE key=?", (META_KEY,)).fetchone()
    has_templates = db.execute("SELECT 1 FROM templates LIMIT 1").fetchone() is not None
    codec, record = choose_codec(None if row is None else str(row[0]), has_templates, where)
    if record is not None:
        db.execute("INSERT INTO meta(key, value) VALUES (?, ?)", (META_KEY, record))
    return codec
