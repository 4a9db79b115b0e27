"""The operator's dead-letter actions, audited: replay by filter (paced) and purge, as plain functions on ports.

The CLI (ops/cli_dlq.py) and the operator console call these same functions. Every action writes its audit trail
to the decision journal (stage ``operator``): one record for the operation (who, when, what it selected, how
many) and, for a replay, one per message sent back (with the message's file, invoice and event ids), all sharing
the operation's id. ``invoice-pipeline trace OPERATION_ID`` shows the operation; tracing a file shows its replay.
"""

from __future__ import annotations

import getpass
import os
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Protocol

from ops.dead_letters import DeadLetter
from ops.dead_letters import Decision as Choice
from shared.journal.port import Journal
from shared.journal.record import Decision

OPERATOR = "operator"  # the journal's stage for an operator's actions
SAMPLE_SIZE = 10  # dead letters a dry run shows; it counts them all


class DeadLetterSweeps(Protocol):
    """The dead-letter queues as ``ops.dead_letters.DeadLetterQueues`` offers them."""

    def depth(self, stage: str) -> int: ...

    def sweep(
        self,
        stage: str,
        decide: Callable[[DeadLetter], Choice],
        *,
        progress: Callable[[int, int], None] | None = None,
        settled: Callable[[DeadLetter, Choice], None] | None = None,
    ) -> list[tuple[DeadLetter, Choice]]: ...

    def purge(self, stage: str, count: int) -> int: ...


@dataclass(frozen=True)
class Selection:
    """Which dead letters an action is about: the stages' queues, and filters that must all hold."""

    stages: tuple[str, ...]
    reason: str | None = None
    since: datetime | None = None  # last failure at or after
    until: datetime | None = None  # last failure before
    client: str | None = None  # case-insensitive; only the mover's and notifiers' messages name one
    ident: str | None = None  # a dead letter's id, or a prefix of it
    limit: int | None = None

    def matches(self, letter: DeadLetter) -> bool:
        if self.reason is not None and letter.reason != self.reason:
            return False
        if self.since is not None or self.until is not None:
            # A letter without a failure time cannot be placed in a window: a time filter leaves it out.
            if letter.last_failure is None:
                return False
            if self.since is not None and letter.last_failure < self.since:
                return False
            if self.until is not None and letter.last_failure >= self.until:
                return False
        if self.client is not None and (letter.client or "").casefold() != self.client.casefold():
            return False
        return self.ident is None or letter.id.startswith(self.ident)

    def describe(self) -> str:
        """``stage=mover reason=docspace_timeout since=2026-11-03T07:00:00+00:00``: the scope, for the audit."""
        parts = [f"stage={','.join(self.stages)}"]
        for name, value in (("reason", self.reason), ("client", self.client), ("id", self.ident)):
            if value is not None:
                parts.append(f"{name}={value}")
        for name, when in (("since", self.since), ("until", self.until)):
            if when is not None:
                parts.append(f"{name}={when.astimezone(UTC).isoformat(timespec='seconds')}")
        if self.limit is not None:
            parts.append(f"limit={self.limit}")
        return " ".join(parts)


@dataclass
class Audit:
    """Who acts, under which operation id, and the journal their records go to."""

    journal: Journal
    actor: str
    operation: str = field(default_factory=lambda: new_operation_id())
    clock: Callable[[], datetime] = field(default_factory=lambda: _utcnow)

    def operation_done(self, action: str, *, scope: str, count: int) -> Decision:
        """The one record of the whole operation; its event id is the operation's, so ``trace`` finds it."""
        record = Decision.make(
            OPERATOR,
            action,
            at=self.clock(),
            occurrence=self.operation,
            event_id=self.operation,
            operation=self.operation,
            actor=self.actor,
            scope=scope,
            count=count,
        )
        self.journal.record(record)
        return record

    def message_done(self, action: str, letter: DeadLetter) -> Decision:
        """The record of one message the operation acted on, with the ids that put it in its file's timeline."""
        record = Decision.make(
            OPERATOR,
            action,
            at=self.clock(),
            occurrence=self.operation,  # the same message replayed by another operation is another decision
            reason=letter.reason,
            file_id=letter.file_id,
            invoice_id=letter.invoice_id,
            event_id=letter.event_id,
            client=letter.client,
            operation=self.operation,
            actor=self.actor,
            scope=f"{letter.stage}.dlq",
        )
        self.journal.record(record)
        return record


class Pace:
    """At most ``per_second`` messages a second, evenly spaced (a replay must not flood a stage or DocSpace)."""

    def __init__(
        self,
        per_second: float,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if per_second <= 0:
            raise ValueError("the replay rate must be above 0 messages/s")
        self._interval = 1.0 / per_second
        self._clock = clock
        self._sleep = sleep
        self._next: float | None = None

    def wait(self) -> None:
        now = self._clock()
        if self._next is not None and now < self._next:
            self._sleep(self._next - now)
            now = self._next
        self._next = now + self._interval


@dataclass(frozen=True)
class ReplayReport:
    """What a replay (or its dry run) found and did."""

    operation: str
    scope: str
    matched: int  # a dry run: how many would be replayed; a real run: how many were
    sample: list[DeadLetter]
    replayed: list[DeadLetter]
    dry_run: bool


@dataclass(frozen=True)
class PurgeReport:
    """What a purge deleted, by stage."""

    operation: str
    scope: str
    removed: dict[str, int]

    @property
    def total(self) -> int:
        return sum(self.removed.values())


def replay_dead_letters(
    selection: Selection,
    *,
    queues: DeadLetterSweeps,
    audit: Audit,
    pace: Pace,
    dry_run: bool = False,
    progress: Callable[[str, int, int, int], None] | None = None,
) -> ReplayReport:
    """Send the selected dead letters back to their stages' work queues, at ``pace``; audited unless a dry run.

    A dry run reads every queue of the selection (and puts each message back in order), counts what matches and
    keeps a sample; nothing moves and nothing is journaled. A real run journals each message once it is back in
    its work queue, then the operation with its count. ``progress(stage, swept, total, replayed)`` after each message.
    """
    chosen: list[DeadLetter] = []
    replayed: list[DeadLetter] = []

    def decide(letter: DeadLetter) -> Choice:
        if not selection.matches(letter) or (selection.limit is not None and len(chosen) >= selection.limit):
            return "keep"
        chosen.append(letter)
        if dry_run:
            return "keep"
        pace.wait()
        return "replay"

    def settled(letter: DeadLetter, choice: Choice) -> None:
        if choice == "replay":
            replayed.append(letter)
            audit.message_done("replayed", letter)

    scope = selection.describe()
    finished = False
    try:
        for stage in selection.stages:

            def swept(n: int, total: int, stage: str = stage) -> None:
                if progress is not None:
                    progress(stage, n, total, len(replayed))

            queues.sweep(stage, decide, progress=swept, settled=None if dry_run else settled)
        finished = True
    finally:
        if not dry_run:
            # Written even when nothing matched ("anna replayed nothing at 09:20" answers "did anyone try?"), and
            # when the broker went away half-way: the count is what went back before it did.
            audit.operation_done("replay", scope=scope if finished else f"{scope} (interrupted)", count=len(replayed))
    return ReplayReport(
        operation=audit.operation,
        scope=scope,
        matched=len(replayed) if not dry_run else len(chosen),
        sample=chosen[:SAMPLE_SIZE],
        replayed=replayed,
        dry_run=dry_run,
    )


def purge_dead_letters(counts: dict[str, int], *, queues: DeadLetterSweeps, audit: Audit) -> PurgeReport:
    """Delete the ``counts[stage]`` oldest dead letters of each stage (what the operator confirmed); audited."""
    removed = {stage: queues.purge(stage, count) for stage, count in counts.items() if count}
    oldest = ", ".join(f"{stage} {count}" for stage, count in counts.items() if count)
    scope = f"stage={','.join(counts)} (the oldest: {oldest or 'none'})"
    audit.operation_done("purge", scope=scope, count=sum(removed.values()))
    return PurgeReport(operation=audit.operation, scope=scope, removed=removed)


def _utcnow() -> datetime:
    return datetime.now(UTC)


def operator_name(explicit: str | None = None) -> str:
    """``--actor`` when given, else the OS user (``getpass``), else the numeric uid: never empty."""
    if explicit and explicit.strip():
        return explicit.strip()
    try:
        return getpass.getuser()
    except (OSError, KeyError):  # no login name in the environment and no passwd entry (a bare container)
        return f"uid:{os.getuid()}"


def new_operation_id(now: datetime | None = None) -> str:
    """``op-20261103T0920-3f2a9c1b``: sortable by time, unique, short enough to paste into ``trace``."""
    when = (now or datetime.now(UTC)).astimezone(UTC)
    return f"op-{when:%Y%m%dT%H%M}-{uuid.uuid4().hex[:8]}"


def counts_of(queues: DeadLetterSweeps, stages: Sequence[str]) -> dict[str, int]:
    """Each stage's dead-letter count now: what a purge asks the operator to confirm."""
    return {stage: queues.depth(stage) for stage in stages}
