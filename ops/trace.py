"""What happened to a file: its decisions from the journal, and the one-line verdict that says what to do next.

:func:`verdict` is a pure function of the timeline (and the time now); :func:`trace` looks the term up in the
journal and, when the journal knows nothing, in the dead-letter queues. The CLI (ops/cli_trace.py) prints what
these return; the operator console will show the same.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

from ops.dead_letters import DeadLetter
from shared.journal.record import Decision
from shared.journal.store import JournalStore, Match

State = Literal["arrived", "skipped", "dead_lettered", "waiting", "retrying", "in_progress", "not_found"]

ARRIVED = "received"  # the mover's outcome: in the client's Incoming folder, InvoiceReceived published
SKIPPED = frozenset({"ignored", "skipped"})
NOTIFIERS = ("notifier.email", "notifier.pipeline")
INGRESS = "ingress"
# What the ingress decided last, when nothing came after it: the delivery waits for someone else.
INGRESS_WAITS = {
    "refused": "waiting: refused by the ingress at {when} as {reason}; the reconciler recovers it from DocSpace's "
    "delivery log",
    "spooled": "waiting: in the ingress's spool since {when}; published when the broker is back",
}
FIND_LIMIT = 20  # files offered to choose from; a fragment that matches more shows the newest


@dataclass(frozen=True)
class Verdict:
    """One line an office worker can act on, with the parts a script needs."""

    state: State
    text: str
    stage: str | None = None
    reason: str | None = None
    since: datetime | None = None
    command: str | None = None


@dataclass(frozen=True)
class Trace:
    """What ``trace`` found: one file's timeline, several files to choose from, or dead letters only."""

    term: str
    matches: list[Match] = field(default_factory=list)
    timeline: list[Decision] = field(default_factory=list)
    verdict: Verdict | None = None
    dead_letters: list[DeadLetter] = field(default_factory=list)


def replay_command(stage: str, reason: str | None) -> str:
    return f"invoice-pipeline dlq replay --stage {stage}" + (f" --reason {reason}" if reason else "")


def verdict(timeline: Sequence[Decision], *, now: datetime) -> Verdict:
    """The file's state from its decisions (oldest first): arrived, skipped, dead-lettered, waiting, ..."""
    if not timeline:
        return Verdict("not_found", "not in the journal")
    arrivals = [d for d in timeline if d.outcome == ARRIVED]
    if arrivals:
        return _arrived(timeline, arrivals[-1], now)
    last = timeline[-1]
    when = clock(last.at, now)
    if last.outcome == "dead_lettered":
        command = replay_command(last.stage, last.reason)
        return Verdict(
            "dead_lettered",
            f"in {last.stage}.dlq since {when}: {last.reason or 'unknown'} — `{command}`",
            last.stage,
            last.reason,
            last.at,
            command,
        )
    if last.outcome == "deferred":
        until = f" until {clock(last.parked_until, now)}" if last.parked_until is not None else ""
        return Verdict(
            "waiting", f"waiting: parked{until} ({last.reason or 'deferred'})", last.stage, last.reason, last.at
        )
    if last.stage == INGRESS and last.outcome in INGRESS_WAITS:
        text = INGRESS_WAITS[last.outcome].format(when=when, reason=last.reason or last.outcome)
        return Verdict("waiting", text, last.stage, last.reason, last.at)
    if last.outcome in {"retried", "requeued"}:
        return Verdict(
            "retrying",
            f"retrying: attempt {last.attempt} in {last.stage} failed at {when}: {last.reason or 'transient'}; "
            "the retry ladder brings it back",
            last.stage,
            last.reason,
            last.at,
        )
    if last.outcome in SKIPPED:
        rule = f" (rule: {last.rule})" if last.rule else ""
        return Verdict("skipped", f"skipped: {last.reason or last.outcome}{rule}", last.stage, last.reason, last.at)
    return Verdict("in_progress", f"in progress: {last.stage} {last.outcome} at {when}", last.stage, None, last.at)


def _arrived(timeline: Sequence[Decision], moved: Decision, now: datetime) -> Verdict:
    parts = [f"arrived: in {moved.folder}" if moved.folder else "arrived"]
    problems: list[str] = []
    command: str | None = None
    for stage in NOTIFIERS:
        latest = [d for d in timeline if d.stage == stage]
        if not latest:
            continue
        d = latest[-1]
        if d.outcome == "emailed":
            parts.append(f"e-mailed to {d.manager} at {clock(d.at, now)}" if d.manager else "e-mailed")
        elif d.outcome == "pipeline_called":
            parts.append(f"pipeline {d.pipeline_status}" if d.pipeline_status is not None else "pipeline called")
        elif d.outcome == "dead_lettered":
            command = replay_command(stage, d.reason)
            problems.append(f"{stage} in {stage}.dlq since {clock(d.at, now)}: {d.reason} — `{command}`")
        elif d.outcome in {"retried", "deferred", "requeued"}:
            problems.append(f"{stage} {d.outcome} at {clock(d.at, now)}: {d.reason}")
    text = ", ".join(parts) + "".join(f"; {p}" for p in problems)
    return Verdict("arrived", text, moved.stage, None, moved.at, command)


def clock(at: datetime, now: datetime) -> str:
    """``09:14`` today, ``2026-11-03 09:14`` another day (UTC, as the journal stores it)."""
    if at.date() == now.date():
        return f"{at:%H:%M} UTC"
    return f"{at:%Y-%m-%d %H:%M} UTC"


def trace(
    term: str,
    *,
    store: JournalStore,
    now: datetime,
    dead_letters: Callable[[], Sequence[DeadLetter]] | None = None,
) -> Trace:
    """Look ``term`` (a file id, invoice id, event id or title fragment) up: the journal first, then the DLQ."""
    matches = store.find(term, limit=FIND_LIMIT)
    if len(matches) > 1:
        return Trace(term, matches=matches)
    if matches:
        match = matches[0]
        timeline = (
            store.timeline(file_id=match.file_id)
            if match.file_id is not None
            else store.timeline(event_id=match.event_id)
        )
        return Trace(term, matches=matches, timeline=timeline, verdict=verdict(timeline, now=now))
    letters = [d for d in (dead_letters() if dead_letters else []) if term in {d.file_id, d.invoice_id, d.event_id}]
    if letters:
        first = letters[0]
        command = replay_command(first.stage, first.reason)
        since = clock(first.last_failure, now) if first.last_failure else "an unknown time"
        text = f"not in the journal; in {first.stage}.dlq since {since}: {first.reason} — `{command}`"
        found = Verdict("dead_lettered", text, first.stage, first.reason, first.last_failure, command)
        return Trace(term, verdict=found, dead_letters=letters)
    where = "the journal and the dead-letter queues" if dead_letters else "the journal"
    return Trace(term, verdict=Verdict("not_found", f"not found in {where}"))


def details(d: Decision, now: datetime) -> str:
    """A decision's particulars in one line (rule, client, folder, manager, ...): the CLI's and the console's."""
    parts = [
        f"rule: {d.rule}" if d.rule else "",
        f"client {d.client}" if d.client else "",
        f"folder {d.folder}" if d.folder else "",
        f"to {d.manager}" if d.manager else "",
        f"pipeline {d.pipeline_status}" if d.pipeline_status is not None else "",
        f"parked until {clock(d.parked_until, now)}" if d.parked_until else "",
        f"attempt {d.attempt}" if d.attempt > 1 else "",
        f"by {d.actor}" if d.actor else "",
        f"{d.process}@{d.host}" if d.process else "",
    ]
    return ", ".join(p for p in parts if p)
