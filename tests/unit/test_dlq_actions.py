"""The operator's dead-letter actions on fakes: the selection, the pace, and the audit records they leave."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from ops.dead_letters import DeadLetter
from ops.dead_letters import Decision as Choice
from ops.dlq_actions import Audit, Pace, Selection, operator_name, purge_dead_letters, replay_dead_letters
from tests.support.journal_fakes import RecordingJournal

NOW = datetime(2026, 11, 3, 9, 0, tzinfo=UTC)


def letter(n: int, *, reason: str = "docspace_timeout", minutes: float = 10, client: str | None = "Acme") -> DeadLetter:
    return DeadLetter(
        id=f"{n:012x}",
        stage="mover",
        reason=reason,
        error="",
        attempts=4,
        first_failure=None,
        last_failure=NOW - timedelta(minutes=minutes),
        event_id=f"e{n}",
        file_id=f"f{n}",
        invoice_id=f"f{n}:1",
        routing_key="acme",
        message_id=f"f{n}:1",
        content_type=None,
        headers={},
        body=b"{}",
        client=client,
    )


class FakeQueues:
    """Implements ``DeadLetterSweeps``: one list per stage; a replayed message leaves it, a kept one stays."""

    def __init__(self, **queues: list[DeadLetter]) -> None:
        self.queues = queues
        self.replayed: list[str] = []

    def depth(self, stage: str) -> int:
        return len(self.queues.get(stage, []))

    def sweep(
        self,
        stage: str,
        decide: Callable[[DeadLetter], Choice],
        *,
        progress: Callable[[int, int], None] | None = None,
        settled: Callable[[DeadLetter, Choice], None] | None = None,
    ) -> list[tuple[DeadLetter, Choice]]:
        done, kept, total = [], [], self.depth(stage)
        for n, item in enumerate(self.queues.get(stage, [])):
            choice = decide(item)
            if choice == "replay":
                self.replayed.append(item.id)
            else:
                kept.append(item)
            done.append((item, choice))
            if settled is not None:
                settled(item, choice)
            if progress is not None:
                progress(n + 1, total)
        self.queues[stage] = kept
        return done

    def purge(self, stage: str, count: int) -> int:
        removed = self.queues[stage][:count]
        self.queues[stage] = self.queues[stage][count:]
        return len(removed)


def test_every_filter_must_hold_and_a_letter_without_a_failure_time_is_outside_any_window() -> None:
    window = Selection(("mover",), reason="docspace_timeout", since=NOW - timedelta(hours=2), until=NOW, client="acme")
    assert window.matches(letter(1, minutes=30))
    assert not window.matches(letter(2, minutes=30, reason="docspace_not_found"))
    assert not window.matches(letter(3, minutes=180))
    assert not window.matches(letter(4, minutes=-5))  # after --until
    assert not window.matches(letter(5, client="Globex"))
    assert not window.matches(letter(6, client=None))
    timeless = DeadLetter(**{**letter(7).__dict__, "last_failure": None})
    assert not window.matches(timeless) and Selection(("mover",)).matches(timeless)
    assert window.describe().startswith("stage=mover reason=docspace_timeout client=acme since=2026-11-03T07:00:00")


def test_the_pace_spaces_messages_evenly_at_the_rate() -> None:
    now = [0.0]
    slept: list[float] = []

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        now[0] += seconds

    pace = Pace(4, clock=lambda: now[0], sleep=sleep)
    for _ in range(5):
        pace.wait()
    assert slept == [0.25] * 4 and now[0] == 1.0
    with pytest.raises(ValueError):
        Pace(0)


def test_a_replay_journals_each_message_once_back_then_the_operation_with_its_count() -> None:
    queues = FakeQueues(mover=[letter(1), letter(2, reason="other"), letter(3)], **{"notifier.email": [letter(4)]})
    journal = RecordingJournal()
    audit = Audit(journal, "anna", operation="op-1", clock=lambda: NOW)
    progress: list[tuple[str, int, int, int]] = []

    report = replay_dead_letters(
        Selection(("mover", "notifier.email"), reason="docspace_timeout"),
        queues=queues,
        audit=audit,
        pace=Pace(1000),
        progress=lambda *args: progress.append(args),
    )

    assert queues.replayed == [f"{1:012x}", f"{3:012x}", f"{4:012x}"] and report.matched == 3
    assert [(d.outcome, d.file_id) for d in journal.decisions] == [
        ("replayed", "f1"),
        ("replayed", "f3"),
        ("replayed", "f4"),
        ("replay", None),
    ]
    operation = journal.decisions[-1]
    assert (operation.stage, operation.actor, operation.count, operation.event_id) == ("operator", "anna", 3, "op-1")
    assert operation.scope == "stage=mover,notifier.email reason=docspace_timeout"
    assert {d.operation for d in journal.decisions} == {"op-1"}
    assert progress[-1] == ("notifier.email", 1, 1, 3)

    # The same message replayed by another operation is another decision, never deduplicated away.
    again = Audit(RecordingJournal(), "anna", operation="op-2", clock=lambda: NOW).message_done("replayed", letter(1))
    assert again.decision_id != journal.decisions[0].decision_id


def test_a_dry_run_moves_and_journals_nothing_and_a_limit_stops_the_selection() -> None:
    queues = FakeQueues(mover=[letter(n) for n in range(30)])
    journal = RecordingJournal()
    report = replay_dead_letters(
        Selection(("mover",)), queues=queues, audit=Audit(journal, "anna"), pace=Pace(1000), dry_run=True
    )
    assert (report.matched, len(report.sample), queues.replayed, journal.decisions) == (30, 10, [], [])

    report = replay_dead_letters(
        Selection(("mover",), limit=2), queues=queues, audit=Audit(journal, "anna"), pace=Pace(1000)
    )
    assert report.matched == 2 and queues.depth("mover") == 28


def test_a_purge_journals_one_record_with_who_and_how_many() -> None:
    queues = FakeQueues(mover=[letter(n) for n in range(5)])
    journal = RecordingJournal()
    report = purge_dead_letters({"mover": 3}, queues=queues, audit=Audit(journal, "bob", operation="op-9"))
    assert report.total == 3 and queues.depth("mover") == 2
    [record] = journal.decisions
    assert (record.outcome, record.actor, record.count, record.scope) == (
        "purge",
        "bob",
        3,
        "stage=mover (the oldest: mover 3)",
    )


def test_the_operator_is_the_actor_given_else_the_os_user(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LOGNAME", "carol")
    assert operator_name(" dave ") == "dave"
    assert operator_name(None) == "carol"


def test_a_replay_the_broker_interrupts_still_records_the_operation_with_what_went_back() -> None:
    class Failing(FakeQueues):
        def sweep(self, stage: str, decide: Callable[[DeadLetter], Choice], **kwargs: Any) -> list[Any]:
            if stage == "notifier.email":
                raise ConnectionError("the broker went away")
            return super().sweep(stage, decide, **kwargs)

    journal = RecordingJournal()
    queues = Failing(mover=[letter(1)], **{"notifier.email": [letter(2)]})
    with pytest.raises(ConnectionError):
        replay_dead_letters(
            Selection(("mover", "notifier.email")), queues=queues, audit=Audit(journal, "anna"), pace=Pace(1000)
        )
    assert [(d.outcome, d.count) for d in journal.decisions] == [("replayed", None), ("replay", 1)]
    assert journal.decisions[-1].scope == "stage=mover,notifier.email (interrupted)"
