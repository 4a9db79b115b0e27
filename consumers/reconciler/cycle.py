"""A reconciler cycle: it checks the webhook, recovers failed deliveries, scans the rooms.

``reconcile`` runs a cycle under a lease in the checkpoint store, so two replicas never work at once and a
cycle another replica finished recently is not repeated. A typed failure (``StageError``) stops the cycle, says
why in its report, keeps the progress it made, and the next cycle carries on. Anything else is a bug: the cycle
fails with reason ``bug`` (counted, logged with its traceback), the row it met is set aside in the checkpoint
store's quarantine so the next cycle goes on past it, and the process keeps running. Success is recorded only
for a cycle that got to its end.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from datetime import datetime

import structlog

from consumers.reconciler.context import Cycle, Replica
from consumers.reconciler.model import Budget, CycleReport, Finding, Progress, RowBug, State
from consumers.reconciler.recovery import recover_failed_deliveries
from consumers.reconciler.scan import announce_trigger, scan_rooms
from shared.core.errors import StageError
from shared.docspace.delivery import parse_datetime
from shared.docspace.errors import DocSpaceAccessDenied, DocSpaceRejected
from shared.docspace.values import WebhookConfig
from shared.docspace.webhooks import find_pipeline_webhook, register_command
from shared.store.checkpoints import Checkpoints
from shared.store.idempotency import StoreUnavailable

log = structlog.get_logger("reconciler")

STATE = "reconciler.state"
LAST_RUN = "reconciler.last_run"
LEASE = "reconciler.cycle"
QUARANTINE = "reconciler"  # the rows a bug met (``RowBug``), by key; ``doctor`` lists them


@dataclass(frozen=True)
class WebhookHealth:
    """What the webhook check found, and the webhook itself when there is one."""

    state: str  # enabled, reenabled, disabled, missing, unknown
    config: WebhookConfig | None = None


def check_webhook(cycle: Cycle) -> WebhookHealth:
    """Find the pipeline's webhook; re-enable it if DocSpace disabled it. Missing: say how to register it again.

    The webhook is never re-created here: a new one would need a new secret, which the ingress does not have.
    Enabling makes DocSpace send ``HEAD`` to the URL first; while the ingress does not answer, DocSpace
    refuses (400) and the next cycle tries again.
    """
    knobs, report = cycle.knobs, cycle.report
    cycle.budget.spend()  # the webhook check always runs: one call, and the most important one
    try:
        configs = cycle.portal.list_webhooks()
    except DocSpaceAccessDenied as exc:
        log.warning(
            "webhook_unchecked",
            reason="the API key cannot read webhook settings (needs a global scope, *:write)",
            error=str(exc),
        )
        report.findings.append(Finding("webhook", "-", "-", "not checked", "the API key lacks a global scope"))
        return WebhookHealth("unknown")
    config = find_pipeline_webhook(configs, path=knobs.webhook_path, url=knobs.webhook_url, config_id=knobs.webhook_id)
    where = knobs.webhook_url or knobs.webhook_id or f"a URL ending in {knobs.webhook_path}"
    if config is None:
        fix = register_command(knobs.webhook_url)
        log.critical("webhook_missing", looked_for=where, fix=fix, hint="DocSpace deletes a webhook answered 410")
        report.findings.append(Finding("webhook", "-", where, "missing", f"register it again: {fix}"))
        return WebhookHealth("missing")
    if config.enabled:
        report.findings.append(Finding("webhook", config.id, config.uri, "enabled"))
        return WebhookHealth("enabled", config)
    if cycle.dry_run:
        report.findings.append(Finding("webhook", config.id, config.uri, "would re-enable", "disabled by DocSpace"))
        return WebhookHealth("disabled", config)
    cycle.budget.spend()
    try:
        cycle.portal.enable_webhook(config)
    except DocSpaceRejected as exc:
        log.critical(
            "webhook_disabled",
            webhook_id=config.id,
            url=config.uri,
            error=str(exc),
            hint="DocSpace's HEAD to the URL failed: the ingress is not reachable yet; tried again next cycle",
        )
        report.findings.append(Finding("webhook", config.id, config.uri, "still disabled", str(exc)))
        return WebhookHealth("disabled", config)
    log.critical(
        "webhook_reenabled",
        webhook_id=config.id,
        url=config.uri,
        disabled_after=str(config.last_failure_content or ""),
        hint="DocSpace had disabled it after failed deliveries; what it missed is recovered by this reconciler",
    )
    report.findings.append(Finding("webhook", config.id, config.uri, "re-enabled", "DocSpace had disabled it"))
    return WebhookHealth("reenabled", config)


def reconcile(
    replica: Replica,
    *,
    dry_run: bool = False,
    since: datetime | None = None,
    force: bool = False,
    progress: Progress | None = None,
) -> CycleReport:
    """One cycle of ``replica``. ``dry_run`` changes nothing anywhere; ``since`` backfills from then (an operator's
    request); ``force`` runs even if another replica finished a cycle less than an interval ago."""
    checkpoints, knobs, owner, rules = replica.checkpoints, replica.knobs, replica.owner, replica.rules
    report = CycleReport(started_at=replica.clock(), dry_run=dry_run)
    state: State | None = None
    budget = Budget(knobs.calls_per_cycle)
    finished = False
    try:
        # Inside the try: a store that does not answer is a failed cycle, retried next interval, not a crash.
        if not dry_run and not checkpoints.hold(LEASE, owner, seconds=knobs.lease.total_seconds()):
            report.not_run = "another reconciler is running a cycle"
            log.info("reconcile_not_run", reason=report.not_run)
            return report
        state = State.from_json(checkpoints.load(STATE))
        state.quarantined = set(checkpoints.quarantined(QUARANTINE))
        recent = state.last_cycle_at is not None and report.started_at - state.last_cycle_at < knobs.interval * 0.8
        if recent and not (force or dry_run or since is not None):
            report.not_run = "another reconciler finished a cycle less than an interval ago"
            log.info("reconcile_not_run", reason=report.not_run)
            return report
        if state.first_run_at is None:
            state.first_run_at = _history_floor(checkpoints, report.started_at)
            for client in rules.clients:
                state.room(client.room_id).floor = state.first_run_at  # the rooms watched from the start
        cycle = Cycle(
            portal=replica.portal,
            rules=rules,
            store=replica.store,
            announce=replica.announce,
            knobs=knobs,
            state=state,
            budget=budget,
            report=report,
            floor=since or state.first_run_at,
            since=since,
            dry_run=dry_run,
        )
        _cycle(cycle, progress)
        if knobs.hard_cap and report.budget_stopped:
            _failed(report, StageError(f"stopped after {budget.spent} DocSpace calls, its cap", reason="call_cap"))
            log.error("reconcile_capped", calls=budget.spent, hint="run it again: it goes on from where it stopped")
        finished = True
    except RowBug as exc:
        _met_bug(report, exc)
        finished = True  # the bug is the cycle's outcome, recorded as a failure below
    except StageError as exc:
        _failed(report, exc)
        log.error("reconcile_failed", reason=exc.reason, error=str(exc))
        finished = True
    except Exception as exc:
        # A bug outside any row (none to set aside): the cycle fails; the process, and the next cycle, go on.
        report.bugs += 1
        _failed(report, StageError(f"{type(exc).__name__}: {str(exc)[:200]}", reason="bug"))
        log.exception("reconcile_failed", reason="bug", error_type=type(exc).__name__)
        finished = True
    finally:
        report.calls = budget.spent
        report.finished_at = replica.clock()
        if not finished and report.error is None and report.not_run is None:
            # Something beyond Exception (an interrupt) ended the cycle half-way: its progress is kept, its
            # success is not claimed.
            report.error = "interrupted: the cycle did not finish"
        # Never save a state that was not read (the store failed): it would wipe the real checkpoint.
        if not dry_run and report.not_run is None and state is not None:
            _set_aside(checkpoints, report)
            _save(checkpoints, state, report, backfill=since is not None)
        if not dry_run:
            with contextlib.suppress(StoreUnavailable):
                checkpoints.release(LEASE, owner)
    if report.ok:
        log.info(
            "reconcile_done",
            webhook=report.webhook,
            recovered=dict(report.recovered),
            skipped=dict(report.skipped),
            files_scanned=report.files_scanned,
            rooms=f"{report.rooms_scanned}/{report.rooms_total}",
            scan_complete=report.scan_complete,
            calls=report.calls,
            dry_run=dry_run,
        )
    return report


def last_known(checkpoints: Checkpoints) -> tuple[str | None, datetime | None]:
    """The webhook's state as the last cycle (by any replica) found it, and when a cycle last succeeded.

    What a replica exports while it stands back or has just started, so it masks no alert: not "unknown"
    beside the one that knows, not its own start as the last success of a reconciler that keeps failing.
    """
    last_run = checkpoints.load(LAST_RUN)
    if last_run is None:
        return None, None
    webhook = last_run.get("webhook")
    if last_run.get("error") is None:
        succeeded = parse_datetime(last_run.get("finished_at"))
    else:
        succeeded = State.from_json(checkpoints.load(STATE)).last_cycle_at  # that cycle's start: never later
    return (webhook if isinstance(webhook, str) else None), succeeded


def _history_floor(checkpoints: Checkpoints, now: datetime) -> datetime:
    """The history floor: nothing uploaded before the first run is announced unless asked (``--since``).

    No state but a last run on record means the state was lost (damaged, deleted): the floor falls back to that
    run's start, so the uploads since are still found, and says so loudly; a floor of now would lose them.
    """
    last_run = checkpoints.load(LAST_RUN)
    before = parse_datetime(last_run.get("started_at")) if last_run is not None else None
    if before is not None and before < now:
        log.critical(
            "reconciler_state_lost",
            history_floor=before.isoformat(),
            hint="the checkpoint reconciler.state was missing or damaged; scanning again from the last run's start",
        )
        return before
    log.info("reconciler_first_run", history_floor=now.isoformat())
    return now


def _met_bug(report: CycleReport, exc: RowBug) -> None:
    """A bug met one row: the cycle fails with reason ``bug``, the row is set aside when the cycle ends."""
    report.bugs += 1
    report.set_aside.append(exc)
    _failed(report, exc)
    log.error(
        "reconcile_failed",
        reason=exc.reason,
        row=exc.key,
        error_type=exc.error_type,
        hint="the row is set aside (invoice-pipeline doctor lists it); the next cycle goes on past it",
        exc_info=exc,
        **exc.ids,
    )


def _set_aside(checkpoints: Checkpoints, report: CycleReport) -> None:
    """Put the rows bugs met in the quarantine, so the next cycle goes on past them instead of meeting them again."""
    for bug in report.set_aside:
        detail = {"error": str(bug), "error_type": bug.error_type, "at": report.started_at.isoformat(), **bug.ids}
        try:
            checkpoints.quarantine(QUARANTINE, bug.key, detail)
        except StoreUnavailable as exc:
            log.error("reconcile_row_not_set_aside", row=bug.key, error=str(exc), hint="met again next cycle")


def _failed(report: CycleReport, exc: StageError) -> None:
    error = f"{exc.reason}: {exc}"
    report.error = error if report.error is None else f"{report.error}; {error}"


def _cycle(cycle: Cycle, progress: Progress | None) -> None:
    """The cycle's three steps: the webhook, the delivery log (when there is a webhook), the room scan."""
    budget, report = cycle.budget, cycle.report
    steps = 2 + len(cycle.rules.clients)
    if progress is not None:
        progress("webhook", 0, steps)
    health = check_webhook(cycle)
    report.webhook = health.state
    if progress is not None:
        progress("delivery log", 1, steps)
    if health.config is not None:
        # Half of what is left is kept for the room scan: a log backlog larger than a cycle goes on next cycle
        # (from its last page) and never starves the backstop; what the log does not use, the scan gets.
        budget.reserved = (budget.calls - budget.spent) // 2 if budget.calls is not None else 0
        try:
            recover_failed_deliveries(health.config.id, cycle)
        except RowBug as exc:
            _met_bug(report, exc)  # the cycle has failed, but the room scan, the backstop, still runs
        except StageError as exc:
            # The cycle has failed, but the room scan, the backstop, still runs.
            _failed(report, exc)
            log.error("delivery_log_failed", reason=exc.reason, error=str(exc))
        budget.reserved = 0
    trigger = announce_trigger(cycle.knobs.triggers)
    if trigger is None:
        log.critical(
            "room_scan_off",
            triggers=sorted(cycle.knobs.triggers),
            reason="CLASSIFIER_TRIGGERS takes neither file.uploaded nor file.created: it would ignore announcements",
        )
        return
    scan_rooms(
        cycle,
        trigger=trigger,
        progress=None if progress is None else lambda what, done, total: progress(what, 2 + done, 2 + total),
    )


def _save(checkpoints: Checkpoints, state: State, report: CycleReport, *, backfill: bool) -> None:
    """Keep the progress made, even by a cycle that failed half-way; a store that fails now is only logged.

    A backfill (``--since``) is not a regular cycle: the service's next cycle still runs on time.
    """
    if report.error is None and not backfill:
        state.last_cycle_at = report.started_at  # replicas compare cycle starts, so one runs per interval
    try:
        checkpoints.save(STATE, state.to_json())
        checkpoints.save(LAST_RUN, report.to_json())
    except StoreUnavailable as exc:
        log.error("reconcile_checkpoint_not_saved", error=str(exc))
        if report.error is None:
            report.error = f"{exc.reason}: {exc}"
