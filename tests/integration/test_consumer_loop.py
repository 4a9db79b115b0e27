"""The consumer loop on the real broker: acks, the retry ladder in delay queues, dead letters with their reasons."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pika
import pytest
import structlog
import structlog.testing

from shared.broker.consumer import MAX_DEFERRALS
from shared.broker.publisher import Publisher
from shared.broker.topology import CLASSIFIER
from shared.core.errors import Deferred, PermanentError, TransientError, UnpublishableMessage
from shared.core.handling import Handled, InboundMessage, Outcome
from shared.core.outgoing import OutgoingMessage
from tests.support.mail_fixtures import wait_until
from tests.support.real_broker import BrokerKit
from tests.support.stage_on_broker import StageOnBroker, started_stages


class Harness(StageOnBroker):
    """A ``StageConsumer`` on the real broker around a test's handler, recording what it saw and decided."""

    def __init__(
        self,
        broker: BrokerKit,
        handler: Callable[[InboundMessage], Handled | None],
        publisher: type[Publisher] = Publisher,
        journal: Any = None,
    ) -> None:
        self.seen: list[InboundMessage] = []

        def record(message: InboundMessage) -> Handled | None:
            self.seen.append(message)
            return handler(message)

        super().__init__(broker, record, name="test-consumer", publisher=publisher, journal=journal)

    def send(self, body: bytes, routing_key: str = "file.uploaded", **headers: Any) -> None:
        self.publish(body, message_id="m-1", routing_key=routing_key, **headers)

    def seconds_until_outcomes(self, body: bytes, count: int) -> float:
        """Send ``body`` and wait for ``count`` outcomes: how long that took (the broker's delays included)."""
        started = time.monotonic()
        self.send(body)
        self.wait_for_outcomes(count)
        return time.monotonic() - started

    def assert_twice_then_accepted(self, outcome: str, reason: str) -> None:
        """The message came back twice with ``outcome`` for ``reason``, was then accepted, and stayed itself."""
        assert self.outcomes == [(outcome, reason), (outcome, reason), ("accepted", None)]
        assert {m.routing_key for m in self.seen} == {"file.uploaded"}

    def wait_for_outcomes(self, count: int, timeout: float = 15) -> None:
        deadline = time.monotonic() + timeout
        while len(self.outcomes) < count:
            assert time.monotonic() < deadline, f"only {self.outcomes} within {timeout}s"
            time.sleep(0.05)


def _raising(
    error: type[TransientError | PermanentError], text: str, reason: str, **ids: str
) -> Callable[[InboundMessage], Handled]:
    """A handler that, for every message, binds ``ids`` to the log context and raises ``error(text, reason=...)``."""

    def handle(_message: InboundMessage) -> Handled:
        structlog.contextvars.bind_contextvars(**ids)
        raise error(text, reason=reason)

    return handle


@pytest.fixture
def harness(broker: BrokerKit) -> Iterator[Callable[..., Harness]]:
    def make(
        handler: Callable[[InboundMessage], Handled | None], publisher: type[Publisher] = Publisher, journal: Any = None
    ) -> Harness:
        return Harness(broker, handler, publisher, journal)

    yield from started_stages(make)


def test_a_handled_message_is_acked(harness: Any, broker: BrokerKit) -> None:
    h = harness(lambda m: Handled(Outcome.ACCEPTED))
    h.send(b'{"x":1}')
    h.wait_for_outcomes(1)
    assert h.outcomes == [("accepted", None)]
    assert h.seen[0].body == b'{"x":1}' and h.seen[0].routing_key == "file.uploaded" and h.seen[0].attempt == 1
    time.sleep(0.3)
    assert broker.depth(broker.topology.stage(CLASSIFIER).work) == 0


def test_in_flight_counts_the_messages_a_worker_holds_until_their_outcome(harness: Any, broker: BrokerKit) -> None:
    release = threading.Event()

    def slow(message: InboundMessage) -> Handled:
        assert release.wait(15)
        return Handled(Outcome.ACCEPTED)

    h = harness(slow)
    assert h.consumer.in_flight == 0
    h.send(b"one")
    h.send(b"two")
    assert wait_until(lambda: h.consumer.in_flight == 2, 10)  # both workers hold one; it is no longer "ready"
    assert broker.depth(broker.topology.stage(CLASSIFIER).work) == 0
    release.set()
    h.wait_for_outcomes(2)
    assert wait_until(lambda: h.consumer.in_flight == 0, 10)


def test_transient_failures_climb_the_ladder_then_succeed(harness: Any, broker: BrokerKit) -> None:
    def flaky(message: InboundMessage) -> Handled:
        if message.attempt < 3:
            raise TransientError("DocSpace answered 503", reason="docspace_unavailable")
        return Handled(Outcome.ACCEPTED)

    h = harness(flaky)
    elapsed = h.seconds_until_outcomes(b"body", 3)
    h.assert_twice_then_accepted("retried", "docspace_unavailable")
    # The delays (0.2 s, 0.4 s in the test topology) were spent in the broker's delay queues.
    assert elapsed >= 0.6
    assert [m.attempt for m in h.seen] == [1, 2, 3]
    assert all(m.body == b"body" for m in h.seen)


def test_a_deferred_message_waits_in_the_parking_queue_and_comes_back_at_the_same_attempt(
    harness: Any, broker: BrokerKit
) -> None:
    def busy_elsewhere(message: InboundMessage) -> Handled:
        if message.headers.get("x-deferrals", 0) < 2:
            raise Deferred("held by another worker", delay=0.5, reason="in_progress_elsewhere")
        return Handled(Outcome.ACCEPTED)

    h = harness(busy_elsewhere)
    elapsed = h.seconds_until_outcomes(b"body", 3)
    h.assert_twice_then_accepted("deferred", "in_progress_elsewhere")
    assert elapsed >= 1.0  # two half-second waits, spent in the broker
    assert [m.attempt for m in h.seen] == [1, 1, 1]  # not an attempt of the retry ladder
    assert [m.headers.get("x-deferrals") for m in h.seen] == [None, 1, 2]
    assert broker.depth(broker.topology.stage(CLASSIFIER).parked) == 0


def test_a_message_deferred_without_end_falls_to_the_retry_ladder(harness: Any, broker: BrokerKit) -> None:
    def forever(_message: InboundMessage) -> Handled:
        raise Deferred("held by another worker", delay=0.05, reason="in_progress_elsewhere")

    h = harness(forever)
    h.send(b"body", **{"x-deferrals": MAX_DEFERRALS - 1})
    h.wait_for_outcomes(5)
    assert h.outcomes[0] == ("deferred", "in_progress_elsewhere")
    assert h.outcomes[1:] == [("retried", "in_progress_elsewhere")] * 3 + [("dead_lettered", "in_progress_elsewhere")]


def test_a_spent_ladder_dead_letters_with_the_story(harness: Any, broker: BrokerKit) -> None:
    h = harness(_raising(TransientError, "SMTP 451 try later", "smtp_temporary", event_id="141022", file_id="3358301"))
    h.send(b"original bytes")
    h.wait_for_outcomes(4)
    assert h.outcomes[-1] == ("dead_lettered", "smtp_temporary")
    properties, body = broker.get(broker.topology.stage(CLASSIFIER).dead_letters)
    assert body == b"original bytes"
    headers = properties.headers
    assert headers["x-stage"] == CLASSIFIER
    assert headers["x-reason"] == "retries_exhausted"
    assert "smtp_temporary" in headers["x-error"] and "451" in headers["x-error"]
    assert headers["x-attempts"] == 4
    assert headers["x-first-failure"] <= headers["x-last-failure"]
    assert headers["x-event-id"] == "141022" and headers["x-file-id"] == "3358301"
    assert properties.message_id == "m-1"


def test_a_permanent_error_dead_letters_at_once(harness: Any, broker: BrokerKit) -> None:
    h = harness(_raising(PermanentError, "The required file was not found", "docspace_not_found", invoice_id="7:v1"))
    h.send(b"{}")
    h.wait_for_outcomes(1)
    properties, body = broker.get(broker.topology.stage(CLASSIFIER).dead_letters)
    assert body == b"{}"
    assert properties.headers["x-reason"] == "docspace_not_found"
    assert properties.headers["x-error"] == "The required file was not found"
    assert properties.headers["x-attempts"] == 1
    assert properties.headers["x-invoice-id"] == "7:v1"
    assert properties.headers["x-original-routing-key"] == "file.uploaded"
    assert len(h.seen) == 1


def test_a_bug_is_dead_lettered_not_looped(harness: Any, broker: BrokerKit) -> None:
    h = harness(lambda m: dict[str, Handled]()["missing"])
    h.send(b"{}")
    h.wait_for_outcomes(1)
    properties, _ = broker.get(broker.topology.stage(CLASSIFIER).dead_letters)
    assert properties.headers["x-reason"] == "bug"
    assert "KeyError" in properties.headers["x-error"]
    time.sleep(0.5)
    assert len(h.seen) == 1


class RefusingPublisher(Publisher):
    """The real publisher, scripted to fail every publish as pika fails one it cannot encode (or as a bug would)."""

    failure: Exception = UnpublishableMessage("the message cannot be encoded: UnsupportedAMQPFieldException")

    def publish_and_wait(self, message: OutgoingMessage, timeout: float | None = None) -> None:
        raise self.failure


@pytest.mark.parametrize("failure", ["permanent", "transient", "deferred"])
@pytest.mark.parametrize(
    ("error", "reason"), [(UnpublishableMessage("cannot be encoded"), "unpublishable"), (KeyError("x"), "bug")]
)
def test_a_message_whose_follow_up_cannot_be_published_is_rejected_to_the_dead_letters_once(
    harness: Any, broker: BrokerKit, failure: str, error: Exception, reason: str
) -> None:
    def fail(_message: InboundMessage) -> Handled:
        structlog.contextvars.bind_contextvars(invoice_id="7:v1")
        if failure == "permanent":
            raise PermanentError("no such file", reason="docspace_not_found")
        if failure == "transient":
            raise TransientError("timeout")
        raise Deferred("held elsewhere", delay=1)

    RefusingPublisher.failure = error
    h = harness(fail, publisher=RefusingPublisher)
    with structlog.testing.capture_logs() as logs:
        h.send(b"{}")
        h.wait_for_outcomes(1)
        dead, body = broker.get(broker.topology.stage(CLASSIFIER).dead_letters)
    assert body == b"{}" and dead.message_id == "m-1"
    assert dead.headers["x-death"][0]["reason"] == "rejected"  # the broker's dead-lettering, not the stage's
    assert h.outcomes == [("dead_lettered", reason)]
    [line] = [line for line in logs if line["event"] == "follow_up_unpublishable"]
    assert line["message_id"] == "m-1" and line["invoice_id"] == "7:v1" and line["reason"] == reason
    time.sleep(0.3)
    assert len(h.seen) == 1  # rejected once, not looped
    assert broker.depth(broker.topology.stage(CLASSIFIER).work) == 0


def test_retry_after_skips_to_a_long_enough_step(broker: BrokerKit) -> None:
    queues = broker.topology.stage(CLASSIFIER)  # delays 0.2, 0.4, 0.8
    assert queues.retry_queue_for(1) == (queues.retries[0], 0.2)
    assert queues.retry_queue_for(1, retry_after=0.3) == (queues.retries[1], 0.4)
    assert queues.retry_queue_for(1, retry_after=60) == (queues.retries[2], 0.8)
    assert queues.retry_queue_for(4) is None


def test_a_crash_looping_message_ends_in_the_dead_letter_queue(broker: BrokerKit) -> None:
    """The quorum delivery limit: a message whose consumer dies every time is dead-lettered by the broker."""
    work = broker.topology.stage(CLASSIFIER)
    connection = broker.connect()
    channel = connection.channel()
    channel.basic_publish(
        broker.topology.events_exchange, "file.created", b"poison", pika.BasicProperties(delivery_mode=2)
    )
    for _ in range(broker.topology.delivery_limit + 1):
        method = None
        for _ in range(50):
            method, _, _ = channel.basic_get(work.work)
            if method is not None:
                break
            time.sleep(0.05)
        if method is None:
            break
        channel.basic_nack(method.delivery_tag, requeue=True)  # what a dying consumer amounts to
    connection.close()
    _, body = broker.get(work.dead_letters)
    assert body == b"poison"


# ---- the decision journal: every settled outcome is one decision, and the journal is never in the way ----------


def _journalled(h: Harness, count: int) -> list[Any]:
    journal: Any = h.journal  # a RecordingJournal unless the test gave its own
    assert wait_until(lambda: len(journal.decisions) >= count, timeout=15), journal.outcomes()
    return list(journal.decisions)


def test_every_outcome_becomes_one_decision_with_its_ids_and_attempt(harness: Any, broker: BrokerKit) -> None:
    def flaky(message: InboundMessage) -> Handled:
        structlog.contextvars.bind_contextvars(event_id="ev-7", file_id="4711")
        if message.attempt < 3:
            raise TransientError("DocSpace answered 503", reason="docspace_unavailable")
        structlog.contextvars.bind_contextvars(invoice_id="4711:1")
        return Handled(Outcome.ACCEPTED, None, {"title": "Invoice-7.pdf", "client": "Acme", "body": "never kept"})

    h = harness(flaky)
    h.send(b"body")
    decisions = _journalled(h, 3)
    assert [(d.stage, d.outcome, d.reason, d.attempt) for d in decisions] == [
        (CLASSIFIER, "retried", "docspace_unavailable", 1),
        (CLASSIFIER, "retried", "docspace_unavailable", 2),
        (CLASSIFIER, "accepted", None, 3),
    ]
    assert {(d.event_id, d.file_id) for d in decisions} == {("ev-7", "4711")}
    assert (decisions[-1].invoice_id, decisions[-1].title, decisions[-1].client) == ("4711:1", "Invoice-7.pdf", "Acme")
    assert len({d.decision_id for d in decisions}) == 3
    assert "never kept" not in decisions[-1].to_bytes().decode()


def test_each_parking_is_a_decision_that_says_until_when(harness: Any, broker: BrokerKit) -> None:
    def busy_elsewhere(message: InboundMessage) -> Handled:
        if message.headers.get("x-deferrals", 0) < 2:
            raise Deferred("write quota spent", delay=0.5, reason="docspace_write_quota_spent")
        return Handled(Outcome.ACCEPTED)

    h = harness(busy_elsewhere)
    h.send(b"body", **{"x-docspace-event-id": "ev-8", "x-docspace-file-id": "4712"})
    decisions = _journalled(h, 3)
    parked = [d for d in decisions if d.outcome == "deferred"]
    assert len(parked) == 2 and len({d.decision_id for d in parked}) == 2
    assert all(d.parked_until is not None and d.parked_until > d.at for d in parked)
    # No handler bound ids: the ingress's headers name the delivery.
    assert {(d.event_id, d.file_id) for d in decisions} == {("ev-8", "4712")}


def test_a_spent_ladder_is_journalled_under_the_reason_the_dead_letter_queue_knows(
    harness: Any, broker: BrokerKit
) -> None:
    h = harness(_raising(TransientError, "SMTP 451 try later", "smtp_temporary", file_id="3358301"))
    h.send(b"original bytes")
    last = _journalled(h, 4)[-1]
    assert (last.outcome, last.reason, last.attempt) == ("dead_lettered", "retries_exhausted", 4)
    assert last.rule is not None and "smtp_temporary" in last.rule


def test_decisions_made_again_after_a_replay_are_new_decisions(harness: Any, broker: BrokerKit) -> None:
    h = harness(_raising(PermanentError, "gone", "docspace_not_found", file_id="4713"))
    h.send(b"body")
    h.send(b"body", **{"x-replays": 1})
    first, replayed = _journalled(h, 2)
    assert (first.outcome, replayed.outcome) == ("dead_lettered", "dead_lettered")
    assert first.decision_id != replayed.decision_id


class _BrokenJournal:
    """A journal that breaks its promise and raises: the message must not notice."""

    def record(self, decision: Any) -> None:
        raise RuntimeError("journal exploded")


def test_a_journal_that_fails_never_holds_the_message_up(harness: Any, broker: BrokerKit) -> None:
    h = harness(lambda _m: Handled(Outcome.ACCEPTED), journal=_BrokenJournal())
    h.send(b"body")
    h.wait_for_outcomes(1)
    assert h.outcomes == [("accepted", None)]
    assert wait_until(lambda: broker.depth(broker.topology.stage(CLASSIFIER).work) == 0, timeout=10)
