"""API keys: hashed tokens scoped to roles and collections, rate limits and daily budgets.

A token is 32 random bytes (URL-safe base64, prefixed ``fp_``); only its sha256 is stored
and lookups compare digests in constant time. Roles:

* ``admin``: everything, including creating and deleting collections, and raw scores;
* ``enroll``: add, list and delete people and their face templates;
* ``recognise``: detect, verify and identify.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import threading
import time
from dataclasses import dataclass, field

from faceprint.errors import AuthError, FaceprintError
from faceprint.gallery.postgres import PostgresDatabase

ROLES = ("admin", "enroll", "recognise")
ALL = "*"


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
    return hashlib.sha256(token.encode()).digest()


def create_key(
    db: PostgresDatabase,
    name: str,
    roles: list[str],
    collections: list[str],
    *,
    rate: float = 20.0,
    burst: int = 40,
    daily_quota: int = 10_000,
) -> tuple[str, ApiKey]:
    """Create a key; returns the token (shown once, never stored) and the key record."""
    bad = [r for r in roles if r not in ROLES]
    if not roles or bad:
        raise FaceprintError(f"roles must be some of {', '.join(ROLES)} (got {roles})")
    if not collections:
        raise FaceprintError("a key needs --collections: names, or '*' for all")
    if rate <= 0 or burst < 1 or daily_quota < 1:
        raise FaceprintError("rate, burst and daily quota must be positive")
    token = "fp_" + secrets.token_urlsafe(32)
    with db.transaction() as conn:
        row = conn.execute(
            "INSERT INTO api_keys(name, token_hash, prefix, roles, collections, rate, burst, "
            "daily_quota) VALUES (%s, %s, %s, %s, %s, %s, %s, %s) RETURNING id",
            (name, _digest(token), token[:7], roles, collections, rate, burst, daily_quota),
        ).fetchone()
    assert row is not None
    key = ApiKey(
        int(row[0]), name, token[:7], tuple(roles), tuple(collections), rate, burst, daily_quota
    )
    return token, key


def list_keys(db: PostgresDatabase) -> list[ApiKey]:
    with db.pool.connection() as conn:
        rows = conn.execute(
            "SELECT id, name, prefix, roles, collections, rate, burst, daily_quota, "
            "revoked IS NOT NULL FROM api_keys ORDER BY id"
        ).fetchall()
    return [
        ApiKey(r[0], r[1], r[2], tuple(r[3]), tuple(r[4]), r[5], r[6], r[7], r[8]) for r in rows
    ]


def revoke_key(db: PostgresDatabase, key_id: int) -> None:
    with db.transaction() as conn:
        cur = conn.execute(
            "UPDATE api_keys SET revoked = now() WHERE id = %s AND revoked IS NULL", (key_id,)
        )
        if cur.rowcount == 0:
            raise FaceprintError(f"no active API key with id {key_id}")


@dataclass
class _Bucket:
    tokens: float
    stamp: float


@dataclass
class KeyRing:
    """Authenticates tokens (with a short cache) and applies per-key rate limits."""

    db: PostgresDatabase
    cache_seconds: float = 5.0
    _cache: dict[bytes, tuple[float, ApiKey | None]] = field(default_factory=dict)
    _buckets: dict[int, _Bucket] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def authenticate(self, token: str | None) -> ApiKey:
        if not token:
            raise AuthError("an API key is required (header 'Authorization: Bearer <key>')", 401)
        digest = _digest(token)
        now = time.monotonic()
        with self._lock:
            hit = self._cache.get(digest)
        if hit is not None and now - hit[0] < self.cache_seconds:
            key = hit[1]
        else:
            key = self._lookup(digest)
            with self._lock:
                self._cache[digest] = (now, key)
        if key is None:
            raise AuthError("unknown or revoked API key", 401)
        return key

    def _lookup(self, digest: bytes) -> ApiKey | None:
        with self.db.pool.connection() as conn:
            row = conn.execute(
                "SELECT id, name, prefix, roles, collections, rate, burst, daily_quota, "
                "token_hash FROM api_keys WHERE token_hash = %s AND revoked IS NULL",
                (digest,),
            ).fetchone()
        if row is None or not hmac.compare_digest(bytes(row[8]), digest):
            return None
        return ApiKey(row[0], row[1], row[2], tuple(row[3]), tuple(row[4]), row[5], row[6], row[7])

    def throttle(self, key: ApiKey) -> None:
        """Token bucket per key (per process): 429 with Retry-After when empty."""
        now = time.monotonic()
        with self._lock:
            bucket = self._buckets.setdefault(key.id, _Bucket(float(key.burst), now))
            bucket.tokens = min(key.burst, bucket.tokens + (now - bucket.stamp) * key.rate)
            bucket.stamp = now
            if bucket.tokens < 1.0:
                wait = (1.0 - bucket.tokens) / key.rate
                raise AuthError("rate limit exceeded for this API key", 429, retry_after=wait)
            bucket.tokens -= 1.0

    def spend_query(self, key: ApiKey) -> None:
        """Count one recognition query against the key's daily budget (all processes)."""
        with self.db.transaction() as conn:
            row = conn.execute(
                "INSERT INTO key_usage(key_id, day, queries) "
                "VALUES (%s, (now() AT TIME ZONE 'utc')::date, 1) "
                "ON CONFLICT (key_id, day) DO UPDATE SET queries = key_usage.queries + 1 "
                "WHERE key_usage.queries < %s RETURNING queries",
                (key.id, key.daily_quota),
            ).fetchone()
        if row is None:
            midnight = 86400 - (time.time() % 86400)
            raise AuthError(
                f"daily query budget of {key.daily_quota} used up for this API key",
                429,
                retry_after=midnight,
            )
