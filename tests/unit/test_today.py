"""The Today numbers (ops/today.py): the funnel and the tables, added up from the journal's totals."""

from __future__ import annotations

from datetime import UTC, datetime

from ops.today import summarise, window

NOW = datetime(2026, 11, 3, 14, 30, tzinfo=UTC)


def test_the_funnel_counts_each_step_from_its_stages_and_outcomes() -> None:
    totals = {
        ("ingress", "accepted", ""): 5,
        ("ingress", "spooled", ""): 1,
        ("classifier", "accepted", ""): 4,
        ("classifier", "ignored", "not_an_invoice"): 1,
        ("classifier", "retried", "docspace_unavailable"): 3,
        ("mover", "received", ""): 3,
        ("mover", "dead_lettered", "docspace_access_denied"): 1,
        ("notifier.email", "emailed", ""): 3,
        ("notifier.pipeline", "pipeline_called", ""): 2,
        ("notifier.pipeline", "deferred", "claim_held"): 1,
    }
    today = summarise(totals, NOW, NOW)
    assert {s.key: s.count for s in today.funnel} == {
        "deliveries": 6,
        "files": 5,  # a retry is not another file
        "invoices": 4,
        "moved": 3,
        "emailed": 3,
        "pipeline": 2,
    }
    assert [(c.stage, c.reason, c.count) for c in today.skipped] == [("classifier", "not_an_invoice", 1)]
    assert [(c.stage, c.reason) for c in today.dead_lettered] == [("mover", "docspace_access_denied")]
    assert [(c.stage, c.outcome, c.count) for c in today.waiting] == [
        ("classifier", "retried", 3),
        ("notifier.pipeline", "deferred", 1),
    ]


def test_files_seen_counts_files_not_the_deliveries_the_classifier_decided() -> None:
    # Two deliveries per upload (file.created, file.uploaded): an invoice's second is a duplicate, a photo's is
    # decided again. Three files, six classifier decisions.
    totals = {
        ("classifier", "accepted", ""): 2,
        ("classifier", "ignored", "duplicate"): 2,
        ("classifier", "ignored", "not_an_invoice"): 2,
    }
    assert {s.key: s.count for s in summarise(totals, NOW, NOW).funnel}["files"] == 6
    assert {s.key: s.count for s in summarise(totals, NOW, NOW, files_seen=3).funnel}["files"] == 3


def test_a_window_is_today_since_midnight_unless_named() -> None:
    assert window(None, NOW)[:1] == (datetime(2026, 11, 3, tzinfo=UTC),)
    assert window("1h", NOW) == (datetime(2026, 11, 3, 13, 30, tzinfo=UTC), NOW, "1h")
    assert window("anything else", NOW)[2] == "today"
