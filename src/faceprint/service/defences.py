"""Defences against score-leak attacks, chosen by what ``faceprint eval attack`` measured
(README, "Score-leak attacks"):

* **score exposure per key** (``api_keys.scores``): ``full`` (4 decimals), ``rounded`` (2
  decimals) or ``none`` (decisions only: a name or null, no similarity, no ranking of
  other candidates);
* **per-target probe budget** (``api_keys.target_quota``): recognition queries per UTC day
  in which one enrolled person is the top candidate (identify) or the claimed person
  (verify); past it the key gets 429 for that person until the next day;
* **the loosest threshold a client may ask for**: a non-admin key's ``fmr`` is at most
  :data:`MAX_CLIENT_FMR` (403 above it);
* **probing detection**: many near-identical probes that are not accepted, all nearest to
  the same person, from one key within a few minutes (what a score-climbing optimiser
  sends) lock the key for a while (429 with Retry-After) and write an ``probing`` audit
  event.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict, deque
from dataclasses import dataclass, field

import numpy as np

from faceprint.errors import AuthError
from faceprint.gallery.database import Database

SCORE_MODES = ("full", "rounded", "none")
#: Loosest false-match rate a non-admin key may ask for: at 1e-1 a one-batch dictionary of
#: 100 strangers matched 10 of 10 targets, at the default 1e-3 none (README).
MAX_CLIENT_FMR = 1e-3
#: Probing: a probe counts when it is not accepted, its top candidate is the same person
#: as the earlier one's, and its template is at least this similar to it.
NEAR_DUPLICATE = 0.90
#: ... this many such probes within WINDOW seconds lock the key for LOCK seconds (measured,
#: bench/score_attack.py: at 30 the NES reconstruction was locked only after 61-106 queries
#: and named 3 of 10 targets first; at 10 it is locked after 22-38, before any success).
PROBES_TO_LOCK = 10
WINDOW = 600.0
LOCK = 900.0
#: Recent probes remembered per key, and keys remembered (least recently used dropped).
MEMORY = 64
MAX_KEYS = 10_000


def shown(mode: str, value: float) -> float | None:
    """A similarity as a key with this score mode may see it."""
    if mode == "none":
        return None
    return round(float(value), 4 if mode == "full" else 2)


def spend_target(db: Database, key_id: int, quota: int, collection: str, person: str) -> None:
    """Count one query aimed at ``person``; 429 once the key's daily quota for them is used."""
    day = time.strftime("%Y-%m-%d", time.gmtime())
    with db.transaction() as tx:
        row = tx.one(
            "INSERT INTO target_usage(key_id, day, collection, person, queries) "
            "VALUES (%s, %s, %s, %s, 1) ON CONFLICT (key_id, day, collection, person) "
            "DO UPDATE SET queries = target_usage.queries + 1 "
            "WHERE target_usage.queries < %s RETURNING queries",
            (key_id, day, collection, person, quota),
        )
    if row is None:
        raise AuthError(
            f"this API key's daily budget of {quota} queries aimed at one person is used up",
            429,
            retry_after=86400 - (time.time() % 86400),
        )


@dataclass
class _Recent:
    probes: deque[tuple[float, np.ndarray, str]] = field(
        default_factory=lambda: deque(maxlen=MEMORY)
    )
    locked_until: float = 0.0


@dataclass
class ProbeWatch:
    """Per-process memory of each key's recent probes (bounded)."""

    _keys: OrderedDict[int, _Recent] = field(default_factory=OrderedDict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def check(self, key_id: int) -> None:
        """429 while the key is locked for probing."""
        with self._lock:
            recent = self._keys.get(key_id)
            wait = 0.0 if recent is None else recent.locked_until - time.monotonic()
        if wait > 0:
            raise AuthError("this API key is locked: its queries look like probing", 429, wait)

    def record(self, key_id: int, probe: np.ndarray, top: str, accepted: bool) -> bool:
        """Remember a probe; True when it just locked the key."""
        now = time.monotonic()
        vec = np.asarray(probe, dtype=np.float32).reshape(-1)
        with self._lock:
            recent = self._keys.pop(key_id, None) or _Recent()
            self._keys[key_id] = recent
            while len(self._keys) > MAX_KEYS:
                self._keys.popitem(last=False)
            while recent.probes and now - recent.probes[0][0] > WINDOW:
                recent.probes.popleft()
            if accepted:
                return False
            similar = sum(
                1 for _, v, name in recent.probes
                if name == top and float(v @ vec) >= NEAR_DUPLICATE
            )  # fmt: skip
            recent.probes.append((now, vec, top))
            if similar + 1 >= PROBES_TO_LOCK:
                recent.locked_until = now + LOCK
                recent.probes.clear()
                return True
        return False
