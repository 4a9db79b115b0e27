"""A value recomputed in the background every so often, so that a page shows the latest without waiting for it."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Generic, TypeVar

import structlog

T = TypeVar("T")
log = structlog.get_logger("console")


@dataclass(frozen=True)
class Snapshot(Generic[T]):
    """The last value (None before the first run), when it was taken, and the error of the last run if it failed."""

    value: T | None
    taken_at: datetime | None
    error: str | None = None


class Refreshing(Generic[T]):
    """Runs ``compute`` at start, then every ``interval`` seconds and whenever :meth:`refresh_now` asks."""

    def __init__(self, name: str, compute: Callable[[], T], interval: float) -> None:
        self._name = name
        self._compute = compute
        self._interval = interval
        self._snapshot: Snapshot[T] = Snapshot(None, None)
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name=f"refresh-{name}", daemon=True)

    def start(self) -> Refreshing[T]:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()

    @property
    def snapshot(self) -> Snapshot[T]:
        return self._snapshot

    def refresh_now(self) -> None:
        self._wake.set()

    def run_once(self) -> None:
        started = time.monotonic()
        try:
            value = self._compute()
        except Exception as exc:
            # Keep the last good value on the page, with what went wrong; the next run tries again.
            log.warning("console_refresh_failed", what=self._name, error=f"{type(exc).__name__}: {exc}"[:300])
            self._snapshot = Snapshot(self._snapshot.value, self._snapshot.taken_at, f"{type(exc).__name__}: {exc}")
            return
        self._snapshot = Snapshot(value, datetime.now(UTC))
        log.debug("console_refreshed", what=self._name, seconds=round(time.monotonic() - started, 3))

    def _loop(self) -> None:
        while not self._stop.is_set():
            self.run_once()
            self._wake.wait(self._interval)
            self._wake.clear()


class Cached(Generic[T]):
    """``compute``'s value, reused for ``seconds``: several pages in a row (or several users) ask the broker once."""

    def __init__(self, compute: Callable[[], T], seconds: float, *, clock: Callable[[], float] = time.monotonic):
        self._compute = compute
        self._seconds = seconds
        self._clock = clock
        self._lock = threading.Lock()
        self._value: tuple[float, T] | None = None

    def __call__(self) -> T:
        with self._lock:
            now = self._clock()
            if self._value is None or now - self._value[0] >= self._seconds:
                self._value = (now, self._compute())
            return self._value[1]
