"""Delivery-log recovery: DocSpace's failed deliveries since the checkpoint, fed to the classifier as they were sent.

DocSpace keeps every delivery's request body in its log. A delivery it gave up on (after ~31 s of retries) is
found there by ``groupStatus`` and published to ``docspace.events`` exactly as DocSpace last sent it, marked
``x-recovery-source: delivery_log``. This works while the ingress is still unreachable; see the README's
"No invoice left behind" for why publishing it without the ingress's signature check is safe.
"""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime, timedelta
from typing import Protocol

import orjson
import structlog

from consumers.reconciler.model import Announce, Announcement, Budget, CycleReport, Finding, State
from shared.docspace.webhooks import PAGE_SIZE, TRIGGER_NAMES, LoggedDelivery
from shared.idempotency import IdempotencyStore

log = structlog.get_logger("reconciler")

# Rows that leave the "failed" filter while we page (a pending delivery that succeeds) shift later rows up;
# each page starts this many rows early so none is skipped. Seeing a row twice costs nothing.
PAGE_OVERLAP = 10


class DeliveryLog(Protocol):
    """DocSpace's delivery log: one webhook's failed deliveries, newest first, a page at a time."""

    def failed_deliveries(self, config_id: str, *, start: int = 0, count: int = PAGE_SIZE) -> list[LoggedDelivery]: ...


def recovered_key(log_id: int) -> str:
    """The idempotency key that says a log row was already fed to the pipeline (by any reconciler)."""
    return f"reconciler:log:{log_id}"


def recover_failed_deliveries(
    config_id: str,
    *,
    deliveries: DeliveryLog,
    state: State,
    store: IdempotencyStore,
    announce: Announce,
    triggers: Collection[str],
    floor: datetime,
    now: datetime,
    settle: timedelta,
    budget: Budget,
    report: CycleReport,
    dry_run: bool = False,
    keep_checkpoint: bool = True,
) -> None:
    """Page the webhook's failed deliveries, newest first, down to the checkpoint; feed each settled one back.

    - ``floor``: rows older than this are history (before the first run, or before ``--since``): left alone.
    - ``settle``: a failure younger than this may still be retried by DocSpace itself; it waits for the next
      cycle, and the checkpoint stays below it.
    - only rows whose trigger the classifier takes are fed back (the log's ``trigger`` is the integer flag).
    - the checkpoint moves only when the pages were read to the end; an interrupted cycle starts over next
      time, and the per-row marks keep that from feeding a row twice.
    """
    if state.log_config_id != config_id:
        # Another webhook (re-registered): its ids start elsewhere. The floor keeps its history out.
        state.log_config_id, state.log_after_id = config_id, None
    after = state.log_after_id if keep_checkpoint else None
    highest = after
    unsettled: list[int] = []
    start, seen = 0, set()
    finished = False
    while not finished:
        if not budget.spend():
            log.info("delivery_log_budget_spent", read_to=start)
            return
        rows = deliveries.failed_deliveries(config_id, start=start, count=PAGE_SIZE)
        for row in rows:
            if (after is not None and row.id <= after) or (row.created is not None and row.created < floor):
                finished = True  # newest first: everything below is done, or history
                break
            if row.id in seen:
                continue
            seen.add(row.id)
            report.deliveries_seen += 1
            highest = row.id if highest is None else max(highest, row.id)
            if row.created is not None and row.created > now - settle:
                unsettled.append(row.id)
                continue
            _recover(row, store=store, announce=announce, triggers=triggers, report=report, dry_run=dry_run)
        if len(rows) < PAGE_SIZE:
            finished = True
        start += max(len(rows) - PAGE_OVERLAP, 1)
    if keep_checkpoint and not dry_run:
        state.log_after_id = min(unsettled) - 1 if unsettled else highest


def _recover(
    row: LoggedDelivery,
    *,
    store: IdempotencyStore,
    announce: Announce,
    triggers: Collection[str],
    report: CycleReport,
    dry_run: bool,
) -> None:
    trigger = TRIGGER_NAMES.get(row.trigger)
    if trigger is None or trigger not in triggers:
        report.skipped["delivery_wrong_trigger"] += 1
        return
    if store.is_done(recovered_key(row.id)):
        report.skipped["delivery_already_recovered"] += 1
        return
    if not row.request_payload:
        # Never sent, so nothing to replay; the room scan is the backstop for its file.
        report.skipped["delivery_without_payload"] += 1
        log.warning("delivery_not_recoverable", log_id=row.id, trigger=trigger, reason="no request payload")
        return
    body = row.request_payload.encode("utf-8")
    file_id, title = _file_of(body)
    if dry_run:
        report.findings.append(
            Finding("delivery", str(row.id), title or "", "would recover", _detail(row, trigger, file_id))
        )
        return
    announce(
        Announcement(
            body=body, trigger=trigger, event_id=str(row.id), source="delivery_log", file_id=file_id, log_id=row.id
        )
    )
    store.mark(recovered_key(row.id))
    report.recovered["delivery_log"] += 1
    report.findings.append(Finding("delivery", str(row.id), title or "", "recovered", _detail(row, trigger, file_id)))
    log.warning(
        "delivery_recovered",
        source="delivery_log",
        log_id=row.id,
        trigger=trigger,
        file_id=file_id,
        title=title,
        failed_status=row.status,
    )


def _detail(row: LoggedDelivery, trigger: str, file_id: str | None) -> str:
    answer = "no answer" if row.status == 0 else f"HTTP {row.status}"
    when = f"{row.created:%Y-%m-%d %H:%M:%S} UTC, " if row.created else ""
    return f"{trigger} of file {file_id or '?'}, {when}last attempt: {answer}"


def _file_of(body: bytes) -> tuple[str | None, str | None]:
    """The file id and title in a logged body, for the log line and the table; the classifier reads it again."""
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None, None
    payload = doc.get("payload") if isinstance(doc, dict) else None
    if not isinstance(payload, dict):
        return None, None
    file_id = payload.get("id")
    title = payload.get("title")
    return (str(file_id) if file_id is not None else None), (title if isinstance(title, str) else None)
