"""A tiny wrapper over SEAL's CKKS scheme (through ``tenseal.sealapi``) and its key files.

Parameters: polynomial degree 8192 (4,096 slots) and coefficient modulus 60+40+60 = 160
bits, below SEAL's 128-bit-security limit of 218 bits for 8192 (checked at start-up).
One rescale is enough: every score is a single sum of products.
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import numpy as np
import tenseal.sealapi as seal

from faceprint.errors import FaceprintError, KeyFileError

POLY_DEGREE = 8192
COEFF_BITS = (60, 40, 60)
SCALE = 2.0**40
SLOTS = POLY_DEGREE // 2

SECRET_FILE = "secret.key"
PUBLIC_FILE = "public.key"
RELIN_FILE = "relin.key"
META_FILE = "keys.json"


T = TypeVar("T")


def _parameters() -> seal.EncryptionParameters:
    max_bits = seal.CoeffModulus.MaxBitCount(POLY_DEGREE, seal.SEC_LEVEL_TYPE.TC128)
    if sum(COEFF_BITS) > max_bits:  # pragma: no cover - a constant, guarded anyway
        raise FaceprintError(f"coefficient modulus {sum(COEFF_BITS)} bits > {max_bits}")
    parms = seal.EncryptionParameters(seal.SCHEME_TYPE.CKKS)
    parms.set_poly_modulus_degree(POLY_DEGREE)
    parms.set_coeff_modulus(seal.CoeffModulus.Create(POLY_DEGREE, list(COEFF_BITS)))
    return parms


class He:
    """The CKKS context with its encoder and evaluator: what every party shares."""

    def __init__(self) -> None:
        self.context = seal.SEALContext(_parameters(), True, seal.SEC_LEVEL_TYPE.TC128)
        if not self.context.parameters_set():  # pragma: no cover
            raise FaceprintError(f"bad CKKS parameters: {self.context.parameter_error_message()}")
        self.encoder = seal.CKKSEncoder(self.context)
        self.evaluator = seal.Evaluator(self.context)

    # -- encoding -------------------------------------------------------------------------
    def encode(self, values: np.ndarray | float) -> seal.Plaintext:
        plain = seal.Plaintext()
        if isinstance(values, np.ndarray):
            self.encoder.encode(values.astype(np.float64).tolist(), SCALE, plain)
        else:
            self.encoder.encode(float(values), SCALE, plain)
        return plain

    def decode(self, plain: seal.Plaintext) -> np.ndarray:
        return np.asarray(self.encoder.decode_double(plain), dtype=np.float64)

    # -- (de)serialisation through files: sealapi only saves to and loads from paths ------
    def load(self, kind: Callable[[], T], path: Path) -> T:
        obj = kind()
        try:
            obj.load(self.context, str(path))  # type: ignore[attr-defined]
        except Exception as exc:  # SEAL raises ValueError/RuntimeError on bad data
            raise KeyFileError(
                f"{path}: cannot be loaded, corrupted or wrong key set ({exc})"
            ) from exc
        return obj


@dataclass
class PublicKeys:
    """What the matching server and the capture client may hold: no secret key."""

    key_id: str
    public: seal.PublicKey
    relin: seal.RelinKeys


def _key_id(public_file: Path) -> str:
    return hashlib.sha256(public_file.read_bytes()).hexdigest()[:16]


def create_keys(directory: str | Path, he: He | None = None) -> str:
    """Write a new key set into ``directory``; every key file gets mode 0600."""
    he = he or He()
    out = Path(directory)
    if (out / SECRET_FILE).exists():
        raise KeyFileError(f"{out}: already holds a key set; refusing to overwrite it")
    try:
        out.mkdir(parents=True, exist_ok=True, mode=0o700)
        keygen = seal.KeyGenerator(he.context)
        public = seal.PublicKey()
        keygen.create_public_key(public)
        relin = seal.RelinKeys()
        keygen.create_relin_keys(relin)
        for name, obj in (
            (SECRET_FILE, keygen.secret_key()), (PUBLIC_FILE, public), (RELIN_FILE, relin),
        ):  # fmt: skip
            path = out / name
            os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600))
            os.chmod(path, 0o600)  # whatever the umask
            obj.save(str(path))
        key_id = _key_id(out / PUBLIC_FILE)
        meta = {"scheme": "ckks", "poly_degree": POLY_DEGREE, "coeff_bits": list(COEFF_BITS)}
        meta_path = out / META_FILE
        fd = os.open(meta_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(json.dumps({**meta, "key_id": key_id}, indent=2))
    except OSError as exc:
        raise KeyFileError(f"{out}: cannot write the key set ({exc.strerror or exc})") from None
    return key_id


def _check_meta(directory: Path) -> str:
    meta_path = directory / META_FILE
    if not meta_path.is_file():
        raise KeyFileError(f"{directory}: no key set here (run `faceprint keys create --dir ...`)")
    try:
        meta = json.loads(meta_path.read_text())
        if meta["poly_degree"] != POLY_DEGREE or tuple(meta["coeff_bits"]) != COEFF_BITS:
            raise KeyFileError(f"{directory}: keys made for other CKKS parameters")
        return str(meta["key_id"])
    except (ValueError, KeyError, TypeError) as exc:
        raise KeyFileError(f"{meta_path}: not a faceprint key description ({exc})") from exc


def load_public(directory: str | Path, he: He) -> PublicKeys:
    """The public and relinearisation keys of a key set (never the secret key)."""
    path = Path(directory)
    key_id = _check_meta(path)
    for name in (PUBLIC_FILE, RELIN_FILE):
        if not (path / name).is_file():
            raise KeyFileError(f"{path / name}: missing key file")
    if _key_id(path / PUBLIC_FILE) != key_id:
        raise KeyFileError(f"{path / PUBLIC_FILE}: does not match {path / META_FILE}")
    return PublicKeys(
        key_id,
        he.load(seal.PublicKey, path / PUBLIC_FILE),
        he.load(seal.RelinKeys, path / RELIN_FILE),
    )


def load_secret(directory: str | Path, he: He) -> seal.SecretKey:
    """The secret key; refused when its file can be read or written by anyone but the owner."""
    path = Path(directory) / SECRET_FILE
    _check_meta(Path(directory))
    if not path.is_file():
        raise KeyFileError(f"{path}: missing secret key (only the key holder has it)")
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:
        raise KeyFileError(
            f"{path}: permissions {mode:04o} let others read the secret key; run `chmod 600 {path}`"
        )
    return he.load(seal.SecretKey, path)
