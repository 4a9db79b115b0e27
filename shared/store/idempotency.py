"""Remembers which side effects already happened, so a duplicate delivery never moves, mails or calls twice.

A key is claimed with a lease before the work, completed after it. Another worker (or replica) finds it either
in progress (it comes back when the lease would run out) or done (skip). While the work runs its lease is renewed
every third of its length, so a live worker keeps its claim however long DocSpace takes, and a worker that died
loses it within one lease: the work is then done again by another. For e-mail that means the same message with
the same ``Message-ID``, which mail clients collapse.

This module is the port (the ``IdempotencyStore`` Protocol, ``run_once``, the errors), free of any database driver.
The adapters: ``shared/store/sqlite_store.py`` (default; one host, any number of processes) and
``shared/store/redis_store.py`` (replicas on several hosts); ``shared/runtime/wiring.py`` opens the one
``IDEMPOTENCY_URL`` names.
"""

from __future__ import annotations

import contextlib
import threading
import time
import uuid
from collections.abc import Callable
from enum import Enum
from typing import ParamSpec, Protocol, TypeVar

import structlog

from shared.core.errors import Deferred, StoreOutage
from shared.core.reraise import reraise_as

log = structlog.get_logger(__name__)

P = ParamSpec("P")
R = TypeVar("R")

# Short, because it is renewed while the worker lives: a dead worker's invoices are taken over within it.
DEFAULT_LEASE_SECONDS = 15.0


class Claim(Enum):
    """What ``claim`` found for a key: ours to do, someone else's in progress, or already done."""

    ACQUIRED = "acquired"  # ours: do the work, then complete() or release()
    IN_PROGRESS = "in_progress"  # someone else holds a live lease
    DONE = "done"  # already done: skip


class StoreUnavailable(StoreOutage):
    """The store did not answer (Redis down, SQLite locked too long): wait it out, never treat it as a bug."""

    reason = "idempotency_store_unavailable"


def unavailable_on(*errors: type[Exception]) -> Callable[[Callable[P, R]], Callable[P, R]]:
    """For adapters: a method decorator that turns the driver's ``errors`` into StoreUnavailable."""
    return reraise_as(errors, lambda exc: StoreUnavailable(f"the idempotency store failed: {exc}"))


class AlreadyInProgress(Deferred):
    """Another worker holds the claim: come back when its lease would run out (sooner if it finishes)."""

    reason = "in_progress_elsewhere"


class IdempotencyStore(Protocol):
    """Once-only bookkeeping per key, with leases (port; adapters in shared/store/sqlite_store.py,
    shared/store/redis_store.py)."""

    def claim(self, key: str, *, lease_seconds: float, owner: str = "") -> Claim: ...
    def renew(self, key: str, owner: str, *, lease_seconds: float) -> bool: ...
    def lease_left(self, key: str) -> float | None: ...
    def complete(self, key: str) -> None: ...
    def release(self, key: str, owner: str | None = None) -> None: ...
    def mark(self, key: str) -> None: ...
    def is_done(self, key: str) -> bool: ...
    def close(self) -> None: ...


class LeaseKeeper:
    """Renews one claim every third of its lease until the work is over (a context manager around the work).

    One small thread per claim in hand: at most ``CONCURRENCY`` per process. A renewal that fails (store away)
    is retried at the next beat; one that finds the claim gone (the lease ran out while the store was away and
    another worker took it) is logged, and the work goes on: the stages' side effects are safe to repeat.
    """

    def __init__(self, store: IdempotencyStore, key: str, owner: str, *, lease_seconds: float) -> None:
        self._store, self._key, self._owner, self._lease = store, key, owner, lease_seconds
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._beat, name="lease-keeper", daemon=True)
        self.renewals = 0

    def __enter__(self) -> LeaseKeeper:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        # No join: a renewal still on the wire is harmless (a completed or released claim is never renewed).
        self._done.set()

    def _beat(self) -> None:
        while not self._done.wait(self._lease / 3):
            try:
                renewed = self._store.renew(self._key, self._owner, lease_seconds=self._lease)
            except StoreUnavailable as exc:
                log.warning("claim_renewal_failed", key=self._key, error=str(exc))
                continue
            if not renewed and not self._done.is_set():
                log.warning("claim_lost", key=self._key, hint="the lease ran out; another worker may repeat this")
                return
            self.renewals += 1


def run_once(
    store: IdempotencyStore,
    key: str,
    work: Callable[[], object],
    *,
    lease_seconds: float = DEFAULT_LEASE_SECONDS,
    wait_seconds: float = 0.0,
) -> bool:
    """Run ``work`` unless ``key`` is done; False means it was a duplicate. Raises AlreadyInProgress (deferred).

    The claim's lease is renewed while ``work`` runs. ``wait_seconds`` > 0 waits that long for another worker's
    claim to end before giving up: worth it when its work is short (a confirmed publish), since coming back later
    would repeat everything done before the claim.
    """
    # The owner token keeps a worker whose lease ran out from releasing the claim another worker took since.
    owner = uuid.uuid4().hex
    claim = store.claim(key, lease_seconds=lease_seconds, owner=owner)
    deadline = time.monotonic() + wait_seconds
    while claim is Claim.IN_PROGRESS and time.monotonic() < deadline:
        time.sleep(0.05)
        claim = store.claim(key, lease_seconds=lease_seconds, owner=owner)
    if claim is Claim.DONE:
        return False
    if claim is Claim.IN_PROGRESS:
        left = store.lease_left(key)
        # Back just after the holder's lease would run out: at once if it died, a duplicate if it finished.
        delay = min(lease_seconds, left if left is not None else 0.0) + 0.5
        raise AlreadyInProgress(f"{key} is being handled by another worker", delay=delay)
    try:
        with LeaseKeeper(store, key, owner, lease_seconds=lease_seconds):
            work()
    except BaseException:
        with contextlib.suppress(StoreUnavailable):  # the lease runs out by itself; keep the real error
            store.release(key, owner)
        raise
    store.complete(key)
    return True
