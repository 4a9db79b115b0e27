"""The verdict at the end of `invoice-pipeline trace`: one pure function of the timeline, one test per verdict."""

from __future__ import annotations

from datetime import timedelta

from ops.trace import trace, verdict
from shared.journal.record import Decision
from shared.journal.store import Match
from tests.support.journal_support import T0, decision

NOW = T0 + timedelta(hours=1)
ACCEPTED = decision("ingress", "accepted", event_id="e1", title="Invoice-0815.pdf")
DETECTED = decision("classifier", "accepted", minutes=1, invoice_id="4711:1", client="Acme")
MOVED = decision("mover", "received", minutes=2, folder="Acme/Incoming")


def test_an_empty_timeline_is_not_in_the_journal() -> None:
    assert verdict([], now=NOW).state == "not_found"
    assert verdict([], now=NOW).text == "not in the journal"


def test_a_moved_and_notified_invoice_has_arrived_with_where_whom_and_the_pipeline_s_answer() -> None:
    timeline = [
        ACCEPTED,
        DETECTED,
        MOVED,
        decision("notifier.email", "emailed", minutes=14, manager="anna@acme.example"),
        decision("notifier.pipeline", "pipeline_called", minutes=15, pipeline_status=200),
    ]
    found = verdict(timeline, now=NOW)
    assert found.state == "arrived"
    assert found.text == "arrived: in Acme/Incoming, e-mailed to anna@acme.example at 09:14 UTC, pipeline 200"
    assert found.command is None


def test_an_arrived_invoice_whose_e_mail_was_dead_lettered_says_so_with_the_replay_command() -> None:
    timeline = [
        DETECTED,
        MOVED,
        decision("notifier.email", "retried", minutes=3, reason="smtp_unavailable"),
        decision("notifier.email", "dead_lettered", minutes=20, reason="smtp_rejected"),
    ]
    found = verdict(timeline, now=NOW)
    assert found.state == "arrived"
    assert "notifier.email in notifier.email.dlq since 09:20 UTC: smtp_rejected" in found.text
    assert found.command == "invoice-pipeline dlq replay --stage notifier.email --reason smtp_rejected"


def test_a_file_the_classifier_skipped_names_the_reason_and_the_rule() -> None:
    skipped = decision("classifier", "ignored", minutes=1, reason="not_an_invoice", rule="title must contain 'invoice'")
    found = verdict([decision("ingress", "accepted"), skipped], now=NOW)
    assert (found.state, found.reason) == ("skipped", "not_an_invoice")
    assert found.text == "skipped: not_an_invoice (rule: title must contain 'invoice')"


def test_a_dead_lettered_file_says_where_since_when_why_and_how_to_replay_it() -> None:
    timeline = [
        DETECTED,
        decision("mover", "retried", minutes=2, reason="docspace_timeout"),
        decision("mover", "dead_lettered", minutes=20, attempt=2, reason="docspace_not_found"),
    ]
    found = verdict(timeline, now=NOW)
    assert found.state == "dead_lettered"
    assert found.text == (
        "in mover.dlq since 09:20 UTC: docspace_not_found — "
        "`invoice-pipeline dlq replay --stage mover --reason docspace_not_found`"
    )
    assert found.since == T0 + timedelta(minutes=20)


def test_a_parked_file_is_waiting_until_its_time() -> None:
    parked = decision(
        "mover",
        "deferred",
        minutes=2,
        reason="docspace_write_quota_spent",
        parked_until=T0 + timedelta(days=1) - timedelta(hours=9),
    )
    found = verdict([DETECTED, parked], now=NOW)
    assert found.state == "waiting"
    assert found.text == "waiting: parked until 2026-11-04 00:00 UTC (docspace_write_quota_spent)"


def test_a_file_on_the_retry_ladder_is_retrying() -> None:
    found = verdict([DETECTED, decision("mover", "retried", minutes=2, reason="docspace_timeout")], now=NOW)
    assert found.state == "retrying"
    assert found.text.startswith("retrying: attempt 1 in mover failed at 09:02 UTC: docspace_timeout")


def test_a_replayed_dead_letter_that_then_arrived_has_arrived() -> None:
    timeline = [
        DETECTED,
        decision("mover", "dead_lettered", minutes=2, reason="docspace_not_found"),
        decision("operator", "replayed", minutes=30, actor="ops@acme.example"),
        decision("mover", "received", minutes=31, folder="Acme/Incoming"),
    ]
    assert verdict(timeline, now=NOW).state == "arrived"


def test_a_file_only_the_ingress_has_seen_is_in_progress() -> None:
    found = verdict([ACCEPTED], now=NOW)
    assert (found.state, found.text) == ("in_progress", "in progress: ingress accepted at 09:00 UTC")


def test_an_earlier_day_is_written_with_its_date() -> None:
    found = verdict([ACCEPTED], now=NOW + timedelta(days=2))
    assert found.text == "in progress: ingress accepted at 2026-11-03 09:00 UTC"


class _Store:
    """Just enough of a JournalStore for trace(): the matches and timeline a test gives it."""

    def __init__(self, matches: list[Match], timeline: list[Decision]) -> None:
        self.matches, self.decisions = matches, timeline

    def find(self, term: str, *, limit: int = 20) -> list[Match]:
        return self.matches

    def timeline(self, *, file_id: str | None = None, event_id: str | None = None) -> list[Decision]:
        return [d for d in self.decisions if d.file_id == file_id]


def _match(file_id: str) -> Match:
    return Match(file_id, None, f"{file_id}.pdf", T0, T0, 1, "title")


def test_several_matches_are_offered_to_choose_from_without_a_verdict() -> None:
    found = trace("voice", store=_Store([_match("1"), _match("2")], []), now=NOW)  # type: ignore[arg-type]
    assert [m.file_id for m in found.matches] == ["1", "2"] and found.verdict is None


def test_nothing_in_the_journal_or_the_dead_letter_queues_is_not_found_in_either() -> None:
    found = trace("4711", store=_Store([], []), now=NOW, dead_letters=list)  # type: ignore[arg-type]
    assert found.verdict is not None and found.verdict.text == "not found in the journal and the dead-letter queues"


def test_one_match_gives_its_timeline_and_verdict() -> None:
    found = trace("4711", store=_Store([_match("4711")], [ACCEPTED, DETECTED]), now=NOW)  # type: ignore[arg-type]
    assert [d.stage for d in found.timeline] == ["ingress", "classifier"]
    assert found.verdict is not None and found.verdict.state == "in_progress"


def test_a_delivery_the_ingress_refused_as_stale_waits_for_the_reconciler() -> None:
    refused = decision("ingress", "refused", reason="stale", event_id="e1")
    found = verdict([refused], now=NOW)
    assert (found.state, found.stage, found.reason) == ("waiting", "ingress", "stale")
    assert found.text == (
        "waiting: refused by the ingress at 09:00 UTC as stale; the reconciler recovers it from DocSpace's delivery log"
    )


def test_a_spooled_delivery_waits_for_the_broker() -> None:
    found = verdict([decision("ingress", "spooled", reason="broker_unavailable", event_id="e1")], now=NOW)
    assert found.state == "waiting"
    assert found.text == "waiting: in the ingress's spool since 09:00 UTC; published when the broker is back"
