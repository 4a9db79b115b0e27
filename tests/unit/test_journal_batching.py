"""BrokerJournal gathers records into batch messages: by size, by time, on flush and close; failures count records."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from prometheus_client import REGISTRY

from shared.core.errors import MessageNacked
from shared.journal.broker import BATCH_TYPE, Batching, BrokerJournal
from shared.journal.record import decisions_from_bytes
from tests.support.fakes import FakePublisher
from tests.support.journal_support import decision
from tests.support.mail_fixtures import wait_until

NEVER = 3600.0  # a batch wait no test outlives: only the other trigger (or close) publishes


@pytest.fixture
def journals() -> Iterator[list[BrokerJournal]]:
    made: list[BrokerJournal] = []
    yield made
    for journal in made:
        journal.close(timeout=0)


def _journal(made: list[BrokerJournal], publisher: FakePublisher, batching: Batching) -> BrokerJournal:
    journal = BrokerJournal(publisher, "journal", process="mover", host="h1", batching=batching)
    made.append(journal)
    return journal


def _confirmed_on_close(made: list[BrokerJournal]) -> tuple[FakePublisher, BrokerJournal]:
    """A journal that publishes only on flush or close, to a broker that confirms everything at once."""
    publisher = FakePublisher(confirm_at_once=True)
    return publisher, _journal(made, publisher, Batching(max_records=100, max_wait=NEVER))


def _dropped() -> float:
    return REGISTRY.get_sample_value("journal_records_dropped_total", {"reason": "publish_failed"}) or 0.0


def _records(publisher: FakePublisher) -> list[list[str]]:
    """The file ids of each published message's records, message by message."""
    out = []
    for message in publisher.messages:
        read, bad = decisions_from_bytes(message.body)
        assert bad == 0
        out.append([d.file_id or "" for d in read])
    return out


def test_a_full_batch_is_published_at_once_as_one_message(journals: list[BrokerJournal]) -> None:
    publisher = FakePublisher()
    journal = _journal(journals, publisher, Batching(max_records=3, max_wait=NEVER))
    for n in range(5):
        journal.record(decision(file_id=str(n)))
    assert wait_until(lambda: len(publisher.messages) == 1, timeout=5)
    time.sleep(0.2)  # the two left over wait for company (or the clock, or close)
    assert _records(publisher) == [["0", "1", "2"]]
    message = publisher.messages[0]
    assert message.type == BATCH_TYPE
    assert message.timestamp == int(decision().at.timestamp())  # the oldest record's time: what the lag measures


def test_a_batch_that_does_not_fill_is_published_when_its_oldest_record_has_waited(
    journals: list[BrokerJournal],
) -> None:
    publisher = FakePublisher()
    journal = _journal(journals, publisher, Batching(max_records=1000, max_wait=0.5))
    started = time.monotonic()
    for n in range(4):
        journal.record(decision(file_id=str(n)))
    assert wait_until(lambda: len(publisher.messages) == 1, timeout=10)
    assert time.monotonic() - started >= 0.5
    assert _records(publisher) == [["0", "1", "2", "3"]]
    journal.record(decision(file_id="4"))  # the next batch's clock starts afresh
    assert wait_until(lambda: len(publisher.messages) == 2, timeout=10)
    assert _records(publisher)[1] == ["4"]


def test_close_publishes_what_is_buffered_and_waits_for_its_confirms(journals: list[BrokerJournal]) -> None:
    confirming, journal = _confirmed_on_close(journals)
    for n in range(3):
        journal.record(decision(file_id=str(n)))
    assert confirming.messages == []
    assert journal.close(timeout=5) == 0
    assert _records(confirming) == [["0", "1", "2"]]

    silent = FakePublisher()  # the broker never confirms: close gives up after its timeout and says how many
    journal = _journal(journals, silent, Batching(max_records=100, max_wait=NEVER))
    for n in range(3):
        journal.record(decision(file_id=str(n)))
    assert journal.close(timeout=0.2) == 3


def test_a_record_after_close_is_published_on_its_own_not_lost(journals: list[BrokerJournal]) -> None:
    publisher, journal = _confirmed_on_close(journals)
    journal.close(timeout=1)
    journal.record(decision(file_id="late"))
    assert _records(publisher) == [["late"]]


def test_flush_publishes_the_buffer_now_and_counts_what_the_broker_did_not_confirm(
    journals: list[BrokerJournal],
) -> None:
    publisher, journal = _confirmed_on_close(journals)
    journal.record(decision(file_id="1"))
    assert journal.flush(timeout=5) == 0
    assert _records(publisher) == [["1"]]

    silent = FakePublisher()  # the broker does not confirm in time: flush says how many it did not hear about
    journal = _journal(journals, silent, Batching(max_records=100, max_wait=NEVER))
    journal.record(decision(file_id="2"))
    assert journal.flush(timeout=0.1) == 1
    silent.confirm_all()
    assert journal.flush(timeout=1) == 0


def test_a_batch_the_broker_refuses_counts_every_record_as_dropped(journals: list[BrokerJournal]) -> None:
    publisher = FakePublisher()
    journal = _journal(journals, publisher, Batching(max_records=4, max_wait=NEVER))
    before = _dropped()
    publisher.refuse_next()  # not connected: the publish fails at once
    for n in range(4):
        journal.record(decision(file_id=str(n)))
    assert wait_until(lambda: journal.dropped == 4, timeout=5)
    for n in range(4):
        journal.record(decision(file_id=str(n + 4)))
    assert wait_until(lambda: len(publisher.waiting) == 1, timeout=5)
    publisher.fail_all(MessageNacked("the broker refused the message (nack)"))  # sent, then nacked
    assert journal.dropped == 8
    assert _dropped() - before == 8
    assert journal.flush(timeout=1) == 8


def test_a_record_past_the_buffers_bound_is_dropped_and_counted_never_waited_for(
    journals: list[BrokerJournal],
) -> None:
    publisher = FakePublisher(confirm_at_once=True)
    journal = _journal(journals, publisher, Batching(max_records=100, max_wait=NEVER, max_buffered=2))
    before = _dropped()
    for n in range(3):
        journal.record(decision(file_id=str(n)))
    assert journal.dropped == 1
    assert _dropped() - before == 1
    assert journal.close(timeout=5) == 1
    assert _records(publisher) == [["0", "1"]]


def test_the_batch_names_the_process_and_host_once_and_a_record_that_names_its_own_keeps_it(
    journals: list[BrokerJournal],
) -> None:
    publisher, journal = _confirmed_on_close(journals)
    journal.record(decision(file_id="1"))
    journal.record(decision(file_id="2", process="invoice-pipeline-cli", host="laptop"))
    journal.flush(timeout=5)
    read, bad = decisions_from_bytes(publisher.messages[0].body)
    assert bad == 0
    assert [(d.process, d.host) for d in read] == [("mover", "h1"), ("invoice-pipeline-cli", "laptop")]
