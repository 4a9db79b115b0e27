"""A client-side limiter that keeps a process's DocSpace calls just under the portal's per-user limits.

DocSpace (contract §3.3) allows each user 1,500 requests per sliding minute and 15 concurrent non-GET requests,
and answers 429 beyond. The limiter spaces requests evenly (GCRA, a leaky bucket with a one-second burst), so no
60-second window ever holds more than ``per_minute`` plus that burst, caps writes in flight with a semaphore, and
makes every thread of the process wait out a 429's ``Retry-After`` together instead of each finding it out alone.

One limiter is shared by all worker threads of one process. The portal counts per *user* (API key), not per
process: when several processes or replicas use the same key, each must be given its share of the limit
(e.g. classifier and mover with one key: 480 + 940 per minute, not 1,420 each).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from shared.errors import TransientError
from shared.retry_after import DEFAULT_MAX_PAUSE, cap_pause


class RateLimitWait(TransientError):
    """Waiting for a slot would take longer than ``max_wait``: give the message back to the retry ladder."""

    reason = "docspace_rate_limit_wait"


class RateLimiter:
    """At most ``per_minute`` calls per minute (evenly spaced) and ``max_concurrent_writes`` non-GETs at once.

    Thread-safe. ``slot(method)`` blocks until the call may go, for at most ``max_wait`` seconds (a worker must
    never sleep past the broker heartbeat); then it raises ``RateLimitWait`` with a ``retry_after``.
    """

    def __init__(
        self,
        per_minute: int,
        max_concurrent_writes: int,
        *,
        burst_seconds: float = 1.0,
        max_wait: float = 20.0,
        max_pause: float = DEFAULT_MAX_PAUSE,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if per_minute < 1 or max_concurrent_writes < 1:
            raise ValueError("per_minute and max_concurrent_writes must be at least 1")
        self.per_minute = per_minute
        self.max_concurrent_writes = max_concurrent_writes
        self._interval = 60.0 / per_minute
        # Requests that may go back to back after an idle spell; the rest are spaced by the interval.
        self._tolerance = max(burst_seconds * per_minute / 60.0 - 1, 0.0) * self._interval
        self._max_wait = max_wait
        self._max_pause = max_pause
        self._clock = clock
        self._sleep = sleep
        self._lock = threading.Lock()
        self._tat = 0.0  # theoretical arrival time of the next request (GCRA)
        self._paused_until = 0.0
        self._writes = threading.BoundedSemaphore(max_concurrent_writes)
        self.waited_seconds = 0.0  # total time callers spent waiting, for metrics and the benchmark

    @contextmanager
    def slot(self, method: str) -> Iterator[None]:
        """Hold a slot for one request: wait for the rate, and for a write slot when ``method`` is not GET."""
        write = method.upper() not in ("GET", "HEAD")
        started = self._clock()
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
