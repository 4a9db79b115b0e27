"""The journal store's contract, run against both adapters: a real SQLite file and the real PostgreSQL."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterator
from contextlib import closing
from datetime import timedelta
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

from shared.journal.postgres_store import PostgresJournalStore
from shared.journal.sqlite_store import SqliteJournalStore
from shared.journal.store import JournalStore, JournalUnavailable
from tests.support.journal_support import T0, decision, postgres_store, postgres_url, sqlite_path


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[JournalStore]:
    if request.param == "sqlite":
        sqlite = SqliteJournalStore(sqlite_path(tmp_path))
        yield sqlite
        sqlite.close()
    else:
        yield from postgres_store(postgres_url())


def test_a_batch_is_stored_once_however_often_it_is_inserted(store: JournalStore) -> None:
    batch = [
        decision("ingress", "accepted", minutes=0, event_id="e1", title="Invoice-0815.pdf"),
        decision("classifier", "accepted", minutes=1, event_id="e1", invoice_id="4711:1", client="Acme"),
        decision("mover", "received", minutes=2, invoice_id="4711:1", folder="Acme/Incoming"),
    ]
    assert store.insert(batch) == 3
    assert store.insert(batch) == 0  # a redelivered batch after a crash between commit and ack
    assert store.insert([batch[1], batch[1], decision("notifier.email", "emailed", minutes=3)]) == 1
    timeline = store.timeline(file_id="4711")
    assert [(d.stage, d.outcome) for d in timeline] == [
        ("ingress", "accepted"),
        ("classifier", "accepted"),
        ("mover", "received"),
        ("notifier.email", "emailed"),
    ]
    assert timeline[2].folder == "Acme/Incoming"
    assert timeline[0].at == T0


def test_find_by_file_invoice_and_event_id(store: JournalStore) -> None:
    store.insert(
        [
            decision("ingress", "accepted", event_id="ev-1", title="Invoice-0815.pdf"),
            decision("classifier", "accepted", minutes=1, event_id="ev-1", invoice_id="4711:2"),
            decision("ingress", "accepted", minutes=5, file_id="9000", event_id="ev-2", title="photo.jpg"),
        ]
    )
    (by_file,) = store.find("4711")
    assert (by_file.file_id, by_file.title, by_file.decisions, by_file.matched_by) == (
        "4711",
        "Invoice-0815.pdf",
        2,
        "file_id",
    )
    assert by_file.first_at == T0 and by_file.last_at == T0 + timedelta(minutes=1)
    assert [m.file_id for m in store.find("4711:2")] == ["4711"]
    assert [(m.file_id, m.matched_by) for m in store.find("ev-2")] == [("9000", "event_id")]
    assert store.find("nothing-like-it") == []
    assert store.find("   ") == []


def test_find_by_title_fragment_ignores_case_and_takes_wildcards_literally(store: JournalStore) -> None:
    store.insert(
        [
            decision("ingress", "accepted", file_id="1", title="Invoice-0815.pdf"),
            decision("ingress", "accepted", minutes=1, file_id="2", title="invoice-0816 (copy).pdf"),
            decision("ingress", "accepted", minutes=2, file_id="3", title="Holiday 100%.jpg"),
            decision("ingress", "accepted", minutes=3, file_id="4", title="Holiday 1000.jpg"),
        ]
    )
    assert [m.file_id for m in store.find("INVOICE-08")] == ["2", "1"]  # newest first
    assert [m.matched_by for m in store.find("voice")] == ["title", "title"]
    assert [m.file_id for m in store.find("100%")] == ["3"]
    assert [m.file_id for m in store.find("y 1")] == ["4", "3"]
    assert [m.file_id for m in store.find("%")] == ["3"]  # shorter than a trigram: still found
    assert [m.file_id for m in store.find("_")] == []


def test_a_later_title_replaces_the_file_s_title(store: JournalStore) -> None:
    store.insert([decision("ingress", "accepted", title="scan001.pdf")])
    store.insert([decision("classifier", "ignored", minutes=1, reason="not_an_invoice", title="Invoice-1.pdf")])
    store.insert([decision("mover", "received", minutes=2)])  # no title: keeps the last one
    assert [m.title for m in store.find("4711")] == ["Invoice-1.pdf"]
    assert store.find("scan001") == []
    assert [m.file_id for m in store.find("invoice-1")] == ["4711"]


def test_a_decision_without_a_file_is_found_by_its_event(store: JournalStore) -> None:
    store.insert([decision("ingress", "replay_refused", file_id=None, event_id="ev-9", reason="seen_before")])
    (match,) = store.find("ev-9")
    assert (match.file_id, match.event_id, match.decisions) == (None, "ev-9", 1)
    assert [d.outcome for d in store.timeline(event_id="ev-9")] == ["replay_refused"]


def test_prune_removes_only_what_is_older_than_the_cutoff(store: JournalStore) -> None:
    store.insert([decision("ingress", "accepted", minutes=m, file_id=str(m), title=f"f{m}.pdf") for m in range(10)])
    assert store.prune(T0 + timedelta(minutes=4), batch=3) == 3
    assert store.prune(T0 + timedelta(minutes=4), batch=3) == 1
    assert store.prune(T0 + timedelta(minutes=4), batch=3) == 0
    assert store.find("0") == [] and store.find("f3.pdf") == []
    assert [m.file_id for m in store.find("4")] == ["4"]
    assert [r.minute for r in store.rollups(T0)] == [T0 + timedelta(minutes=m) for m in range(4, 10)]


def test_rollups_count_each_decision_once_per_minute(store: JournalStore) -> None:
    batch = [
        decision("classifier", "ignored", minutes=0.1, file_id="1", reason="not_an_invoice"),
        decision("classifier", "ignored", minutes=0.5, file_id="2", reason="not_an_invoice"),
        decision("classifier", "accepted", minutes=0.7, file_id="3"),
        decision("classifier", "ignored", minutes=1.2, file_id="4", reason="not_an_invoice"),
    ]
    store.insert(batch)
    store.insert(batch)
    rollups = [(r.minute - T0, r.stage, r.outcome, r.reason, r.count) for r in store.rollups(T0)]
    assert rollups == [
        (timedelta(0), "classifier", "accepted", "", 1),
        (timedelta(0), "classifier", "ignored", "not_an_invoice", 2),
        (timedelta(minutes=1), "classifier", "ignored", "not_an_invoice", 1),
    ]
    assert [r.count for r in store.rollups(T0, T0 + timedelta(minutes=1))] == [1, 2]


def test_files_seen_counts_each_file_once_in_the_window_of_its_first_decision(store: JournalStore) -> None:
    store.insert(
        [
            # One upload, two deliveries (file.created, file.uploaded): one file.
            decision("classifier", "accepted", minutes=0, file_id="1", event_id="created-1"),
            decision("classifier", "ignored", minutes=0.2, file_id="1", event_id="uploaded-1", reason="duplicate"),
            decision("classifier", "ignored", minutes=1, file_id="2", event_id="created-2", reason="not_an_invoice"),
            decision("classifier", "ignored", minutes=1.1, file_id="2", event_id="uploaded-2", reason="not_an_invoice"),
            # First seen before the window: its later decisions do not make it a file seen in the window.
            decision("mover", "received", minutes=70, file_id="1"),
            decision("classifier", "accepted", minutes=80, file_id="3"),
        ]
    )
    assert store.files_seen(T0, T0 + timedelta(hours=1)) == 2
    assert store.files_seen(T0 + timedelta(hours=1), T0 + timedelta(hours=2)) == 1


def test_the_decisions_behind_a_rollup_are_listed_newest_first(store: JournalStore) -> None:
    store.insert(
        [
            decision("classifier", "ignored", minutes=0, file_id="1", reason="not_an_invoice"),
            decision("classifier", "ignored", minutes=1, file_id="2", reason="not_an_invoice"),
            decision("classifier", "ignored", minutes=2, file_id="3", reason="not_watched"),
            decision("classifier", "accepted", minutes=3, file_id="4"),
            decision("classifier", "ignored", minutes=90, file_id="5", reason="not_an_invoice"),
        ]
    )
    hour = (T0, T0 + timedelta(hours=1))
    listed = store.decisions(*hour, stage="classifier", outcome="ignored", reason="not_an_invoice")
    assert [d.file_id for d in listed] == ["2", "1"]
    assert [d.file_id for d in store.decisions(*hour, stage="classifier", outcome="ignored")] == ["3", "2", "1"]
    assert [d.file_id for d in store.decisions(*hour, stage="classifier", outcome="accepted", reason="")] == ["4"]
    assert len(store.decisions(*hour, stage="classifier", outcome="ignored", limit=1)) == 1
    assert store.totals(*hour) == {
        ("classifier", "ignored", "not_an_invoice"): 2,
        ("classifier", "ignored", "not_watched"): 1,
        ("classifier", "accepted", ""): 1,
    }


def test_an_unreachable_postgresql_is_journal_unavailable_not_a_crash() -> None:
    with pytest.raises(JournalUnavailable):
        PostgresJournalStore("postgresql://postgres@127.0.0.1:1/test", connect_timeout=2)


def test_an_unusable_sqlite_file_is_journal_unavailable(tmp_path: Path) -> None:
    (tmp_path / "journal.sqlite3").mkdir()  # a directory where the file should be
    with pytest.raises(JournalUnavailable):
        SqliteJournalStore(tmp_path / "journal.sqlite3")


def test_decisions_are_counted_and_listed_per_client_within_the_window(store: JournalStore) -> None:
    store.insert(
        [
            decision("classifier", "accepted", minutes=1, file_id="1", client="Acme"),
            decision("classifier", "accepted", minutes=2, file_id="2", client="Acme"),
            decision("classifier", "accepted", minutes=3, file_id="3", client="Büro <Nord>"),
            decision("classifier", "accepted", minutes=4, file_id="4"),  # no client named
            decision("classifier", "ignored", minutes=5, file_id="5", client="Acme", reason="not_an_invoice"),
            decision("mover", "received", minutes=6, file_id="1", client="Acme"),
            decision("classifier", "accepted", minutes=70, file_id="6", client="Acme"),  # after the hour
            decision("classifier", "accepted", minutes=71, file_id="7", client="Zeta"),  # only after the hour
        ]
    )
    hour = (T0, T0 + timedelta(hours=1))
    assert store.by_client(*hour, stage="classifier", outcome="accepted") == {"Acme": 2, "Büro <Nord>": 1, "": 1}
    assert store.by_client(*hour, stage="mover", outcome="received") == {"Acme": 1}
    listed = store.client_decisions(*hour, stage="classifier", outcome="accepted", client="Acme")
    assert [d.file_id for d in listed] == ["2", "1"]
    assert [d.file_id for d in store.client_decisions(*hour, stage="classifier", outcome="accepted", client="")] == [
        "4"
    ]
    assert len(store.client_decisions(*hour, stage="classifier", outcome="accepted", client="Acme", limit=1)) == 1


def _plans(store: SqliteJournalStore, read: Callable[[], object]) -> list[str]:
    """What SQLite's planner does for every statement ``read`` runs on the store's connection."""
    statements: list[str] = []
    store._db.set_trace_callback(statements.append)
    try:
        read()
    finally:
        store._db.set_trace_callback(None)
    return [" ".join(row[3] for row in store._db.execute(f"EXPLAIN QUERY PLAN {s}")) for s in statements]


def test_sqlite_reads_a_client_s_decisions_by_the_client_index_and_a_number_s_by_time(tmp_path: Path) -> None:
    store = SqliteJournalStore(sqlite_path(tmp_path))
    try:
        store.insert([decision("classifier", "accepted", minutes=1, file_id="1", client="Acme")])
        hour = (T0, T0 + timedelta(hours=1))
        (listed,) = _plans(store, lambda: store.client_decisions(*hour, stage="mover", outcome="x", client="Acme"))
        assert "USING INDEX decisions_client (stage=? AND outcome=? AND <expr>=? AND at>? AND at<?)" in listed
        (counted,) = _plans(store, lambda: store.by_client(*hour, stage="classifier", outcome="accepted"))
        assert "decisions_client" in counted and "SCAN decisions" not in counted
        # Without a client the newest of the window come first by time, not the stage's whole retention sorted.
        (behind,) = _plans(store, lambda: store.decisions(*hour, stage="classifier", outcome="accepted"))
        assert "USING INDEX decisions_at" in behind and "TEMP B-TREE" not in behind
    finally:
        store.close()


def test_a_journal_made_before_the_client_index_gains_it_when_opened(tmp_path: Path) -> None:
    SqliteJournalStore(sqlite_path(tmp_path)).close()
    with closing(sqlite3.connect(sqlite_path(tmp_path))) as db:
        db.execute("DROP INDEX decisions_client")
    SqliteJournalStore(sqlite_path(tmp_path)).close()
    with closing(sqlite3.connect(sqlite_path(tmp_path))) as db:
        assert db.execute("SELECT 1 FROM sqlite_master WHERE name = 'decisions_client'").fetchone() == (1,)
    url = postgres_url()
    for store in postgres_store(url):
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP INDEX {}.decisions_client").format(sql.Identifier(store._schema_name)))
            PostgresJournalStore(url, schema=store._schema_name).close()
            found = conn.execute(
                "SELECT 1 FROM pg_indexes WHERE schemaname = %s AND indexname = 'decisions_client'",
                (store._schema_name,),
            ).fetchone()
        assert found == (1,)
