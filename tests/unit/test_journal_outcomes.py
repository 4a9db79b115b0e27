"""What the consumer loop knows about one message becomes one journal decision, with only the fields it keeps."""

from __future__ import annotations

from datetime import timedelta

from shared.journal.outcomes import Repeats, stage_decision
from shared.journal.record import Decision
from tests.support.journal_support import T0

IDS = {"event_id": "ev1", "file_id": "4711", "invoice_id": "4711:1", "message_id": "m1"}


def test_an_accepted_invoice_carries_its_ids_title_and_client() -> None:
    made = stage_decision(
        "classifier",
        "accepted",
        None,
        attempt=1,
        ids=IDS,
        details={"title": "Invoice-1.pdf", "client": "Acme", "room_id": "9", "body": "not kept"},
        now=T0,
    )
    assert (made.event_id, made.file_id, made.invoice_id) == ("ev1", "4711", "4711:1")
    assert (made.title, made.client, made.at) == ("Invoice-1.pdf", "Acme", T0)
    assert "not kept" not in made.to_bytes().decode()


def test_an_e_mail_names_the_manager_and_a_move_the_folder() -> None:
    emailed = stage_decision(
        "notifier.email", "emailed", None, attempt=1, ids=IDS, details={"to": "anna@acme.example"}, now=T0
    )
    moved = stage_decision("mover", "received", "moved", attempt=2, ids=IDS, details={"folder_id": 77}, now=T0)
    assert emailed.manager == "anna@acme.example"
    assert (moved.folder, moved.attempt, moved.reason) == ("77", 2, "moved")


def test_a_parked_message_says_until_when_and_each_parking_is_its_own_decision() -> None:
    first = stage_decision("mover", "deferred", "quota", attempt=1, ids=IDS, details={"deferred_s": 90.0}, now=T0)
    second = stage_decision(
        "mover",
        "deferred",
        "quota",
        attempt=1,
        ids=IDS,
        details={"deferred_s": 90.0},
        now=T0,
        repeats=Repeats(deferrals=1),
    )
    assert first.parked_until == T0 + timedelta(seconds=90)
    assert first.decision_id != second.decision_id


def test_the_same_outcome_of_a_redelivered_message_is_the_same_decision() -> None:
    once = stage_decision("mover", "retried", "docspace_timeout", attempt=1, ids=IDS, details={}, now=T0)
    again = stage_decision(
        "mover", "retried", "docspace_timeout", attempt=1, ids=IDS, details={}, now=T0 + timedelta(seconds=5)
    )
    assert once.decision_id == again.decision_id


def test_a_pipeline_status_that_is_not_a_number_is_left_out() -> None:
    called = stage_decision(
        "notifier.pipeline", "pipeline_called", None, attempt=1, ids={}, details={"status": 202}, now=T0
    )
    odd = stage_decision(
        "notifier.pipeline", "pipeline_called", None, attempt=1, ids={}, details={"status": "ok"}, now=T0
    )
    assert (called.pipeline_status, odd.pipeline_status) == (202, None)


def test_a_decision_made_again_after_an_operators_replay_is_a_new_decision() -> None:
    # A replayed dead letter starts at attempt 1 again: without the replay count its new decisions would be taken
    # for the ones before the replay and stored as duplicates (a gap in the timeline).
    before = stage_decision("mover", "dead_lettered", "docspace_forbidden", attempt=1, ids=IDS, details={}, now=T0)

    def after_a_replay() -> Decision:
        return stage_decision(
            "mover",
            "dead_lettered",
            "docspace_forbidden",
            attempt=1,
            ids=IDS,
            details={},
            now=T0,
            repeats=Repeats(replays=1),
        )

    after, again = after_a_replay(), after_a_replay()  # the same decision made twice after the replay
    assert before.decision_id != after.decision_id
    assert after.decision_id == again.decision_id
