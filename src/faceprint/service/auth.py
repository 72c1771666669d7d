"""API keys: hashed tokens scoped to roles and collections, rate limits and daily budgets.

A token is 32 random bytes (URL-safe base64, prefixed ``fp_``); only its sha256 is stored.
Roles:

* ``admin``: everything on its collections (``*``: all, and creating collections), raw
  scores;
* ``enroll``: add, list and delete people and their face templates;
* ``recognise``: detect, verify and identify.

Every request looks its key up (an indexed read), so a revoked key stops at once. Failed
authentications are throttled per client address, so a flood of unknown tokens costs
neither database lookups nor audit rows beyond the allowance.
"""

from __future__ import annotations

import hashlib
import json
import secrets
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

from faceprint.errors import AuthError, FaceprintError
from faceprint.gallery.database import Database
from faceprint.service.defences import SCORE_MODES

ROLES = ("admin", "enroll", "recognise")
ALL = "*"
#: Largest numbers a key may be given (they are stored in 32-bit columns).
MAX_RATE = 10_000.0
MAX_COUNT = 2_000_000_000
#: Failed authentications allowed per client address: burst, then per second.
FAILED_BURST = 20
FAILED_RATE = 1.0
#: Most token buckets kept (least recently used dropped first).
MAX_BUCKETS = 10_000
#: Defaults of the score-leak defences per kind of key (README, "Score-leak attacks").
DEFAULT_SCORES = {"admin": "full", "other": "rounded"}
#: 100: with scores, NES named 1 of 10 targets within 100 queries aimed at them, 5 within
#: 150 (median 150-208 queries to success; README, "Score-leak attacks").
DEFAULT_TARGET_QUOTA = {"admin": MAX_COUNT, "other": 100}


@dataclass(frozen=True)
class ApiKey:
    id: int
    name: str
    prefix: str
    roles: tuple[str, ...]
    collections: tuple[str, ...]
    rate: float  # requests per second (token bucket refill)
    burst: int  # bucket size
    daily_quota: int  # recognition queries per UTC day
    revoked: bool = False
    scores: str = "rounded"  # what similarities the key sees: full, rounded or none
    target_quota: int = MAX_COUNT  # queries per UTC day aimed at one person

    @property
    def admin(self) -> bool:
        return "admin" in self.roles

    def require(self, role: str, collection: str | None = None) -> None:
        """Raise 403 unless this key has ``role`` (admin has all) on ``collection``."""
        if not self.admin and role not in self.roles:
            raise AuthError(f"this API key does not have the {role!r} role", 403)
        if collection is not None and not self.can_see(collection):
            raise AuthError(f"this API key is not allowed on collection {collection!r}", 403)

    def can_see(self, collection: str) -> bool:
        return ALL in self.collections or collection in self.collections


def _digest(token: str) -> bytes:
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).digest()


def check_limits(rate: float, burst: int, daily_quota: int) -> None:
    if not (isinstance(rate, float | int) and 0 < rate <= MAX_RATE):  # also refuses NaN
        raise FaceprintError(f"--rate must be a number of requests per second in (0, {MAX_RATE:g}]")
    for label, value in (("--burst", burst), ("--daily-quota", daily_quota)):
        if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_COUNT:
            raise FaceprintError(f"{label} must be a whole number from 1 to {MAX_COUNT}")


def create_key(
    db: Database,
    name: str,
    roles: list[str],
    collections: list[str],
    *,
    rate: float = 20.0,
    burst: int = 40,
    daily_quota: int = 10_000,
    scores: str | None = None,
    target_quota: int | None = None,
) -> tuple[str, ApiKey]:
    """Create a key; returns the token (shown once, never stored) and the key record.
    ``scores`` and ``target_quota`` default by role (:data:`DEFAULT_SCORES`,
    :data:`DEFAULT_TARGET_QUOTA`)."""
    from faceprint.gallery.database import check_collection

    bad = [r for r in roles if r not in ROLES]
    if not roles or bad:
        raise FaceprintError(f"roles must be some of {', '.join(ROLES)} (got {roles})")
    if not collections:
        raise FaceprintError("a key needs --collections: names, or '*' for all")
    collections = [c if c == ALL else check_collection(c) for c in collections]
    role = "admin" if "admin" in roles else "other"
    scores = DEFAULT_SCORES[role] if scores is None else scores
    target = DEFAULT_TARGET_QUOTA[role] if target_quota is None else target_quota
    if scores not in SCORE_MODES:
        raise FaceprintError(f"--scores must be one of {', '.join(SCORE_MODES)}")
    check_limits(rate, burst, daily_quota)
    if isinstance(target, bool) or not isinstance(target, int) or not 1 <= target <= MAX_COUNT:
        raise FaceprintError(f"--target-quota must be a whole number from 1 to {MAX_COUNT}")
    if not name or len(name) > 100 or not name.isprintable():
        raise FaceprintError("a key's --name must be 1 to 100 printable characters")
    token = "fp_" + secrets.token_urlsafe(32)
    with db.transaction() as tx:
        row = tx.one(
            "INSERT INTO api_keys(name, token_hash, prefix, roles, collections, rate, burst, "
            "daily_quota, created, scores, target_quota) "
            "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s) RETURNING id",
            (name, _digest(token), token[:7], json.dumps(roles), json.dumps(collections),
             float(rate), burst, daily_quota, time.time(), scores, int(target)),
        )  # fmt: skip
    assert row is not None
    key = ApiKey(
        int(row[0]), name, token[:7], tuple(roles), tuple(collections), rate, burst,
        daily_quota, False, str(scores), int(target),
    )  # fmt: skip
    return token, key


def _key(row: tuple[Any, ...]) -> ApiKey:
    return ApiKey(
        int(row[0]), str(row[1]), str(row[2]), tuple(json.loads(str(row[3]))),
        tuple(json.loads(str(row[4]))), float(row[5]), int(row[6]), int(row[7]),
        row[8] is not None, str(row[9]), int(row[10]),
    )  # fmt: skip


_COLUMNS = (
    "id, name, prefix, roles, collections, rate, burst, daily_quota, revoked, scores, target_quota"
)


def list_keys(db: Database) -> list[ApiKey]:
    with db.reading() as tx:
        rows = tx.execute(f"SELECT {_COLUMNS} FROM api_keys ORDER BY id")
    return [_key(r) for r in rows]


def revoke_key(db: Database, key_id: int) -> None:
    with db.transaction() as tx:
        tx.execute(
            "UPDATE api_keys SET revoked = %s WHERE id = %s AND revoked IS NULL",
            (time.time(), key_id),
        )
        if tx.rowcount == 0:
            raise FaceprintError(f"no active API key with id {key_id}")


@dataclass
class _Bucket:
    tokens: float
    stamp: float


@dataclass
class KeyRing:
    """Authenticates tokens and applies per-key and per-address limits (per process)."""

    db: Database
    _buckets: OrderedDict[object, _Bucket] = field(default_factory=OrderedDict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def authenticate(self, token: str | None, client: str = "") -> ApiKey:
        self._take(("failed", client), FAILED_BURST, FAILED_RATE, peek=True)
        if not token:
            self._take(("failed", client), FAILED_BURST, FAILED_RATE)
            raise AuthError("an API key is required (header 'Authorization: Bearer <key>')", 401)
        key = None
        if len(token) <= 200 and token.isascii() and token.isprintable():
            with self.db.reading() as tx:
                row = tx.one(
                    f"SELECT {_COLUMNS} FROM api_keys WHERE token_hash = %s AND revoked IS NULL",
                    (_digest(token),),
                )
            key = _key(row) if row is not None else None
        if key is None:
            self._take(("failed", client), FAILED_BURST, FAILED_RATE)
            raise AuthError("unknown or revoked API key", 401)
        return key

    def _take(self, bucket_key: object, burst: float, rate: float, peek: bool = False) -> None:
        now = time.monotonic()
        with self._lock:
            bucket = self._buckets.pop(bucket_key, None) or _Bucket(float(burst), now)
            self._buckets[bucket_key] = bucket
            while len(self._buckets) > MAX_BUCKETS:
                self._buckets.popitem(last=False)
            bucket.tokens = min(burst, bucket.tokens + (now - bucket.stamp) * rate)
            bucket.stamp = now
            if bucket.tokens < 1.0:
                wait = (1.0 - bucket.tokens) / rate
                what = "failed authentications from this address" if peek else "requests"
                raise AuthError(f"too many {what}; slow down", 429, retry_after=wait)
            if not peek:
                bucket.tokens -= 1.0

    def throttle(self, key: ApiKey) -> None:
        """Token bucket per key (per process): 429 with Retry-After when empty."""
        try:
            self._take(("key", key.id), key.burst, key.rate)
        except AuthError as exc:
            raise AuthError("rate limit exceeded for this API key", 429, exc.retry_after) from None

    def spend_query(self, key: ApiKey) -> None:
        """Count one recognition query against the key's daily budget (all processes)."""
        day = time.strftime("%Y-%m-%d", time.gmtime())
        with self.db.transaction() as tx:
            row = tx.one(
                "INSERT INTO key_usage(key_id, day, queries) VALUES (%s, %s, 1) "
                "ON CONFLICT (key_id, day) DO UPDATE SET queries = key_usage.queries + 1 "
                "WHERE key_usage.queries < %s RETURNING queries",
                (key.id, day, key.daily_quota),
            )
        if row is None:
            midnight = 86400 - (time.time() % 86400)
            raise AuthError(
                f"daily query budget of {key.daily_quota} used up for this API key",
                429,
                retry_after=midnight,
            )
