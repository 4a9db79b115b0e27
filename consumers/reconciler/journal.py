"""The reconciler's journal decisions: a delivery recovered, a file found by the room scan, a webhook re-enabled.

Kept beside the reconciler's logic, not inside it: ``journalled`` wraps its ``Announce`` and ``webhook_decisions``
reads its cycle report, so the reconciler itself never knows the journal is there.
"""

from __future__ import annotations

from datetime import UTC, datetime

import structlog

from consumers.reconciler.model import Announcement, CycleReport
from consumers.reconciler.ports import Announce
from shared.docspace.delivery import InvalidDelivery, parse_delivery
from shared.journal.port import Journal
from shared.journal.record import Decision

log = structlog.get_logger("reconciler")

STAGE = "reconciler"
RULES = {
    "delivery_log": "DocSpace's delivery log shows the delivery failed; published from the log",
    "room_scan": "the room scan found an invoice no delivery announced; published as DocSpace would have sent it",
}


def recovered_decision(item: Announcement, *, now: datetime | None = None) -> Decision:
    """``recovered`` (reason: where it was found), with the ids the classifier will bind for the same delivery."""
    event_id, title = item.event_id, None
    try:
        delivery = parse_delivery(item.body)
    except InvalidDelivery:
        delivery = None
    if delivery is not None:
        event_id, title = delivery.event_id or event_id, delivery.title
    return Decision.make(
        STAGE,
        "recovered",
        at=now,
        reason=item.source,
        rule=RULES.get(item.source),
        event_id=event_id,
        file_id=item.file_id or (delivery.file_id if delivery is not None else None),
        title=title,
    )


def journalled(announce: Announce, journal: Journal) -> Announce:
    """``announce``, then its decision for the journal (only once the broker has confirmed the announcement)."""

    def announce_and_record(item: Announcement) -> None:
        announce(item)
        try:
            journal.record(recovered_decision(item))
        except Exception as exc:  # the journal is never in the recovery's way
            log.warning("journal_record_unrecordable", error=f"{type(exc).__name__}: {exc}"[:300])

    return announce_and_record


def webhook_decisions(report: CycleReport, *, now: datetime | None = None) -> list[Decision]:
    """A ``webhook_reenabled`` decision for each webhook this cycle re-enabled (it names no file)."""
    at = now or datetime.now(UTC)
    return [
        Decision.make(
            STAGE,
            "webhook_reenabled",
            at=at,
            # Each re-enabling is its own decision, however alike: the time tells them apart.
            occurrence=int(at.timestamp()),
            reason="disabled_by_docspace",
            rule=f"webhook {finding.ref} ({finding.what}): {finding.detail}"[:300],
        )
        for finding in report.findings
        if finding.kind == "webhook" and finding.action == "re-enabled"
    ]
