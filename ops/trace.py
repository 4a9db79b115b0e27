"""What happened to a file: its decisions from the journal, and the one-line verdict that says what to do next.

:func:`verdict` is a pure function of the timeline (and the time now); :func:`trace` looks the term up in the
journal and, when the journal knows nothing, in the dead-letter queues. The CLI (ops/cli_trace.py) prints what
these return; the operator console will show the same.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Literal

from shared.journal.record import Decision
from shared.journal.store import JournalStore, Match

if TYPE_CHECKING:
    # Named in annotations only: a trace the journal answers loads neither the broker client nor DocSpace's.
    from ops.dead_letters import DeadLetter
    from ops.delivery_log import DeliveryLogSearch, LoggedFileDelivery

State = Literal[
    "arrived",
    "skipped",
    "dead_lettered",
    "waiting",
    "retrying",
    "in_progress",
    "operator_action",
    "in_delivery_log",
    "not_found",
]

ARRIVED = "received"  # the mover's outcome: in the client's Incoming folder, InvoiceReceived published
SKIPPED = frozenset({"ignored", "skipped"})
NOTIFIERS = ("notifier.email", "notifier.pipeline")
OPERATOR = "operator"  # the stage of an operator's actions (ops/dlq_actions.py)
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
    delivery_log: DeliveryLogSearch | None = None  # looked at only when the journal knows nothing


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
    if last.stage == OPERATOR:
        return _operator(last, now)
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


def _operator(last: Decision, now: datetime) -> Verdict:
    """An operator's action: a replayed message is on its way again; an operation says who did what to how many."""
    who = last.actor or "an operator"
    when = clock(last.at, now)
    if last.count is None:  # one message's record
        queue = last.scope or "its dead-letter queue"
        stage = queue.removesuffix(".dlq")
        text = f"replayed from {queue} by {who} at {when} (operation {last.operation}): back in {stage}'s queue"
        return Verdict("in_progress", text, stage, last.reason, last.at)
    scope = f": {last.scope}" if last.scope else ""
    verb = {"replay": "replayed", "purge": "purged"}.get(last.outcome, last.outcome)
    text = f"{who} {verb} {last.count} dead letter(s) at {when} (operation {last.operation}){scope}"
    return Verdict("operator_action", text, OPERATOR, None, last.at)


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
    delivery_log: Callable[[str], DeliveryLogSearch] | None = None,
) -> Trace:
    """Look ``term`` (a file id, invoice id, event id or title fragment) up: the journal first; when it knows
    nothing, the dead-letter queues and DocSpace's delivery log."""
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
    logged = delivery_log(term) if delivery_log is not None else None
    if letters:
        first = letters[0]
        command = replay_command(first.stage, first.reason)
        since = clock(first.last_failure, now) if first.last_failure else "an unknown time"
        text = f"not in the journal; in {first.stage}.dlq since {since}: {first.reason} — `{command}`"
        found = Verdict("dead_lettered", text, first.stage, first.reason, first.last_failure, command)
        return Trace(term, verdict=found, dead_letters=letters, delivery_log=logged)
    where = ["the journal"] + (["the dead-letter queues"] if dead_letters else [])
    if logged is not None and logged.searched:
        where.append("DocSpace's delivery log")
        if logged.deliveries:
            return Trace(term, verdict=logged_verdict(logged.deliveries, now), delivery_log=logged)
    text = f"not found in {_listed(where)}"
    if logged is not None and logged.searched:
        text += (
            f" ({logged.note}): if it was uploaded to a watched room, the reconciler's room scan finds it "
            f"(`{RECONCILE}` runs one now)"
        )
    next_step = RECONCILE if logged is not None and logged.searched else None
    return Trace(term, verdict=Verdict("not_found", text, command=next_step), delivery_log=logged)


RECONCILE = "invoice-pipeline reconcile"


def logged_verdict(deliveries: Sequence[LoggedFileDelivery], now: datetime) -> Verdict:
    """The file is in DocSpace's delivery log but not in the journal: delivered (then we lost track) or not."""
    files = {d.file_id for d in deliveries}
    if len(files) > 1:  # a title fragment that several files' deliveries share
        return Verdict(
            "in_delivery_log",
            f"not in the journal; deliveries of {len(files)} files in DocSpace's delivery log match: trace one by its "
            "file id",
            "ingress",
            None,
            deliveries[0].created,
        )
    latest = deliveries[0]  # newest first
    what = f"{latest.trigger} of file {latest.file_id or '?'}"
    when = f" at {clock(latest.created, now)}" if latest.created else ""
    if any(d.delivered for d in deliveries):
        ok = next(d for d in deliveries if d.delivered)
        text = (
            f"not in the journal, but DocSpace delivered it: {ok.trigger} of file {ok.file_id or '?'}"
            + (f" at {clock(ok.created, now)}" if ok.created else "")
            + f", answered {ok.status}; the journal writer may be behind (journal_lag_seconds) or was not running"
        )
        return Verdict("in_delivery_log", text, "ingress", None, ok.created)
    answer = "no answer" if latest.status == 0 else f"HTTP {latest.status}"
    text = (
        f"not in the journal; DocSpace could not deliver it: {what}{when}, {answer} — the reconciler recovers it "
        f"from the delivery log at its next cycle (`{RECONCILE}` does it now)"
    )
    return Verdict("in_delivery_log", text, "ingress", f"delivery_failed_{latest.status}", latest.created, RECONCILE)


def _listed(places: list[str]) -> str:
    return places[0] if len(places) == 1 else ", ".join(places[:-1]) + " and " + places[-1]


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
