"""``invoice-pipeline dlq``: list, show, replay and purge on the real broker, with a real consumer stage running."""

from __future__ import annotations

import io
import json
import re
import threading
from collections.abc import Iterator

import pika
import pytest
import structlog

from ops.cli import main
from shared.broker.connection import connection_parameters
from shared.broker.consumer import StageConsumer
from shared.broker.publisher import Publisher
from shared.broker.topology import CLASSIFIER, MOVER
from shared.core.errors import PermanentError
from shared.core.handling import Handled, InboundMessage, Outcome
from tests.support.cli_env import use_broker
from tests.support.mail_fixtures import wait_until
from tests.support.real_broker import BrokerKit, wait_until_quiet

ID = re.compile(r"\b[0-9a-f]{12}\b")


class BrokenThenFixedStage:
    """A real classifier-stage consumer whose handler fails permanently until the test 'fixes' it."""

    def __init__(self, broker: BrokerKit) -> None:
        self.broken = True
        self.processed: list[InboundMessage] = []
        params = connection_parameters(broker.url, name="test-dlq-stage", heartbeat=5)
        self.publisher = Publisher(params, topology=broker.topology).start()
        self.consumer = StageConsumer(
            params, topology=broker.topology, stage=CLASSIFIER, handler=self.handle, publisher=self.publisher
        )
        self.thread = threading.Thread(target=self.consumer.run, daemon=True)

    def handle(self, message: InboundMessage) -> Handled:
        structlog.contextvars.bind_contextvars(file_id=str(message.message_id).replace("evt", "file"))
        if self.broken:
            raise PermanentError("403 on the room", reason="docspace_access_denied")
        self.processed.append(message)
        return Handled(Outcome.ACCEPTED)


@pytest.fixture
def stage(broker: BrokerKit, monkeypatch: pytest.MonkeyPatch) -> Iterator[BrokenThenFixedStage]:
    use_broker(monkeypatch, broker)
    s = BrokenThenFixedStage(broker)
    assert s.publisher.wait_connected(10)
    s.thread.start()
    yield s
    s.consumer.stop()
    s.thread.join(10)
    s.publisher.stop()


def publish(broker: BrokerKit, exchange: str, routing_key: str, body: bytes, **props: object) -> None:
    connection = broker.connect()
    connection.channel().basic_publish(
        exchange,
        routing_key,
        body,
        pika.BasicProperties(delivery_mode=2, **props),
    )
    connection.close()


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    code = main(list(argv))
    return code, capsys.readouterr().out


def test_list_show_and_replay_move_dead_letters_back_and_get_them_processed_once(
    stage: BrokenThenFixedStage, broker: BrokerKit, capsys: pytest.CaptureFixture[str]
) -> None:
    dlq = broker.topology.stage(CLASSIFIER).dead_letters
    for n in range(3):
        publish(
            broker, broker.topology.events_exchange, "file.uploaded", f'{{"n":{n}}}'.encode(), message_id=f"evt-{n}"
        )
    assert wait_until(lambda: broker.depth(dlq) == 3, 15)

    code, out = run(capsys, "dlq", "list")
    assert code == 0
    ids = ID.findall(out)
    assert len(ids) == 3 and "docspace_access_denied" in out and "file-1" in out
    # Listing takes nothing away, and keeps the order.
    assert broker.depth(dlq) == 3
    assert ID.findall(run(capsys, "dlq", "list", "--stage", CLASSIFIER)[1]) == ids
    assert "No dead letters match" in run(capsys, "dlq", "list", "--reason", "bug")[1]
    assert "No dead letters match" in run(capsys, "dlq", "list", "--since", "2030-01-01")[1]
    assert len(ID.findall(run(capsys, "dlq", "list", "--since", "10m")[1])) == 3

    code, out = run(capsys, "dlq", "show", ids[1][:6])
    assert code == 0 and ids[1] in out and "403 on the room" in out and '"n": 1' in out and "x-attempts" in out
    assert run(capsys, "dlq", "show", "ffffffffffff")[0] == 1

    code, out = run(capsys, "dlq", "replay", "--dry-run")
    assert code == 0 and "Would replay 3" in out and broker.depth(dlq) == 3
    assert stage.processed == []

    stage.broken = False
    code, out = run(capsys, "dlq", "replay", "--stage", CLASSIFIER, "--limit", "2")
    assert code == 0 and "Replayed 2" in out
    assert wait_until(lambda: len(stage.processed) == 2, 15)
    assert broker.depth(dlq) == 1

    code, out = run(capsys, "dlq", "replay", "--id", ids[2])
    assert code == 0 and "Replayed 1" in out
    assert wait_until(lambda: len(stage.processed) == 3, 15)
    assert run(capsys, "dlq", "replay")[1].startswith("Nothing to replay")
    # Anything handled twice has been by now: the stage's queues are empty and its workers idle.
    wait_until_quiet(broker, [CLASSIFIER], held=lambda: {"in flight": stage.consumer.in_flight}, settle=0.5)

    assert sorted(m.body for m in stage.processed) == [b'{"n":0}', b'{"n":1}', b'{"n":2}']
    # Back as the stage first saw them: the original routing key, attempt 1, no failure story, a replay mark.
    for message in stage.processed:
        assert message.routing_key == "file.uploaded" and message.attempt == 1
        assert "x-reason" not in message.headers and message.headers["x-replays"] == 1
    assert broker.depth(dlq) == 0


def test_purge_asks_first_and_broker_side_dead_letters_are_listed(
    broker: BrokerKit, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    use_broker(monkeypatch, broker)
    mover = broker.topology.stage(MOVER)
    # What the quorum delivery limit leaves behind: no headers of ours, only the broker's x-death.
    death = {"reason": "delivery_limit", "count": 5, "queue": mover.work, "routing-keys": ["acme"]}
    publish(broker, "", mover.dead_letters, b'{"invoice":1}', message_id="inv-1", headers={"x-death": [death]})
    publish(broker, broker.topology.dead_letter_exchange, mover.work, b'{"invoice":2}', message_id="inv-2")
    assert wait_until(lambda: broker.depth(mover.dead_letters) == 2, 5)

    out = run(capsys, "dlq", "list", "--stage", MOVER)[1]
    assert "delivery_limit" in out and len(ID.findall(out)) == 2

    monkeypatch.setattr("sys.stdin", io.StringIO("n\n"))
    code, out = run(capsys, "dlq", "purge", "--stage", MOVER)
    assert code == 1 and "Nothing purged" in out and broker.depth(mover.dead_letters) == 2

    code, out = run(capsys, "dlq", "purge", "--stage", MOVER, "--yes")
    assert code == 0 and "Purged 2" in out and broker.depth(mover.dead_letters) == 0
    assert "No dead letters to purge" in run(capsys, "dlq", "purge", "--yes")[1]


def test_an_unknown_stage_is_a_usage_error(
    broker: BrokerKit, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    use_broker(monkeypatch, broker)
    assert main(["dlq", "list", "--stage", "nope"]) == 2
    assert "unknown stage" in capsys.readouterr().err


HOSTILE_MARKUP = ["[/evil]", "[bold", "[link=https://evil.example]x[/link]", "ends with a backslash \\", "[/]"]


def test_list_show_and_replay_print_hostile_headers_and_bodies_as_text(
    broker: BrokerKit, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # Anyone who can publish can write a dead letter's headers; rich would read "[/evil]" as a closing tag and raise.
    use_broker(monkeypatch, broker)
    mover = broker.topology.stage(MOVER)
    for n, text in enumerate(HOSTILE_MARKUP):
        headers = {
            "x-stage": text,
            "x-reason": text,
            "x-error": text,
            "x-event-id": text,
            "x-file-id": text,
            "x-invoice-id": text,
            "x-attempts": text,
            "x-last-failure": text,
            text: text,
        }
        body = json.dumps({"title": text, "n": n}).encode()
        publish(broker, "", mover.dead_letters, body, message_id=text, headers=headers)
    assert wait_until(lambda: broker.depth(mover.dead_letters) == len(HOSTILE_MARKUP), 5)

    code, out = run(capsys, "dlq", "list", "--stage", MOVER)
    assert code == 0, out
    assert "[/evil]" in out and "[bold" in out and "[/]" in out  # shown as the text they are
    ids = ID.findall(out)
    assert len(ids) == len(HOSTILE_MARKUP)

    code, out = run(capsys, "dlq", "show", ids[0], "--stage", MOVER)
    assert code == 0 and "[/evil]" in out

    code, out = run(capsys, "dlq", "replay", "--stage", MOVER, "--dry-run")
    assert code == 0 and f"Would replay {len(HOSTILE_MARKUP)}" in out and "[/evil]" in out
    assert broker.depth(mover.dead_letters) == len(HOSTILE_MARKUP)


def test_show_prints_no_terminal_escape_sequence_from_a_dead_letter(
    broker: BrokerKit, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # Anyone who can publish writes a dead letter's headers and body; ESC/CSI sequences would drive the terminal
    # (clear it, retitle it, hide lines). Tabs and newlines keep the body readable.
    use_broker(monkeypatch, broker)
    mover = broker.topology.stage(MOVER)
    hostile = "\x1b[2J\x1b]0;owned\x07\x9b31mred\r"
    headers = {"x-reason": f"bug{hostile}", "x-error": f"boom{hostile}", f"x-{hostile}": hostile}
    body = b'{"title": "x\\u001b[8mhidden"}\n\tplain line \x1b[0m'
    publish(broker, "", mover.dead_letters, body, message_id=f"inv{hostile}", headers=headers)
    assert wait_until(lambda: broker.depth(mover.dead_letters) == 1, 5)

    code, out = run(capsys, "dlq", "list", "--stage", MOVER)
    assert code == 0 and "\x1b" not in out and "\x9b" not in out and "\x07" not in out
    [ident] = ID.findall(out)

    code, out = run(capsys, "dlq", "show", ident, "--stage", MOVER)
    assert code == 0, out
    assert not any(c in out for c in "\x1b\x9b\x07\r"), repr(out)
    assert "[2J" in out and "boom" in out and "hidden" in out  # the text is shown, only the controls are gone
    shown_body = out.split("\nbody\n", 1)[1].splitlines()
    assert shown_body[0].endswith('hidden"}') and shown_body[1].strip() == "plain line [0m"  # the newline kept


def test_purge_deletes_exactly_the_dead_letters_confirmed(
    broker: BrokerKit, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    use_broker(monkeypatch, broker)
    mover = broker.topology.stage(MOVER)
    for n in (1, 2):
        publish(broker, "", mover.dead_letters, f'{{"invoice":{n}}}'.encode(), message_id=f"inv-{n}")
    assert wait_until(lambda: broker.depth(mover.dead_letters) == 2, 5)

    def confirm_while_one_more_arrives(text: str, **_kw: object) -> bool:
        assert "Delete 2 dead letter(s)" in text
        publish(broker, "", mover.dead_letters, b'{"invoice":3}', message_id="inv-3")
        assert wait_until(lambda: broker.depth(mover.dead_letters) == 3, 5)
        return True

    # typer's prompt, not ours: the operator answering "yes" while a new dead letter arrives.
    monkeypatch.setattr("typer.confirm", confirm_while_one_more_arrives)
    code, out = run(capsys, "dlq", "purge", "--stage", MOVER)
    assert code == 0 and "Purged 2" in out, out
    assert broker.depth(mover.dead_letters) == 1
    _properties, body = broker.get(mover.dead_letters)
    assert body == b'{"invoice":3}'  # the one nobody was asked about is still there
