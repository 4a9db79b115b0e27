"""The journal writer's logic on a real SQLite journal: batches stored once, bad records counted, pruning paced."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from prometheus_client import REGISTRY

from consumers.journal.writer import PRUNE_CHUNK, JournalWriter
from shared.journal.record import batch_to_bytes
from shared.journal.sqlite_store import SqliteJournalStore
from shared.journal.store import JournalUnavailable
from tests.support.clock import FakeClock
from tests.support.journal_support import T0, decision


@pytest.fixture
def store(tmp_path: Path):
    store = SqliteJournalStore(tmp_path / "journal.sqlite3")
    yield store
    store.close()


def _sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def test_a_batch_is_written_once_and_counted_once(store: SqliteJournalStore) -> None:
    writer = JournalWriter(store, retention=timedelta(days=30))
    batch = [decision(minutes=m, file_id=str(m)).to_bytes() for m in range(5)]
    before = _sample("journal_records_written_total")
    writer.write(batch)
    writer.write(batch)  # redelivered after a crash before the ack
    assert _sample("journal_records_written_total") - before == 5
    assert [m.file_id for m in store.find("3")] == ["3"]


def test_a_body_that_is_not_a_record_is_dropped_and_counted_and_the_rest_is_written(store: SqliteJournalStore) -> None:
    writer = JournalWriter(store, retention=timedelta(days=30))
    before = _sample("journal_records_dropped_total", reason="undecodable")
    writer.write([b"not json", b'{"stage": "x"}', decision().to_bytes()])
    assert _sample("journal_records_dropped_total", reason="undecodable") - before == 2
    assert len(store.timeline(file_id="4711")) == 1


def test_single_records_and_batches_are_both_written_and_a_batch_stamps_its_process_on_its_records(
    store: SqliteJournalStore,
) -> None:
    # A single record is what stages published before batching: one left in the queue after an upgrade is written.
    writer = JournalWriter(store, retention=timedelta(days=30), batch_size=2)  # 5 records: three transactions
    single = decision(minutes=0, file_id="0", process="classifier", host="old").to_bytes()
    batch = batch_to_bytes([decision(minutes=m, file_id=str(m)) for m in range(1, 5)], process="mover", host="h1")
    before = _sample("journal_records_written_total")
    writer.write([single, batch])
    writer.write([batch])  # redelivered: nothing new
    assert _sample("journal_records_written_total") - before == 5
    assert [(d.process, d.host) for d in store.timeline(file_id="0")] == [("classifier", "old")]
    assert [(d.process, d.host) for d in store.timeline(file_id="3")] == [("mover", "h1")]


def test_a_bad_record_in_a_batch_costs_only_itself(store: SqliteJournalStore) -> None:
    writer = JournalWriter(store, retention=timedelta(days=30))
    good = batch_to_bytes([decision(file_id="1"), decision(file_id="2")], process="mover", host="h1")
    spoiled = good.replace(b'"records": [', b'"records": [{"stage": "x"}, 7, ', 1)
    before = _sample("journal_records_dropped_total", reason="undecodable")
    writer.write([spoiled, b'{"records": "none"}'])
    assert _sample("journal_records_dropped_total", reason="undecodable") - before == 3
    assert len(store.timeline(file_id="1")) == len(store.timeline(file_id="2")) == 1


def test_a_store_that_does_not_answer_raises_so_the_batch_stays_unacknowledged(tmp_path: Path) -> None:
    store = SqliteJournalStore(tmp_path / "journal.sqlite3")
    writer = JournalWriter(store, retention=timedelta(days=30))
    store.close()  # every call now fails like a database that went away
    with pytest.raises(JournalUnavailable):
        writer.write([decision().to_bytes()])
    assert writer.store_answers is False


def test_pruning_runs_at_start_then_once_per_interval_and_keeps_going_while_chunks_are_full(
    store: SqliteJournalStore,
) -> None:
    store.insert([decision(minutes=m, file_id=str(m)) for m in range(3)])
    clock = FakeClock((T0 + timedelta(days=31)).timestamp())
    writer = JournalWriter(store, retention=timedelta(days=30), prune_interval=600, clock=clock)
    writer.between_batches()
    assert store.find("1") == []
    store.insert([decision(minutes=m, file_id=f"late{m}", title=f"late{m}.pdf") for m in range(3)])
    clock.now += 599
    writer.between_batches()
    assert len(store.find("late")) == 3  # not due yet
    clock.now += 1
    writer.between_batches()
    assert store.find("late") == []
    assert PRUNE_CHUNK >= 1000
