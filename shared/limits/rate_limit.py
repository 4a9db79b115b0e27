"""A client-side limiter that keeps a process's DocSpace calls just under the portal's per-user limits.

DocSpace (contract §3.3) allows each user 1,500 requests per sliding minute and 15 concurrent non-GET requests,
and answers 429 beyond. The limiter spaces requests evenly (GCRA, a leaky bucket with a one-second burst), so no
60-second window ever holds more than ``per_minute`` plus that burst, caps writes in flight with a semaphore, and
makes every thread of the process wait out a 429's ``Retry-After`` together instead of each finding it out alone.

DocSpace also allows each user 10,000 POST/PUT requests a day. The limiter counts its writes per quota period
(``docspace_write_quota_used``) and, once a 429 names that quota, refuses writes until the reset
with ``WriteQuotaSpent`` (a deferral: the invoice waits in the broker) while reads go on.

This limiter is shared by all worker threads of one process. The portal counts per *user* (API key), not per
process: when several processes or replicas use the same key without Redis, each must be given its share of the
limit (e.g. classifier and mover with one key: 60 + 1,360 per minute, not 1,420 each). With Redis, every process
on one key shares one limit instead (``shared.limits.redis_limiter``).
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from typing import Protocol

from prometheus_client import Gauge

from shared.core.errors import Deferred, TransientError
from shared.limits.retry_after import DEFAULT_MAX_PAUSE, cap_pause, retry_after_from

QUOTA_METHODS = frozenset({"POST", "PUT"})  # what the daily write quota counts
# A daily-quota 429 without a usable reset: ask again in a minute.
MINUTE_WINDOW = 60.0

WRITE_QUOTA_USED = Gauge(
    "docspace_write_quota_used", "DocSpace writes (POST/PUT) counted in the current quota period (a day)"
)
WRITE_QUOTA_LIMIT = Gauge("docspace_write_quota_limit", "DocSpace writes (POST/PUT) allowed per quota period")


class RateLimitWait(TransientError):
    """Waiting for a slot would take longer than ``max_wait``: give the message back to the retry ladder."""

    reason = "docspace_rate_limit_wait"


class WriteQuotaSpent(Deferred):
    """DocSpace's daily write quota is spent: the invoice waits in the broker until it resets; reads go on."""

    reason = "docspace_write_quota_spent"


class Limiter(Protocol):
    """What the DocSpace client asks of a limiter: this process's own (``RateLimiter``) or one shared in Redis."""

    def slot(self, method: str) -> AbstractContextManager[None]: ...
    def pause(self, seconds: float) -> None: ...
    def write_quota_spent(self, method: str, headers: Mapping[str, str]) -> WriteQuotaSpent | None: ...
    def writes_used(self) -> int: ...


def counts_against_quota(method: str) -> bool:
    return method.upper() in QUOTA_METHODS


def quota_rejection(
    method: str, headers: Mapping[str, str], daily_writes: int, period: float = 86_400.0
) -> float | None:
    """Seconds until the write quota resets, when a 429 on ``method`` says the day's writes are spent; else None.

    DocSpace names the limit that was hit in ``X-RateLimit-Limit``: only a write refused with the daily quota's
    number there is the daily quota. Its reset may be hours away, and waiting it out is parking in the broker, not
    silencing the process: it is capped at one quota period, not at ``MAX_PAUSE_SECONDS``. A long wait alone
    proves nothing (anyone between us and DocSpace can send ``Retry-After: 100000``): such a 429 is paused out
    like any other, at most ``MAX_PAUSE_SECONDS``, and never holds back every write for a day.
    """
    if not counts_against_quota(method) or headers.get("X-RateLimit-Limit", "").strip() != str(daily_writes):
        return None
    wait = retry_after_from(headers, cap=math.inf)  # junk (inf, nan, negative) is still None
    return min(wait, period) if wait is not None else min(MINUTE_WINDOW, period)


@dataclass(frozen=True)
class KeyLimits:
    """What an API key allows, and how long a caller may wait for it: both limiters enforce one of these.

    ``per_minute`` calls (evenly spaced after a ``burst_seconds`` burst), ``max_concurrent_writes`` non-GETs at
    once, ``daily_writes`` per ``quota_period``; a caller waits at most ``max_wait`` for a slot, and a 429's pause
    is capped at ``max_pause``.
    """

    per_minute: int
    max_concurrent_writes: int
    daily_writes: int = 10_000
    quota_period: float = 86_400.0
    burst_seconds: float = 1.0
    max_wait: float = 20.0
    max_pause: float = DEFAULT_MAX_PAUSE

    def __post_init__(self) -> None:
        if self.per_minute < 1 or self.max_concurrent_writes < 1:
            raise ValueError("per_minute and max_concurrent_writes must be at least 1")


class RateLimiter:
    """At most ``per_minute`` calls per minute (evenly spaced) and ``max_concurrent_writes`` non-GETs at once.

    Thread-safe. ``slot(method)`` blocks until the call may go, for at most ``max_wait`` seconds (a worker must
    never sleep past the broker heartbeat); then it raises ``RateLimitWait`` with a ``retry_after``.
    """

    def __init__(
        self,
        limits: KeyLimits,
        *,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        per_minute = self.per_minute = limits.per_minute
        self.max_concurrent_writes = limits.max_concurrent_writes
        self._interval = 60.0 / per_minute
        # Requests that may go back to back after an idle spell; the rest are spaced by the interval.
        self._tolerance = max(limits.burst_seconds * per_minute / 60.0 - 1, 0.0) * self._interval
        self._max_wait = limits.max_wait
        self._max_pause = limits.max_pause
        self._clock = clock
        self._sleep = sleep
        self._lock = threading.Lock()
        self._tat = 0.0  # theoretical arrival time of the next request (GCRA)
        self._paused_until = 0.0
        self._writes = threading.BoundedSemaphore(limits.max_concurrent_writes)
        self.waited_seconds = 0.0  # total time callers spent waiting, for metrics and the benchmark
        self.daily_writes = limits.daily_writes
        self._period = limits.quota_period
        self._wall_clock = wall_clock
        self._anchor = 0.0  # a period starts at anchor + k * period: UTC midnight until DocSpace says otherwise
        self._window = -math.inf
        self._written = 0
        self._spent_until = 0.0  # wall-clock time the write quota resets, once a 429 said it is spent

    @contextmanager
    def slot(self, method: str) -> Iterator[None]:
        """Hold a slot for one request: wait for the rate, and for a write slot when ``method`` is not GET."""
        write = method.upper() not in ("GET", "HEAD")
        started = self._clock()
        if counts_against_quota(method):
            self._count_write()
        if write and not self._writes.acquire(timeout=self._max_wait):
            raise RateLimitWait(
                f"no DocSpace write slot within {self._max_wait:g}s ({self.max_concurrent_writes} in flight)",
                retry_after=1.0,
            )
        try:
            self._wait_for_rate(self._max_wait - (self._clock() - started))
            yield
        finally:
            if write:
                self._writes.release()

    def pause(self, seconds: float) -> None:
        """The portal said 429: no thread of this process sends anything for ``seconds``.

        At most ``max_pause``: one answer (``X-RateLimit-Reset: inf``, a year-9999 date) must not silence the
        process for good. A non-finite or negative value is junk and pauses for one second, as a 429 without
        any hint does.
        """
        capped = cap_pause(seconds, self._max_pause) if seconds >= 0 else None
        if capped is None:
            capped = 1.0
        with self._lock:
            self._paused_until = max(self._paused_until, self._clock() + capped)

    def write_quota_spent(self, method: str, headers: Mapping[str, str]) -> WriteQuotaSpent | None:
        """A 429 came back: when it says the day's writes are spent, remember until when and return the deferral.

        Only writes are held back from then on (every thread of the process, without asking DocSpace again);
        reads go on. Any other 429 returns None and is paused out as before.
        """
        reset = quota_rejection(method, headers, self.daily_writes, self._period)
        if reset is None:
            return None
        with self._lock:
            now = self._wall_clock()
            self._spent_until = max(self._spent_until, now + reset)
            self._anchor = self._spent_until  # DocSpace's own period boundary: count from there on
            self._roll(now)
            self._written = max(self._written, self.daily_writes)
        return WriteQuotaSpent(f"DocSpace's write quota is spent; it resets in {reset:.0f}s", delay=reset)

    def writes_used(self) -> int:
        """Writes counted in the current quota period."""
        with self._lock:
            self._roll(self._wall_clock())
            return self._written

    def _count_write(self) -> None:
        with self._lock:
            now = self._wall_clock()
            if now < self._spent_until:
                wait = self._spent_until - now
                raise WriteQuotaSpent(f"DocSpace's write quota is spent; it resets in {wait:.0f}s", delay=wait)
            self._roll(now)
            self._written += 1

    def _roll(self, now: float) -> None:
        window = self._anchor + math.floor((now - self._anchor) / self._period) * self._period
        if window != self._window:
            self._window, self._written = window, 0

    def _wait_for_rate(self, budget: float) -> None:
        with self._lock:
            now = self._clock()
            at = max(now, self._tat - self._tolerance, self._paused_until)
            wait = at - now
            if wait > budget:
                raise RateLimitWait(
                    f"the DocSpace rate limit ({self.per_minute}/min) has no slot within {max(budget, 0):g}s",
                    retry_after=max(wait, 1.0),
                )
            # Reserve the slot before sleeping, so threads queue up in order instead of racing.
            self._tat = max(self._tat, at) + self._interval
            self.waited_seconds += wait
        if wait > 0:
            self._sleep(wait)


class WithinShare:
    """A process's own share inside a limit shared with others (the reconciler's budget in the key's Redis limit).

    Every call waits for a slot of ``own`` (this process's rate) and then of ``shared`` (the key's, counted for
    every process on it), so the process never takes more than its share and the key never more than its limit.
    """

    def __init__(self, own: RateLimiter, shared: Limiter) -> None:
        self.own, self.shared = own, shared

    @contextmanager
    def slot(self, method: str) -> Iterator[None]:
        with self.own.slot(method), self.shared.slot(method):
            yield

    def pause(self, seconds: float) -> None:
        self.own.pause(seconds)
        self.shared.pause(seconds)

    def write_quota_spent(self, method: str, headers: Mapping[str, str]) -> WriteQuotaSpent | None:
        return self.shared.write_quota_spent(method, headers)

    def writes_used(self) -> int:
        return self.shared.writes_used()
