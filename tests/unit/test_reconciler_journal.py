"""The reconciler's journal decisions: what it recovered (and from where), and a webhook it re-enabled."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from consumers.reconciler.journal import journalled, recovered_decision, webhook_decisions
from consumers.reconciler.model import Announcement, CycleReport, Finding
from ops.test_event import sample_delivery
from tests.support.journal_fakes import RecordingJournal

NOW = datetime(2026, 9, 18, 9, 30, tzinfo=UTC)
BODY = sample_delivery(file_id=3358301, folder_id=6590431, title="Invoice-2026-0917.pdf", event_id=141022)


def test_a_delivery_recovered_from_the_log_names_the_event_docspace_sent() -> None:
    item = Announcement(body=BODY, trigger="file.uploaded", event_id="77", source="delivery_log", log_id=77)
    made = recovered_decision(item, now=NOW)
    assert (made.stage, made.outcome, made.reason) == ("reconciler", "recovered", "delivery_log")
    # The classifier binds the body's event id: the recovery and what follows share it, so trace joins them.
    assert (made.event_id, made.file_id, made.title) == ("141022", "3358301", "Invoice-2026-0917.pdf")
    assert made.rule is not None and "delivery log" in made.rule


def test_an_announcement_is_journalled_only_once_the_broker_took_it() -> None:
    journal = RecordingJournal()
    item = Announcement(body=BODY, trigger="file.uploaded", event_id="x", source="room_scan", file_id="3358301")

    def refused(_item: Announcement) -> None:
        raise ConnectionError("broker away")

    with pytest.raises(ConnectionError):
        journalled(refused, journal)(item)
    assert journal.decisions == []
    journalled(lambda _item: None, journal)(item)
    assert journal.outcomes() == [("reconciler", "recovered", "room_scan")]


def test_a_re_enabled_webhook_is_a_decision_and_each_re_enabling_its_own() -> None:
    report = CycleReport(started_at=NOW)
    report.findings += [
        Finding("webhook", "9", "https://invoices.example/docspace/webhook", "re-enabled", "DocSpace had disabled it"),
        Finding("delivery", "77", "Invoice.pdf", "recovered"),
    ]
    [first] = webhook_decisions(report, now=NOW)
    [later] = webhook_decisions(report, now=NOW.replace(hour=10))
    assert (first.stage, first.outcome, first.reason) == ("reconciler", "webhook_reenabled", "disabled_by_docspace")
    assert first.rule is not None and "webhook 9" in first.rule
    assert first.decision_id != later.decision_id
    assert webhook_decisions(CycleReport(started_at=NOW), now=NOW) == []
