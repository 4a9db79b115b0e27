"""The reconciler's Prometheus metrics, set from each cycle's report."""

from __future__ import annotations

import time
from datetime import datetime

from prometheus_client import Counter, Gauge

from consumers.reconciler.model import PAGE_CAPS, CycleReport

WEBHOOK_ENABLED = Gauge(
    "reconciler_webhook_enabled", "1 when the pipeline's webhook is enabled, 0 when disabled or missing, -1 unknown"
)
RECOVERED = Counter(
    "reconciler_recovered", "Deliveries the reconciler fed back into the pipeline, by where it found them", ["source"]
)
FILES_SCANNED = Counter("reconciler_files_scanned", "Files the room scan looked at (inside its windows)")
# A watched room DocSpace refused to list (the key lost access, the room was deleted): the cycle still succeeds,
# so this is what tells an operator that the backstop does not cover that client any more.
ROOMS_NOT_SCANNED = Counter(
    "reconciler_rooms_not_scanned", "Watched rooms DocSpace refused to list (403, 404, another 4xx), per visit"
)
LAST_SUCCESS = Gauge(
    "reconciler_last_success_timestamp_seconds",
    "When the last successful cycle finished (Unix time), by any replica as stored; the process's start if none is",
)
INTERVAL = Gauge("reconciler_interval_seconds", "RECONCILE_INTERVAL: the alert on stale runs compares against it")
CYCLES = Counter("reconciler_cycles", "Reconcile cycles by outcome (ok, failed, not_run)", ["outcome"])
# A walk that stopped at MAX_WALK_PAGES: DocSpace kept answering full pages, the rest was not read.
PAGE_CAP_HITS = Counter(
    "reconciler_page_cap_hits",
    "Delivery-log walks and room scans cut off at their page cap (DocSpace never stopped answering full pages)",
    ["listing"],
)
# A bug (an exception nobody typed) failed a cycle; the row it met is set aside until an operator looks.
BUGS = Counter("reconciler_bugs", "Bugs that failed a reconcile cycle (each row met is set aside in the quarantine)")

_WEBHOOK = {"enabled": 1, "reenabled": 1, "disabled": 0, "missing": 0, "unknown": -1}


def prepare(interval_seconds: float) -> None:
    """Export every series from the start, so dashboards and alerts see zeros rather than nothing."""
    INTERVAL.set(interval_seconds)
    WEBHOOK_ENABLED.set(-1)
    # A reconciler that just started is not stale: its age counts from its start until a cycle succeeds.
    LAST_SUCCESS.set(time.time())
    for source in ("delivery_log", "room_scan"):
        RECOVERED.labels(source)
    for outcome in ("ok", "failed", "not_run"):
        CYCLES.labels(outcome)
    for listing in PAGE_CAPS.values():
        PAGE_CAP_HITS.labels(listing)


def crashed() -> None:
    """A cycle that raised past ``reconcile`` itself (a bug in its bookkeeping): a failed cycle and a bug."""
    CYCLES.labels("failed").inc()
    BUGS.inc()


def show_stored(webhook: str | None, last_success: datetime | None) -> None:
    """Export what the stored last run says (``handler.last_known``): at start, and while this replica stands
    back, so neither its -1 hides a disabled webhook from ``min()`` nor a restart makes a failing one look fresh.
    """
    if webhook in _WEBHOOK:
        WEBHOOK_ENABLED.set(_WEBHOOK[webhook])
    if last_success is not None:
        LAST_SUCCESS.set(last_success.timestamp())


def observe(report: CycleReport) -> None:
    if report.webhook in _WEBHOOK:
        WEBHOOK_ENABLED.set(_WEBHOOK[report.webhook])
    for source, count in report.recovered.items():
        RECOVERED.labels(source).inc(count)
    FILES_SCANNED.inc(report.files_scanned)
    ROOMS_NOT_SCANNED.inc(report.skipped.get("room_not_readable", 0))
    BUGS.inc(report.bugs)
    for skipped, listing in PAGE_CAPS.items():
        PAGE_CAP_HITS.labels(listing).inc(report.skipped.get(skipped, 0))
    if report.not_run is not None:
        CYCLES.labels("not_run").inc()
    elif report.error is not None:
        CYCLES.labels("failed").inc()
    else:
        CYCLES.labels("ok").inc()
        if report.finished_at is not None:
            LAST_SUCCESS.set(report.finished_at.timestamp())
