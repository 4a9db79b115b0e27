"""The journal end to end: records published to the real broker, the writer as a real process, SQLite and
PostgreSQL, and `invoice-pipeline trace` reading what it wrote; the writer killed mid-stream loses and duplicates
nothing; a journal publish that fails never reaches the caller and is counted."""

from __future__ import annotations

import json
import threading
import time
import urllib.parse
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pika
import pytest
from prometheus_client import REGISTRY

from ops.cli import main
from shared.broker.connection import connection_parameters
from shared.broker.publisher import Publisher
from shared.journal.broker import BrokerJournal
from shared.journal.record import Decision
from tests.support.cli_env import use_broker
from tests.support.journal_support import new_schema, postgres_url, sqlite_path
from tests.support.journal_writer import JournalDb, Writer
from tests.support.mail_fixtures import wait_until
from tests.support.real_broker import BrokerKit, connected_publisher
from tests.support.tcp_proxy import TcpProxy


@pytest.fixture(params=["sqlite", "postgresql"])
def journal_db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[JournalDb]:
    if request.param == "sqlite":
        yield JournalDb(f"sqlite:///{sqlite_path(tmp_path)}", "invoice_journal")
        return
    db = JournalDb(postgres_url(), new_schema())
    yield db
    store = db.open()
    store.drop()  # type: ignore[attr-defined]  # the PostgreSQL adapter's test clean-up
    store.close()


@pytest.fixture
def publisher(broker: BrokerKit) -> Iterator[Publisher]:
    yield from connected_publisher(broker, "journal-test")


def _stored(db: JournalDb) -> int:
    store = db.open()
    try:
        return sum(r.count for r in store.rollups(datetime(2000, 1, 1, tzinfo=UTC)))
    finally:
        store.close()


def _story(now: datetime) -> list[Decision]:
    """Four files' decisions: one arrives, one is skipped, one is dead-lettered, one waits for the write quota."""

    def at(minutes: float) -> datetime:
        return now - timedelta(minutes=30 - minutes)

    made = []
    for file_id, title in (("101", "Invoice-0815.pdf"), ("102", "holiday.jpg"), ("103", "Invoice-0816.pdf")):
        made.append(
            Decision.make("ingress", "accepted", at=at(0), file_id=file_id, event_id=f"ev{file_id}", title=title)
        )
    made.append(
        Decision.make("ingress", "accepted", at=at(0), file_id="104", event_id="ev104", title="Invoice-0817.pdf")
    )
    made += [
        Decision.make("classifier", "accepted", at=at(1), file_id="101", invoice_id="101:1", client="Acme"),
        Decision.make("mover", "received", at=at(2), file_id="101", invoice_id="101:1", folder="Acme/Incoming"),
        Decision.make(
            "notifier.email", "emailed", at=at(3), file_id="101", invoice_id="101:1", manager="anna@acme.example"
        ),
        Decision.make(
            "classifier", "ignored", at=at(1), file_id="102", reason="not_an_invoice", rule="title has 'invoice'"
        ),
        Decision.make("classifier", "accepted", at=at(1), file_id="103", invoice_id="103:1", client="Acme"),
        Decision.make(
            "mover", "dead_lettered", at=at(2), file_id="103", invoice_id="103:1", reason="docspace_not_found"
        ),
        Decision.make("classifier", "accepted", at=at(1), file_id="104", invoice_id="104:1", client="Acme"),
        Decision.make(
            "mover",
            "deferred",
            at=at(2),
            file_id="104",
            invoice_id="104:1",
            reason="docspace_write_quota_spent",
            parked_until=now + timedelta(hours=3),
        ),
    ]
    return made


def _trace(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    code = main(["trace", *argv])
    return code, capsys.readouterr().out


def test_published_records_reach_the_store_through_the_writer_and_trace_gives_each_file_its_verdict(
    broker: BrokerKit,
    publisher: Publisher,
    journal_db: JournalDb,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    writer = Writer(broker, journal_db, tmp_path).start()
    try:
        journal = BrokerJournal(publisher, broker.topology.journal_exchange, process="test")
        story = _story(datetime.now(UTC))
        for decision in story:
            journal.record(decision)
        for decision in story[:3]:
            journal.record(decision)  # a stage that made the same decisions again after a redelivery
        assert wait_until(lambda: _stored(journal_db) == len(story), timeout=30), writer.log.read_text()
        assert wait_until(lambda: writer.metric("journal_records_written_total") == len(story), timeout=10)
        assert writer.metric("journal_writer_up") == 1
        assert writer.metric("journal_lag_seconds") == 0

        use_broker(monkeypatch, broker)
        monkeypatch.setenv("JOURNAL_URL", journal_db.url)
        monkeypatch.setenv("JOURNAL_SCHEMA", journal_db.schema)
        code, out = _trace(capsys, "101")
        assert code == 0
        assert out.index("ingress") < out.index("classifier") < out.index("mover") < out.index("notifier.email")
        assert "arrived: in Acme/Incoming, e-mailed to anna@acme.example at" in out
        code, out = _trace(capsys, "holiday")
        assert "skipped: not_an_invoice (rule: title has 'invoice')" in out
        code, out = _trace(capsys, "103:1", "--json")
        verdict = json.loads(out)["verdict"]
        assert (verdict["state"], verdict["stage"], verdict["reason"]) == (
            "dead_lettered",
            "mover",
            "docspace_not_found",
        )
        assert verdict["command"] == "invoice-pipeline dlq replay --stage mover --reason docspace_not_found"
        code, out = _trace(capsys, "ev104", "--json")
        found = json.loads(out)
        assert found["verdict"]["state"] == "waiting" and "until" in found["verdict"]["text"]
        assert [d["stage"] for d in found["timeline"]] == ["ingress", "classifier", "mover"]
        assert found["timeline"][0]["process"] == "test"
        code, out = _trace(capsys, "INVOICE-08")
        assert code == 0 and "3 files match" in out and "Invoice-0816.pdf" in out
        code, out = _trace(capsys, "no-such-file", "--json")
        assert code == 1
        assert json.loads(out)["verdict"]["text"] == "not found in the journal and the dead-letter queues"
    finally:
        assert writer.stop() == 0, writer.log.read_text()


def test_the_writer_killed_mid_stream_and_restarted_loses_and_duplicates_nothing(
    broker: BrokerKit, publisher: Publisher, journal_db: JournalDb, tmp_path: Path
) -> None:
    total = 3000
    journal = BrokerJournal(publisher, broker.topology.journal_exchange, process="test")
    start = datetime.now(UTC)
    published = threading.Event()

    def publish() -> None:
        # Records keep coming while the writer dies and comes back, as they would from running stages.
        for n in range(total):
            journal.record(
                Decision.make(
                    "classifier",
                    "accepted",
                    at=start + timedelta(milliseconds=n),
                    file_id=f"f{n % 300}",
                    event_id=f"e{n}",
                )
            )
            if n % 100 == 99:
                time.sleep(0.05)
        published.set()

    writer = Writer(broker, journal_db, tmp_path, JOURNAL_BATCH_SIZE="200", JOURNAL_BATCH_WAIT="0.05").start()
    thread = threading.Thread(target=publish)
    thread.start()
    try:
        assert wait_until(lambda: _stored(journal_db) >= 300, timeout=30), writer.log.read_text()
        writer.kill()  # SIGKILL: whatever batch it held, written or not, is unacknowledged
        assert not published.is_set(), "the records were all published before the writer died: nothing was proven"
        killed_at = _stored(journal_db)
        assert killed_at < total
        writer = Writer(broker, journal_db, tmp_path, JOURNAL_BATCH_SIZE="200", JOURNAL_BATCH_WAIT="0.05").start()
        thread.join(60)
        assert wait_until(lambda: _stored(journal_db) >= total, timeout=60), (
            _stored(journal_db),
            killed_at,
            broker.depth(broker.topology.journal_queue),
            writer.log.read_text(),
        )
        time.sleep(1)  # anything redelivered late would show here as more than ``total``
        assert _stored(journal_db) == total
        store = journal_db.open()
        try:
            timelines = [store.timeline(file_id=f"f{n}") for n in range(300)]
        finally:
            store.close()
        assert sorted(len(t) for t in timelines) == [10] * 300
        assert len({d.decision_id for t in timelines for d in t}) == total
        assert broker.depth(broker.topology.journal_queue) == 0
    finally:
        thread.join(60)
        writer.stop()


def test_a_journal_publish_the_broker_cannot_take_never_raises_and_is_counted(broker: BrokerKit) -> None:
    proxy = TcpProxy.in_front_of(broker.url)
    publisher = Publisher(
        connection_parameters(proxy.proxied(broker.url), name="journal-test"), topology=broker.topology
    ).start()
    try:
        assert publisher.wait_connected(10)
        journal = BrokerJournal(publisher, broker.topology.journal_exchange, process="test")

        def dropped() -> float:
            return REGISTRY.get_sample_value("journal_records_dropped_total", {"reason": "publish_failed"}) or 0.0

        def published() -> float:
            return REGISTRY.get_sample_value("journal_records_published_total", {"stage": "mover"}) or 0.0

        before, sent = dropped(), published()
        journal.record(Decision.make("mover", "received", file_id="1"))
        assert wait_until(lambda: published() == sent + 1, timeout=10)
        proxy.down()  # the broker is gone
        started = time.monotonic()
        for n in range(5):
            journal.record(Decision.make("mover", "received", file_id=str(n + 2)))  # must not raise
        assert time.monotonic() - started < 1.0, "recording waited for the broker"
        assert wait_until(lambda: dropped() == before + 5, timeout=15)
        assert broker.depth(broker.topology.journal_queue) == 1
    finally:
        publisher.stop()
        proxy.close()


def test_the_journal_database_down_for_a_while_delays_records_and_loses_none(
    broker: BrokerKit, publisher: Publisher, tmp_path: Path
) -> None:
    url = postgres_url()
    proxy = TcpProxy.in_front_of(url.replace("postgresql://", "amqp://"))  # any scheme: only host and port count
    target = urllib.parse.urlsplit(url)
    db = JournalDb(url.replace(f"{target.hostname}:{target.port}", f"127.0.0.1:{proxy.port}", 1), new_schema())
    writer = Writer(broker, db, tmp_path, JOURNAL_BATCH_WAIT="0.05").start()
    journal = BrokerJournal(publisher, broker.topology.journal_exchange, process="test")
    try:
        journal.record(Decision.make("ingress", "accepted", file_id="1", event_id="before"))
        assert wait_until(lambda: _stored(db) == 1, timeout=20)
        proxy.down()  # the database goes away: connections cut, new ones refused
        for n in range(50):
            journal.record(Decision.make("ingress", "accepted", file_id=str(n), event_id=f"during{n}"))
        assert wait_until(lambda: writer.metric("journal_writer_up") == 0, timeout=20), writer.log.read_text()
        time.sleep(2)
        assert writer.metric("journal_lag_seconds") >= 1  # the records it holds are getting older
        proxy.up()
        assert wait_until(lambda: _stored(db) == 51, timeout=40), writer.log.read_text()
        assert wait_until(lambda: writer.metric("journal_writer_up") == 1, timeout=10)
        assert writer.metric("journal_lag_seconds") == 0
        assert '"batch_not_written"' in writer.log.read_text()
    finally:
        writer.stop()
        proxy.close()
        store = JournalDb(url, db.schema).open()
        store.drop()  # type: ignore[attr-defined]  # the PostgreSQL adapter's test clean-up
        store.close()


def test_trace_finds_a_file_the_journal_does_not_know_in_the_dead_letter_queue(
    broker: BrokerKit, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    connection = broker.connect()
    connection.channel().basic_publish(
        broker.topology.dead_letter_exchange,
        broker.topology.stage("mover").work,
        b'{"file_id": "5150"}',
        pika.BasicProperties(
            message_id="5150:1",
            headers={"x-stage": "mover", "x-reason": "docspace_not_found", "x-file-id": "5150"},
        ),
    )
    connection.close()
    use_broker(monkeypatch, broker)
    monkeypatch.setenv("JOURNAL_URL", f"sqlite:///{sqlite_path(tmp_path)}")
    code, out = _trace(capsys, "5150")
    assert code == 0
    assert "not in the journal; in mover.dlq since" in out
    assert "invoice-pipeline dlq replay --stage mover --reason docspace_not_found" in out
    assert broker.depth(broker.topology.stage("mover").dead_letters) == 1  # looked at, left where it was
