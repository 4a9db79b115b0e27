"""What a cycle works with, named once: its knobs, a replica's parts, and the frozen context one cycle passes on."""

from __future__ import annotations

from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from consumers.reconciler.model import Budget, CycleReport, State
from consumers.reconciler.ports import Announce, Portal
from shared.core.rules import Rules
from shared.store.checkpoints import Checkpoints
from shared.store.idempotency import IdempotencyStore


@dataclass(frozen=True)
class Knobs:
    """A cycle's settings (from ``ReconcilerSettings``, or the CLI's)."""

    interval: timedelta
    grace: timedelta
    log_settle: timedelta
    overlap: timedelta
    triggers: Collection[str]
    webhook_path: str
    webhook_url: str | None = None
    webhook_id: str | None = None
    calls_per_cycle: int | None = None  # None: no cap (the rate limiter still spaces the calls)
    # The operator's one-off run: calls_per_cycle is a hard cap, and a cycle that reaches it has failed (it did
    # not finish), rather than one that goes on next interval.
    hard_cap: bool = False
    lease: timedelta = timedelta(minutes=10)


def _now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class Replica:
    """One reconciler's parts, the same every cycle: the portal, the stores, where it announces, its lease owner."""

    portal: Portal
    rules: Rules
    store: IdempotencyStore
    checkpoints: Checkpoints
    announce: Announce
    knobs: Knobs
    owner: str  # the lease holder's name: unique per process, so two replicas never run a cycle at once
    clock: Callable[[], datetime] = field(default=_now)


@dataclass(frozen=True)
class Cycle:
    """One cycle's context, handed whole to the webhook check, the delivery-log walk and the room scan.

    Frozen: which state, budget and report a cycle works on never changes half-way (they themselves fill up).
    """

    portal: Portal
    rules: Rules
    store: IdempotencyStore
    announce: Announce
    knobs: Knobs
    state: State  # the checkpoints the cycle moves on
    budget: Budget
    report: CycleReport
    floor: datetime  # nothing uploaded or failed before this is announced: the first run, or ``since``
    since: datetime | None = None  # an operator's backfill: scans from then, leaves the rooms' checkpoints alone
    dry_run: bool = False  # changes nothing anywhere, says what it would do

    @property
    def now(self) -> datetime:
        """The cycle's start: every window and every settle time is measured from it."""
        return self.report.started_at
