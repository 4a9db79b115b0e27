"""Delivery-log recovery: DocSpace's failed deliveries since the checkpoint, fed to the classifier as they were sent.

DocSpace keeps every delivery's request body in its log. A delivery it gave up on (after ~31 s of retries) is
found there by ``groupStatus`` and published to ``docspace.events`` exactly as DocSpace last sent it, marked
``x-recovery-source: delivery_log``. This works while the ingress is still unreachable; see the README's
"No invoice left behind" for why publishing it without the ingress's signature check is safe.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

import orjson
import structlog

from consumers.reconciler.context import Cycle
from consumers.reconciler.model import Announcement, Finding, LogPass, RowBug, delivery_key
from shared.core.errors import StageError
from shared.docspace.webhooks import PAGE_SIZE, TRIGGER_NAMES, LoggedDelivery, UnreadableRow

log = structlog.get_logger("reconciler")

# Rows that leave the "failed" filter while we page (a pending delivery that succeeds) shift later rows up;
# each page starts this many rows early so none is skipped. Seeing a row twice costs nothing. A shift larger
# than this is noticed (the page begins below every id seen so far) and the walk steps back a page.
PAGE_OVERLAP = 10
# A row DocSpace has not sent yet has no body to replay, and is held for (the checkpoint stays below it) as
# long as it may still be sent: its sender polls every 5 s, so a row still unsent after a day never will be;
# the room scan is the backstop for its file.
UNSENT_GIVE_UP = timedelta(days=1)
# Log ids count up one table's rows; one far above the others (an 18-digit id among 6-digit ones) would pin the
# checkpoint above every real row for good. Such a row is refused, counted and logged, and never moves it.
MAX_ID_JUMP = 10**9


def recovered_key(log_id: int) -> str:
    """The idempotency key that says a log row was already fed to the pipeline (by any reconciler)."""
    return f"reconciler:log:{log_id}"


def recover_failed_deliveries(config_id: str, cycle: Cycle) -> None:
    """Walk the webhook's failed deliveries, newest first, down to the checkpoint; feed each settled one back.

    - ``cycle.floor``: rows older than this are history (before the first run, or before ``--since``): left alone.
    - ``knobs.log_settle``: a failure younger than this may still be retried by DocSpace itself, and a row without
      a body has not been sent yet; either waits for a later cycle, and the checkpoint stays below it.
    - only rows whose trigger the classifier takes are fed back (the log's ``trigger`` is the integer flag).
    - the checkpoint moves only when the walk reached it, and only over ids examined page after overlapping
      page; a walk the budget interrupts goes on next cycle from its last page (``State.log_pass``), and the
      per-row marks keep a row from being fed twice.
    - a backfill (``cycle.since``) walks from the top and leaves the checkpoint alone.
    """
    state, budget, report, floor = cycle.state, cycle.budget, cycle.report, cycle.floor
    keep_checkpoint, dry_run = cycle.since is None, cycle.dry_run
    if state.log_config_id != config_id:
        # Another webhook (re-registered): its ids start elsewhere. The floor keeps its history out.
        state.log_config_id, state.log_after_id, state.log_pass = config_id, None, None
    after = state.log_after_id if keep_checkpoint else None
    walk = state.log_pass if keep_checkpoint and state.log_pass is not None else LogPass()
    pages = 0
    while True:
        if report.walk_capped(pages, "log_page_cap", "the log", webhook_id=config_id):
            break  # the checkpoint still moves only over the rows settled
        pages += 1
        if not budget.spend():
            report.budget_stopped = True
            if keep_checkpoint and not dry_run:
                state.log_pass = walk
            log.info("delivery_log_continues_next_cycle", read_to=walk.start)
            return
        rows = cycle.portal.failed_deliveries(config_id, start=walk.start, count=PAGE_SIZE)
        first = next((row for row in rows if isinstance(row, LoggedDelivery)), None)
        if walk.start and walk.low is not None and first is not None and first.id < walk.low:
            # More rows left the filter than the overlap covers: the rows just above this page were never
            # examined. Step back a page (to the top at worst) rather than skip them.
            walk.start = max(walk.start - (PAGE_SIZE - PAGE_OVERLAP), 0)
            continue
        finished = len(rows) < PAGE_SIZE
        reference = _reference_id(rows, after)
        for row in rows:
            if isinstance(row, UnreadableRow):
                report.skipped["delivery_unreadable"] += 1
                log.warning("delivery_not_recoverable", reason=row.reason)
                continue
            if reference is not None and row.id > reference + MAX_ID_JUMP:
                report.skipped["delivery_implausible_id"] += 1
                log.error(
                    "delivery_implausible_id",
                    log_id=row.id,
                    near=reference,
                    reason="far above every other row: not replayed, and the checkpoint does not move over it",
                )
                continue
            if (after is not None and row.id <= after) or (row.created is not None and row.created < floor):
                finished = True  # newest first: everything below is done, or history
                break
            if walk.low is not None and row.id >= walk.low:
                continue  # examined on an earlier page (the overlap), or newer than the walk (the next walk's)
            walk.low = row.id
            report.deliveries_seen += 1
            if _unsettled(row, now=cycle.now, settle=cycle.knobs.log_settle):
                walk.hold = row.id if walk.hold is None else min(walk.hold, row.id)
                continue
            if delivery_key(row.id) in state.quarantined:
                report.skipped["delivery_quarantined"] += 1  # a bug met it: set aside, listed by doctor
            else:
                _recover_row(row, cycle)
            # Settled: the checkpoint may move up to here (the newest row settled when the walk ends).
            walk.top = row.id if walk.top is None else max(walk.top, row.id)
        if finished:
            break
        walk.start += max(len(rows) - PAGE_OVERLAP, 1)
    if keep_checkpoint and not dry_run:
        state.log_pass = None
        if walk.hold is not None:
            state.log_after_id = walk.hold - 1
        elif walk.top is not None:
            state.log_after_id = max(walk.top, after) if after is not None else walk.top


def _reference_id(rows: Sequence[LoggedDelivery | UnreadableRow], after: int | None) -> int | None:
    """What a plausible id on this page is near: the checkpoint, else the page's lowest id (newest first)."""
    if after is not None:
        return after
    ids = [row.id for row in rows if isinstance(row, LoggedDelivery)]
    return min(ids) if len(ids) > 1 else None


def _recover_row(row: LoggedDelivery, cycle: Cycle) -> None:
    """``_recover``, with a bug (an exception nobody typed) pinned on the row, so the cycle can set it aside."""
    try:
        _recover(row, cycle)
    except StageError:
        raise  # typed: the broker, the store; the row is retried next cycle
    except Exception as exc:
        raise RowBug(delivery_key(row.id), exc, log_id=row.id, trigger=row.trigger) from exc


def _unsettled(row: LoggedDelivery, *, now: datetime, settle: timedelta) -> bool:
    """DocSpace may still send (or retry) this row itself; it is not ours yet."""
    if row.created is not None and row.created > now - settle:
        return True
    # Without a time, a row without a body could hold the log forever: it is given up at once.
    if not row.request_payload and row.created is not None and row.created > now - UNSENT_GIVE_UP:
        log.info("delivery_not_sent_yet", log_id=row.id, reason="no request payload yet: held for")
        return True
    return False


def _recover(row: LoggedDelivery, cycle: Cycle) -> None:
    store, report = cycle.store, cycle.report
    trigger = TRIGGER_NAMES.get(row.trigger)
    if trigger is None or trigger not in cycle.knobs.triggers:
        report.skipped["delivery_wrong_trigger"] += 1
        return
    if store.is_done(recovered_key(row.id)):
        report.skipped["delivery_already_recovered"] += 1
        return
    if not row.request_payload:
        # Still unsent after UNSENT_GIVE_UP, so never will be: nothing to replay; the room scan is the backstop.
        report.skipped["delivery_without_payload"] += 1
        log.warning("delivery_not_recoverable", log_id=row.id, trigger=trigger, reason="no request payload")
        return
    body = row.request_payload.encode("utf-8")
    file_id, title = _file_of(body)
    if cycle.dry_run:
        report.findings.append(
            Finding("delivery", str(row.id), title or "", "would recover", _detail(row, trigger, file_id))
        )
        return
    cycle.announce(
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
