"""The journal writer's logic on a real SQLite journal: batches stored once, bad records counted, pruning paced."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from prometheus_client import REGISTRY

from consumers.journal.writer import PRUNE_CHUNK, JournalWriter
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
