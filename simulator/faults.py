"""Fault injection and a DocSpace-like rate limiter: latency, random 5xx, 429 bursts, outage windows."""

from __future__ import annotations

import collections
import fnmatch
import itertools
import math
import random
import threading
import time
from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass
class Rejection:
    """What to answer instead of running the endpoint."""

    status: int
    message: str = ""
    headers: dict[str, str] = field(default_factory=dict)
    empty_body: bool = False


@dataclass
class FaultRule:
    """Faults for the calls matching ``method`` and ``path`` (an fnmatch glob, or a route template)."""

    method: str = "*"
    path: str = "*"
    latency: float = 0.0
    error_rate: float = 0.0
    error_status: int = 500
    error_message: str = "Simulated server error"
    burst_429: int = 0  # the next N matching calls answer 429
    retry_after: float = 1.0
    id: int = 0

    def matches(self, method: str, path: str, template: str | None) -> bool:
        if self.method not in ("*", method.upper()):
            return False
        return fnmatch.fnmatchcase(path, self.path) or (template is not None and template == self.path)


@dataclass
class RateLimit:
    """DocSpace's limiter (contract §3.3), per API key: sliding-window requests/minute, concurrent writes, and
    (when set) POST/PUT per day, in fixed "days" from when the limit was set."""

    requests_per_minute: int = 1500
    max_concurrent_writes: int = 15
    retry_after: float = 1.0
    writes_per_day: int | None = None  # POST/PUT per key and "day" (DocSpace: 10,000); None = not enforced
    day_seconds: float = 86_400.0  # a short "day" lets a test see the quota reset


class Faults:
    """The simulator's fault table; safe to change from any thread (tests, ``/_sim/faults``)."""

    def __init__(self, seed: int | None = None) -> None:
        self._lock = threading.Lock()
        self._rng = random.Random(seed)
        self._ids = itertools.count(1)
        self.rules: list[FaultRule] = []
        self.outage_until = 0.0
        self.rate_limit: RateLimit | None = None
        self._window: dict[str, collections.deque[float]] = collections.defaultdict(collections.deque)
        self._writes: dict[str, int] = collections.defaultdict(int)
        self._day_start = time.monotonic()
        self._day_writes: dict[tuple[str, int], int] = collections.defaultdict(int)

    def seed(self, seed: int) -> None:
        with self._lock:
            self._rng = random.Random(seed)

    def add(self, **kw: Any) -> int:
        """Add a rule (see ``FaultRule`` fields); returns its id."""
        rule = FaultRule(**{k: v for k, v in kw.items() if k != "id"})
        with self._lock:
            rule.id = next(self._ids)
            self.rules.append(rule)
        return rule.id

    def remove(self, rule_id: int) -> None:
        with self._lock:
            self.rules = [r for r in self.rules if r.id != rule_id]

    def outage(self, seconds: float) -> None:
        """Every API call answers 503 for the next ``seconds``."""
        with self._lock:
            self.outage_until = time.monotonic() + seconds

    def set_rate_limit(self, **kw: Any) -> None:
        with self._lock:
            self.rate_limit = RateLimit(**kw) if kw else None
            self._window.clear()
            self._day_start = time.monotonic()  # the first "day" starts now
            self._day_writes.clear()

    def clear(self) -> None:
        with self._lock:
            self.rules.clear()
            self.outage_until = 0.0
            self.rate_limit = None
            self._window.clear()

    def describe(self) -> dict[str, Any]:
        with self._lock:
            return {
                "rules": [asdict(r) for r in self.rules],
                "outage_remaining": max(self.outage_until - time.monotonic(), 0.0),
                "rate_limit": asdict(self.rate_limit) if self.rate_limit else None,
            }

    def configure(self, doc: dict[str, Any]) -> None:
        """Apply a ``/_sim/faults`` document: ``rules``, ``outage_seconds``, ``seed``, ``rate_limit``, ``clear``."""
        if doc.get("clear"):
            self.clear()
        if doc.get("seed") is not None:
            self.seed(int(doc["seed"]))
        for rule in doc.get("rules") or []:
            self.add(**rule)
        if doc.get("outage_seconds"):
            self.outage(float(doc["outage_seconds"]))
        if "rate_limit" in doc:
            self.set_rate_limit(**(doc["rate_limit"] or {}))

    # --- evaluation ------------------------------------------------------------------------------------

    def check(self, method: str, path: str, template: str | None, key: str) -> tuple[float, Rejection | None]:
        """Decide one call: the latency to add and, if it is to fail, how."""
        with self._lock:
            if time.monotonic() < self.outage_until:
                return 0.0, Rejection(503, "Service Unavailable")
            latency = 0.0
            for rule in self.rules:
                if not rule.matches(method, path, template):
                    continue
                latency += rule.latency
                if rule.burst_429 > 0:
                    rule.burst_429 -= 1
                    return latency, self._too_many(rule.retry_after, limit=0)
                if rule.error_rate > 0 and self._rng.random() < rule.error_rate:
                    return latency, Rejection(rule.error_status, rule.error_message)
            limited = self._limit(method, key)
            return latency, limited

    def _limit(self, method: str, key: str) -> Rejection | None:
        rl = self.rate_limit
        if rl is None:
            return None
        t = time.monotonic()
        window = self._window[key]
        while window and window[0] <= t - 60:
            window.popleft()
        if len(window) >= rl.requests_per_minute:
            wait = max(window[0] + 60 - t, rl.retry_after)
            return self._too_many(wait, limit=rl.requests_per_minute)
        day_key = None
        if rl.writes_per_day is not None and method in ("POST", "PUT"):
            day, into = divmod(t - self._day_start, rl.day_seconds)
            day_key = (key, int(day))
            if self._day_writes[day_key] >= rl.writes_per_day:
                return self._too_many(rl.day_seconds - into, limit=rl.writes_per_day)
        if method != "GET":
            if self._writes[key] >= rl.max_concurrent_writes:
                return self._too_many(rl.retry_after, limit=rl.max_concurrent_writes)
            self._writes[key] += 1
        if day_key is not None:
            self._day_writes[day_key] += 1
        window.append(t)
        return None

    def release(self, method: str, key: str) -> None:
        """A write admitted by the limiter has finished."""
        with self._lock:
            if self.rate_limit is not None and method != "GET" and self._writes[key] > 0:
                self._writes[key] -= 1

    @staticmethod
    def _too_many(retry_after: float, *, limit: int) -> Rejection:
        # Retry-After is whole seconds on the wire; the Redis limiter's reset is a delta in seconds here.
        seconds = max(math.ceil(retry_after), 0)
        return Rejection(
            429,
            headers={
                "Retry-After": str(seconds),
                "X-RateLimit-Limit": str(limit),
                "X-RateLimit-Remaining": "0",
                "X-RateLimit-Reset": str(seconds),
            },
            empty_body=True,
        )
