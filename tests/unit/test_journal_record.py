"""A journal record: its id is the same for the same decision, so a redelivery can never store it twice."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pydantic import ValidationError

from shared.journal.record import Decision
from tests.support.journal_support import T0, decision


def test_the_same_decision_about_the_same_message_gets_the_same_id_whenever_it_is_made() -> None:
    first = decision("mover", "retried", reason="docspace_timeout", invoice_id="4711:1", attempt=2)
    again = decision("mover", "retried", minutes=7, reason="docspace_timeout", invoice_id="4711:1", attempt=2)
    assert first.decision_id == again.decision_id


@pytest.mark.parametrize(
    "change",
    [
        {"attempt": 3},
        {"reason": "docspace_unavailable"},
        {"invoice_id": "4711:2"},
        {"file_id": "4712"},
        {"event_id": "e2"},
    ],
)
def test_another_attempt_reason_or_message_is_another_decision(change: dict[str, Any]) -> None:
    base: dict[str, Any] = {"reason": "docspace_timeout", "invoice_id": "4711:1", "attempt": 2, "event_id": "e1"}
    changed = {**base, **change}
    assert (
        Decision.make("mover", "retried", **base).decision_id
        != Decision.make("mover", "retried", **changed).decision_id
    )


def test_a_second_parking_at_the_same_attempt_is_told_apart_by_its_occurrence() -> None:
    once = Decision.make("mover", "deferred", at=T0, file_id="1", occurrence=1)
    twice = Decision.make("mover", "deferred", at=T0, file_id="1", occurrence=2)
    assert once.decision_id != twice.decision_id


def test_a_record_round_trips_and_a_reader_ignores_fields_it_does_not_know() -> None:
    record = decision("notifier.email", "emailed", manager="anna@acme.example", parked_until=None)
    assert Decision.from_bytes(record.to_bytes()) == record
    newer = json.loads(record.to_bytes()) | {"schema_version": 2, "something_new": [1, 2]}
    assert Decision.from_bytes(json.dumps(newer).encode()).manager == "anna@acme.example"


def test_a_time_without_an_offset_is_utc() -> None:
    naive = Decision.make("mover", "deferred", at=datetime(2026, 11, 3, 9, 0), parked_until=datetime(2026, 11, 4))
    assert naive.at == T0 and naive.parked_until == datetime(2026, 11, 4, tzinfo=UTC)


def test_what_is_not_a_record_is_refused() -> None:
    with pytest.raises(ValidationError):
        Decision.from_bytes(b'{"stage": "mover"}')
    with pytest.raises(ValueError):
        Decision.from_bytes(b"\xff not json")
    assert decision(minutes=1).at - T0 == timedelta(minutes=1)
