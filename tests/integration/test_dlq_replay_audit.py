"""``dlq replay`` by filter and ``dlq purge`` on the real broker, audited in the decision journal: the filters move
exactly the selected messages, a dry run moves none, and the journal writer stores who did what to which message."""

from __future__ import annotations

import io
import json
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pika
import pytest

from ops.cli import main
from shared.broker.topology import MOVER, NOTIFIER_EMAIL
from shared.journal.record import decisions_from_bytes
from tests.support.cli_env import use_broker
from tests.support.journal_support import sqlite_path
from tests.support.journal_writer import JournalDb, Writer
from tests.support.mail_fixtures import wait_until
from tests.support.real_broker import BrokerKit

OPERATION = re.compile(r"\bop-\d{8}T\d{4}-[0-9a-f]{8}\b")

# name: (stage, reason, minutes ago, client); the filter below selects exactly A and F.
LETTERS = {
    "A": (MOVER, "docspace_timeout", 60, "Acme"),
    "B": (MOVER, "docspace_timeout", 30, "Globex"),  # another client
    "C": (MOVER, "docspace_timeout", 180, "Acme"),  # before --since
    "D": (MOVER, "docspace_not_found", 60, "Acme"),  # another reason
    "E": (MOVER, "docspace_timeout", 10, "Acme"),  # after --until
    "F": (MOVER, "docspace_timeout", 45, "acme"),  # the client compared without case
    "G": (NOTIFIER_EMAIL, "docspace_timeout", 60, "Acme"),  # another stage
}
FILTER = ["--stage", MOVER, "--reason", "docspace_timeout", "--since", "2h", "--until", "20m", "--client", "ACME"]


def dead_letter(broker: BrokerKit, name: str) -> None:
    stage, reason, minutes, client = LETTERS[name]
    queues = broker.topology.stage(stage)
    # Dated when published, not when the module was collected: the suite may reach this test many minutes later.
    failed = (datetime.now(UTC) - timedelta(minutes=minutes)).isoformat()
    headers = {
        "x-stage": stage,
        "x-reason": reason,
        "x-error": f"{reason} on file {name}",
        "x-attempts": 4,
        "x-first-failure": failed,
        "x-last-failure": failed,
        "x-file-id": f"file-{name}",
        "x-invoice-id": f"file-{name}:1",
        "x-event-id": f"event-{name}",
        "x-original-routing-key": "acme",
    }
    body = json.dumps({"invoice_id": f"file-{name}:1", "client": client, "title": f"Invoice-{name}.pdf"}).encode()
    connection = broker.connect()
    try:
        connection.channel().basic_publish(
            "",
            queues.dead_letters,
            body,
            pika.BasicProperties(message_id=f"file-{name}:1", delivery_mode=2, headers=headers),
        )
    finally:
        connection.close()


def queued_ids(broker: BrokerKit, queue: str) -> list[str]:
    """The message ids in ``queue``, oldest first (taken and put back unacknowledged: the order holds)."""
    connection = broker.connect()
    try:
        channel = connection.channel()
        ids = []
        while True:
            method, properties, _body = channel.basic_get(queue, auto_ack=False)
            if method is None:
                break
            ids.append(properties.message_id)
        return ids
    finally:
        connection.close()  # the unacknowledged messages go back, in order


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out + captured.err


@pytest.fixture
def letters(broker: BrokerKit, monkeypatch: pytest.MonkeyPatch) -> BrokerKit:
    use_broker(monkeypatch, broker)
    for name in LETTERS:
        dead_letter(broker, name)
    mover, email = broker.topology.stage(MOVER), broker.topology.stage(NOTIFIER_EMAIL)
    assert wait_until(lambda: broker.depth(mover.dead_letters) == 6 and broker.depth(email.dead_letters) == 1, 10)
    return broker


def test_a_dry_run_counts_and_samples_the_selected_dead_letters_and_moves_and_journals_nothing(
    letters: BrokerKit, capsys: pytest.CaptureFixture[str]
) -> None:
    mover = letters.topology.stage(MOVER)
    before = queued_ids(letters, mover.dead_letters)

    code, out = run(capsys, "dlq", "replay", *FILTER, "--dry-run")

    assert code == 0, out
    assert "Would replay 2 dead letter(s)" in out and "reason=docspace_timeout" in out and "client=ACME" in out
    assert "file-A" in out and "file-F" in out
    assert not {"file-B", "file-C", "file-D", "file-E", "file-G"} & set(re.findall(r"file-[A-G]\b", out))
    assert queued_ids(letters, mover.dead_letters) == before  # all still there, in their order
    assert letters.depth(mover.work) == 0
    assert letters.depth(letters.topology.journal_queue) == 0  # a dry run is no action: nothing to audit


def test_replay_by_filter_moves_exactly_the_selected_messages_and_the_writer_stores_who_did_what(
    letters: BrokerKit, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    mover, email = letters.topology.stage(MOVER), letters.topology.stage(NOTIFIER_EMAIL)
    db = JournalDb(f"sqlite:///{sqlite_path(tmp_path)}", "invoice_journal")
    monkeypatch.setenv("JOURNAL_URL", db.url)

    code, out = run(capsys, "dlq", "--actor", "anna", "--rate", "50", "replay", *FILTER)

    assert code == 0, out
    assert "Replayed 2 dead letter(s)" in out
    operation = OPERATION.search(out)
    assert operation is not None, out
    assert sorted(queued_ids(letters, mover.work)) == ["file-A:1", "file-F:1"]
    assert queued_ids(letters, mover.dead_letters) == ["file-B:1", "file-C:1", "file-D:1", "file-E:1"]
    assert queued_ids(letters, email.dead_letters) == ["file-G:1"]

    writer = Writer(letters, db, tmp_path).start()
    try:
        assert wait_until(lambda: letters.depth(letters.topology.journal_queue) == 0, 20), writer.log.read_text()
        store = db.open()
        try:
            assert wait_until(lambda: len(store.timeline(event_id=operation.group())) == 1, 20)
            [record] = store.timeline(event_id=operation.group())
            replayed = {name: store.timeline(file_id=f"file-{name}") for name in "ABCDEFG"}
        finally:
            store.close()
    finally:
        assert writer.stop() == 0, writer.log.read_text()

    # The operation: who, when, what it selected, how many.
    assert (record.stage, record.outcome, record.actor, record.count) == ("operator", "replay", "anna", 2)
    assert record.operation == operation.group() and abs(record.at - datetime.now(UTC)) < timedelta(minutes=2)
    assert record.scope is not None
    for part in (f"stage={MOVER}", "reason=docspace_timeout", "client=ACME", "since=", "until="):
        assert part in record.scope
    # One record per message replayed, with its ids, and none for the others.
    for name in "AF":
        [message] = replayed[name]
        assert (message.stage, message.outcome, message.reason) == ("operator", "replayed", "docspace_timeout")
        assert (message.file_id, message.invoice_id, message.event_id) == (
            f"file-{name}",
            f"file-{name}:1",
            f"event-{name}",
        )
        assert (message.actor, message.operation, message.scope) == ("anna", operation.group(), f"{MOVER}.dlq")
        assert message.process == "invoice-pipeline-cli"
    assert all(replayed[name] == [] for name in "BCDEG")

    code, out = run(capsys, "trace", operation.group())
    assert code == 0 and "anna replayed 2 dead letter(s) at" in out, out
    code, out = run(capsys, "trace", "file-A", "--json", "--no-dlq")
    verdict = json.loads(out)["verdict"]
    assert verdict["state"] == "in_progress" and f"replayed from {MOVER}.dlq by anna" in verdict["text"]


def test_purge_writes_one_audit_record_with_who_which_queue_and_how_many(
    letters: BrokerKit, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("USER", "bob")  # who: the OS user when no --actor is given
    monkeypatch.setenv("LOGNAME", "bob")
    journal = letters.bind_probe(letters.topology.journal_exchange)

    code, out = run(capsys, "dlq", "purge", "--stage", MOVER, "--yes")

    assert code == 0 and "Purged 6 dead letter(s)" in out, out
    assert letters.depth(letters.topology.stage(MOVER).dead_letters) == 0
    assert letters.depth(letters.topology.stage(NOTIFIER_EMAIL).dead_letters) == 1
    records = [record for body in _drain(letters, journal) for record in decisions_from_bytes(body)[0]]
    assert len(records) == 1
    [record] = records
    assert (record.stage, record.outcome, record.actor, record.count) == ("operator", "purge", "bob", 6)
    assert record.scope == f"stage={MOVER} (the oldest: {MOVER} 6)"
    assert OPERATION.search(out) and record.operation == OPERATION.search(out).group()  # type: ignore[union-attr]

    monkeypatch.setattr("sys.stdin", io.StringIO("n\n"))
    assert run(capsys, "dlq", "purge", "--stage", NOTIFIER_EMAIL)[0] == 1
    assert _drain(letters, journal) == []  # refused: nothing done, nothing audited


def _drain(broker: BrokerKit, queue: str) -> list[bytes]:
    wait_until(lambda: broker.depth(queue) > 0, 3)
    connection = broker.connect()
    try:
        channel = connection.channel()
        bodies: list[bytes] = []
        while True:
            method, _properties, body = channel.basic_get(queue, auto_ack=True)
            if method is None:
                return bodies
            bodies.append(body)
    finally:
        connection.close()
