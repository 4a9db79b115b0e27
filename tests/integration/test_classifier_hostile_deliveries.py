"""Signed but hostile deliveries reach the classifier and are dead-lettered as ``invalid_delivery``, never ``bug``.

The real consumer loop on the real broker, the classifier's handler, a fake DocSpace that records every call.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from functools import partial
from pathlib import Path

import pytest

from consumers.classifier.handler import classify_delivery
from ops.test_event import sample_delivery
from shared.broker.connection import connection_parameters
from shared.broker.consumer import StageConsumer
from shared.broker.publisher import Publisher
from shared.broker.topology import CLASSIFIER
from shared.core.handling import Handled, InboundMessage
from shared.core.rules import ClientRule, Rules
from shared.store.sqlite_store import SqliteStore
from tests.support.fakes import FakeDocSpace, RecordingEmitter
from tests.support.mail_fixtures import wait_until
from tests.support.real_broker import BrokerKit


def body(event_id: object = 1, file_id: object = 2, parent_id: object = 3, retry_count: object = 0) -> bytes:
    return sample_delivery(
        event_id=event_id,
        file_id=file_id,
        folder_id=parent_id,
        title="Invoice.pdf",
        created_on="2026-09-18T08:14:03+24:00",
        webhook={"id": 4, "retryCount": retry_count},
    )


HOSTILE = {
    "event id of 4,300 digits": body(event_id="9" * 4300),
    "superscript event id": body(event_id="²"),
    "file id ..": body(file_id=".."),
    "file id with a slash": body(file_id="1/../../settings"),
    "folder id with a query": body(parent_id="3?fields=*"),
    "retry count --5": body(retry_count="--5"),
    "retry count 2^63": body(retry_count=2**63),
    "file id over the length cap": body(file_id="x" * 600),
}


@pytest.fixture
def classifier(broker: BrokerKit, tmp_path: Path) -> Iterator[FakeDocSpace]:
    docspace = FakeDocSpace()
    store = SqliteStore(tmp_path / "idempotency.sqlite3", ttl_seconds=60)
    rules = Rules(clients=(ClientRule(name="acme", room_id="3", manager_email="ann@acme.example"),))
    classify = partial(
        classify_delivery, files=docspace, rules=rules, triggers={"file.uploaded"}, emit=RecordingEmitter(), store=store
    )

    def handle(message: InboundMessage) -> Handled:
        return classify(message.body)

    params = connection_parameters(broker.url, name="test-hostile-classifier", heartbeat=5)
    publisher = Publisher(params, topology=broker.topology).start()
    consumer = StageConsumer(params, topology=broker.topology, stage=CLASSIFIER, handler=handle, publisher=publisher)
    thread = threading.Thread(target=consumer.run, daemon=True)
    assert publisher.wait_connected(10)
    thread.start()
    yield docspace
    consumer.stop()
    thread.join(10)
    publisher.stop()
    store.close()


def test_each_hostile_delivery_is_dead_lettered_as_invalid_delivery(
    broker: BrokerKit, classifier: FakeDocSpace
) -> None:
    connection = broker.connect()
    channel = connection.channel()
    for raw in HOSTILE.values():
        channel.basic_publish(broker.topology.events_exchange, "file.uploaded", raw)
    connection.close()
    dlq = broker.topology.stage(CLASSIFIER).dead_letters
    # Generous: on a loaded machine a confirm can time out and the message comes round again after a pause.
    assert wait_until(lambda: broker.depth(dlq) == len(HOSTILE), 60)
    letters = broker.get_all(dlq)
    assert sorted(body for _, body in letters) == sorted(HOSTILE.values())  # kept byte for byte
    assert {(properties.headers or {})["x-reason"] for properties, _ in letters} == {"invalid_delivery"}
    assert classifier.calls == []  # nothing reached DocSpace
