"""A clock the test moves by hand: leases, caches, windows and quotas expire without sleeping."""

from __future__ import annotations


class FakeClock:
    """Seconds (wall or monotonic, as the code under test reads them) that move only when a test says so."""

    def __init__(self, now: float = 1_800_000_000.0) -> None:
        self.now = now  # default: a whole number of days since the epoch, so a daily period starts here

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds
