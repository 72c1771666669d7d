"""The attack's only view of faceprint: an HTTP client of a running service, with accounting.

Every request is counted the way the service's audit log sees it (one row per request,
refused ones included). A 429 with ``Retry-After`` is honoured (the client sleeps that
long and sends the query again, counting both); a 429 for a used-up daily budget, a key
locked for probing (or one asking to wait longer than ``max_wait``) ends the run for that
key with :class:`BudgetExhausted`; a used-up per-person budget ends it for that target
only (:class:`TargetExhausted`). Nothing of the service is imported: the measurement covers the
real service, its detector, its thresholds and its defences.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from faceprint.errors import FaceprintError

#: How a key sees answers. ``scores``: what the service returns (its ``scores`` setting:
#: 4 decimals, 2, or none); ``decision``: only the name (or null) is used, any scores are
#: dropped by this client.
ANSWER_MODES = ("scores", "decision")


class BudgetExhausted(FaceprintError):
    """The service stopped answering this key (daily budget used up, or locked for
    probing): the run stops for this key. ``reason``: a short label of why."""

    def __init__(self, message: str, reason: str = "daily budget exhausted") -> None:
        super().__init__(message)
        self.reason = reason


class TargetExhausted(BudgetExhausted):
    """The key's daily budget of queries aimed at this person is used up."""


@dataclass
class Accounting:
    """What one key's client sent and what came back."""

    sent: int = 0  # HTTP requests (each is one audited request)
    status: Counter[int] = field(default_factory=Counter)
    retry_waits: list[float] = field(default_factory=list)  # Retry-After honoured (s)
    budget_exhausted: str | None = None  # the service's message, once
    target_refused: int = 0  # 429s for a used-up per-person budget

    @property
    def refused(self) -> int:
        """Requests refused with 429 (rate limit or budget): no answer, no budget spent."""
        return self.status[429]

    @property
    def answered(self) -> int:
        """Recognition queries the service worked on (an answer, or 'no face found')."""
        return self.status[200] + self.status[422]

    def to_dict(self) -> dict[str, Any]:
        return {
            "requests": self.sent,
            "answered": self.answered,
            "refused_429": self.refused,
            "no_face_422": self.status[422],
            "by_status": {str(k): v for k, v in sorted(self.status.items())},
            "waited_s": round(sum(self.retry_waits), 3),
            "budget_exhausted": self.budget_exhausted,
            "target_refused": self.target_refused,
        }


@dataclass(frozen=True)
class Answer:
    """The service's answer about one probe photo, as the answer mode lets the attacker see it.

    ``name``: who the service said the probe face is (None: nobody); ``score``: the
    target's similarity as returned (None when hidden, or when the target was not among
    the candidates); ``face``: whether the service found a face at all.
    """

    name: str | None
    score: float | None
    face: bool
    threshold: float | None = None


class ServiceClient:
    """A faceprint HTTP service seen through one API key."""

    def __init__(
        self,
        url: str,
        key: str,
        *,
        timeout: float = 120.0,
        max_wait: float = 120.0,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        import httpx

        self.url = url.rstrip("/")
        self.max_wait = max_wait
        self.accounting = Accounting()
        self.stop_reason = ""
        self._sleep = sleep
        self._lock = threading.Lock()
        self._http = httpx.Client(
            base_url=self.url, headers={"Authorization": f"Bearer {key}"}, timeout=timeout
        )

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> ServiceClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def request(self, method: str, path: str, **kw: Any) -> Any:
        """Send until the service answers other than 429 (honouring Retry-After); the
        response. BudgetExhausted when the key's daily budget is used up."""
        import httpx

        while True:
            with self._lock:
                if self.accounting.budget_exhausted is not None:
                    raise BudgetExhausted(self.accounting.budget_exhausted, self.stop_reason)
                self.accounting.sent += 1
            try:
                r = self._http.request(method, path, **kw)
            except httpx.HTTPError as exc:
                raise FaceprintError(
                    f"{self.url}{path}: the service did not answer: {exc}"
                ) from exc
            with self._lock:
                self.accounting.status[r.status_code] += 1
            if r.status_code != 429:
                return r
            wait = _retry_after(r)
            message = _message(r)
            if "one person" in message:
                with self._lock:
                    self.accounting.target_refused += 1
                raise TargetExhausted(message, "target budget exhausted")
            locked = "locked" in message
            if locked or "budget" in message.lower() or wait > self.max_wait:
                with self._lock:
                    self.accounting.budget_exhausted = message or f"429, retry after {wait:g} s"
                    self.stop_reason = (
                        "key locked (probing)" if locked else "daily budget exhausted"
                    )
                raise BudgetExhausted(
                    f"{self.url}: {message} (retry after {wait:g} s)", self.stop_reason
                )
            with self._lock:
                self.accounting.retry_waits.append(wait)
            self._sleep(wait)

    def ok(self, method: str, path: str, **kw: Any) -> Any:
        """A request that must succeed (setup): its JSON, or FaceprintError with the reason."""
        r = self.request(method, path, **kw)
        if r.status_code >= 300:
            raise FaceprintError(f"{method} {path}: {r.status_code} {_message(r)}")
        return r.json()

    # -- setup (an admin or enroll key) -----------------------------------------------

    def create_collection(self, name: str) -> bool:
        """Create a collection; False when it exists already."""
        r = self.request("POST", "/collections", json={"name": name})
        if r.status_code == 409:
            return False
        if r.status_code >= 300:
            raise FaceprintError(f"creating collection {name!r}: {r.status_code} {_message(r)}")
        return True

    def people(self, collection: str) -> list[str]:
        found = self.ok("GET", f"/collections/{collection}/people")
        return [p["name"] for p in found["people"]]

    def enroll(self, collection: str, person: str, photos: list[tuple[str, bytes]]) -> int:
        files = [("files", (name, data, "application/octet-stream")) for name, data in photos]
        found = self.ok("POST", f"/collections/{collection}/people/{person}/faces", files=files)
        return len(found["templates"])

    # -- queries ------------------------------------------------------------------------

    def identify(
        self, collection: str, photo: bytes, target: str, mode: str, *, top_k: int = 10,
        fmr: float | None = None,
    ) -> Answer:  # fmt: skip
        """Ask who is in ``photo``; the answer about its main face, for ``target``."""
        data: dict[str, str] = {"top_k": str(top_k)}
        if fmr is not None:
            data["fmr"] = repr(fmr)
        r = self.request(
            "POST",
            f"/collections/{collection}/identify",
            files={"file": ("probe.png", photo, "image/png")},
            data=data,
        )
        if r.status_code == 422:
            return Answer(None, None, False)
        if r.status_code != 200:
            raise FaceprintError(f"identify: {r.status_code} {_message(r)}")
        body = r.json()
        faces = body.get("faces") or []
        if not faces:
            return Answer(None, None, False)
        face = faces[0]  # the service's subject face (most prominent)
        name = face.get("name")
        if mode == "decision":
            return Answer(name, None, True)
        score = next(
            (c.get("similarity") for c in face.get("candidates") or [] if c["name"] == target),
            None,
        )
        score = None if score is None else float(score)
        return Answer(name, score, True, body.get("threshold"))

    def verify(self, collection: str, photo: bytes, person: str) -> Answer:
        """Is ``photo``'s subject face ``person`` of ``collection``? (name set when yes)."""
        r = self.request(
            "POST",
            "/verify",
            files={"a": ("probe.png", photo, "image/png")},
            data={"collection": collection, "person": person},
        )
        if r.status_code == 422:
            return Answer(None, None, False)
        if r.status_code != 200:
            raise FaceprintError(f"verify: {r.status_code} {_message(r)}")
        body = r.json()
        name = person if body["same"] else None
        sim, thr = body.get("similarity"), body.get("threshold")
        return Answer(
            name, None if sim is None else float(sim), True, None if thr is None else float(thr)
        )


def _retry_after(r: Any) -> float:
    try:
        return max(0.0, float(r.headers.get("retry-after", "1")))
    except ValueError:
        return 1.0


def _message(r: Any) -> str:
    try:
        body = r.json()
    except ValueError:
        return r.text[:200]
    return str(body.get("error", body)) if isinstance(body, dict) else str(body)[:200]
