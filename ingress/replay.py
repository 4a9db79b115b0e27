"""The ingress's replay window: event ids it accepted lately, and the age past which a delivery is refused.

Only ids of deliveries the ingress accepted (published, or spooled) are remembered: DocSpace retries a delivery
it got no 2xx for with the same event id, and that retry must still go through. The memory is per process,
bounded in size and in time, and forgets on restart; so a delivery whose signed ``event.createOn`` is older than
the window is refused as well, which no restart undoes. The stages' idempotency stays the real guarantee against
duplicates.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from datetime import datetime


class RecentEvents:
    """Event ids accepted in the last ``ttl_seconds`` (at most ``max_size`` of them; the oldest go first)."""

    def __init__(
        self,
        ttl_seconds: float,
        *,
        max_size: int = 100_000,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self._ttl = ttl_seconds
        self._max_size = max_size
        self._clock = clock
        self._wall_clock = wall_clock
        self._expiry: OrderedDict[str, float] = OrderedDict()  # oldest first
        self._lock = threading.Lock()

    @property
    def enabled(self) -> bool:
        return self._ttl > 0 and self._max_size > 0

    def __len__(self) -> int:
        return len(self._expiry)

    def seen(self, event_id: str) -> bool:
        """Whether ``event_id`` was accepted within the window."""
        if not self.enabled:
            return False
        with self._lock:
            expires = self._expiry.get(event_id)
            return expires is not None and expires > self._clock()

    @property
    def window_seconds(self) -> float:
        return self._ttl

    def too_old(self, created_on: datetime | None) -> bool:
        """Whether an event created at ``created_on`` is older than the window (so its id may be forgotten).

        A date that cannot be read, or one ahead of our clock (a portal whose clock runs fast), is never too old:
        a date is not a reason to lose a delivery.
        """
        if self._ttl <= 0 or created_on is None:
            return False
        return created_on.timestamp() < self._wall_clock() - self._ttl

    def recent(self, timestamp: float) -> bool:
        """Whether unix time ``timestamp`` is within the window of now, either way (clocks drift both ways)."""
        return self._ttl <= 0 or abs(self._wall_clock() - timestamp) <= self._ttl

    def forget(self, event_id: str) -> None:
        """``event_id`` was not delivered after all (its spool record was quarantined): let it through again."""
        with self._lock:
            self._expiry.pop(event_id, None)

    def remember(self, event_id: str) -> None:
        """Note that ``event_id`` was accepted now (a later acceptance renews it)."""
        if not self.enabled:
            return
        now = self._clock()
        with self._lock:
            self._expiry[event_id] = now + self._ttl
            self._expiry.move_to_end(event_id)
            # Entries are in acceptance order, so the expired ones, and the oldest beyond the bound, are in front.
            while self._expiry:
                oldest, expires = next(iter(self._expiry.items()))
                if expires > now and len(self._expiry) <= self._max_size:
                    break
                del self._expiry[oldest]
