"""The ingress's memory of event ids it accepted lately, so a captured delivery replayed later is not published again.

Only ids of deliveries the ingress accepted (published, or spooled) are remembered: DocSpace retries a delivery
it got no 2xx for with the same event id, and that retry must still go through. The memory is per process,
bounded in size and in time; the stages' idempotency stays the real guarantee against duplicates.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable


class RecentEvents:
    """Event ids accepted in the last ``ttl_seconds`` (at most ``max_size`` of them; the oldest go first)."""

    def __init__(
        self, ttl_seconds: float, *, max_size: int = 100_000, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._ttl = ttl_seconds
        self._max_size = max_size
        self._clock = clock
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
