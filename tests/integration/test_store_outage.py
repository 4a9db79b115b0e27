"""An outage of our own store (Redis behind a cut TCP proxy) outlasting the retry ladder: waited out, never lost."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Iterator

import pika
import pytest

from shared.broker.connection import connection_parameters
from shared.broker.consumer import STORE_OUTAGE_TOO_LONG, Patience, Reporting, StageConsumer
from shared.broker.publisher import Publisher
from shared.broker.topology import CLASSIFIER
from shared.core.handling import Handled, InboundMessage, Outcome
from shared.store.idempotency import run_once
from shared.store.redis_store import RedisStore
from tests.support.mail_fixtures import wait_until
from tests.support.real_broker import BrokerKit
from tests.support.tcp_proxy import TcpProxy

REDIS_HOST, REDIS_PORT, REDIS_DB = "127.0.0.1", 6379, 15
StartStage = Callable[[Patience], "StoreStage"]


class StoreStage:
    """A stage whose side effect is guarded by ``run_once`` on a real Redis that the test can take away."""

    def __init__(self, broker: BrokerKit, policy: Patience) -> None:
        self.broker = broker
        self.proxy = TcpProxy(REDIS_HOST, REDIS_PORT)
        self.store = RedisStore(
            f"redis://127.0.0.1:{self.proxy.port}/{REDIS_DB}",
            ttl_seconds=600,
            namespace=f"test-outage:{uuid.uuid4().hex}:",
        )
        self.done: list[bytes] = []
        self.outcomes: list[tuple[str, str | None]] = []
        params = connection_parameters(broker.url, name="test-store-outage", heartbeat=5)
        self.publisher = Publisher(params, topology=broker.topology).start()
        self.consumer = StageConsumer(
            params,
            topology=broker.topology,
            stage=CLASSIFIER,
            handler=self.handle,
            publisher=self.publisher,
            concurrency=2,
            reporting=Reporting(lambda _s, outcome, reason, _d: self.outcomes.append((outcome, reason))),
            patience=policy,
        )
        self.thread = threading.Thread(target=self.consumer.run, daemon=True)

    def handle(self, message: InboundMessage) -> Handled:
        run_once(self.store, f"invoice:{message.message_id}", lambda: self.done.append(message.body), lease_seconds=5)
        return Handled(Outcome.ACCEPTED)

    def send(self, body: bytes) -> None:
        connection = self.broker.connect()
        connection.channel().basic_publish(
            self.broker.topology.events_exchange,
            "file.uploaded",
            body,
            pika.BasicProperties(message_id=f"m-{uuid.uuid4().hex}", delivery_mode=2),
        )
        connection.close()

    def dead_letters(self) -> int:
        return self.broker.depth(self.broker.topology.stage(CLASSIFIER).dead_letters)


@pytest.fixture
def stage(broker: BrokerKit) -> Iterator[StartStage]:
    started: list[StoreStage] = []

    def start(policy: Patience) -> StoreStage:
        s = StoreStage(broker, policy)
        assert s.publisher.wait_connected(10)
        s.thread.start()
        started.append(s)
        return s

    yield start
    for s in started:
        s.consumer.stop()
        s.thread.join(10)
        s.publisher.stop()
        s.store.close()
        s.proxy.close()


def test_a_store_outage_longer_than_the_retry_ladder_is_waited_out_and_the_invoice_handled_once(
    stage: StartStage, broker: BrokerKit
) -> None:
    ladder = sum(broker.topology.retry_delays)  # 1.4 s: the outage below lasts more than twice that
    s = stage(Patience(store_outage_max_wait=3600, store_outage_recheck=0.3))
    s.proxy.down()
    s.send(b"invoice-1")
    time.sleep(ladder * 2 + 1.5)
    assert s.done == []
    assert s.dead_letters() == 0, s.outcomes
    parked = [o for o in s.outcomes if o == ("deferred", "idempotency_store_unavailable")]
    assert len(parked) >= 3, s.outcomes  # more comebacks than the ladder has steps, none of them spent a step
    assert ("retried", "idempotency_store_unavailable") not in s.outcomes
    s.proxy.up()
    assert wait_until(lambda: s.done == [b"invoice-1"], 10), s.outcomes
    time.sleep(1)
    assert s.done == [b"invoice-1"]
    assert s.outcomes[-1] == ("accepted", None)
    assert s.dead_letters() == 0


def test_a_store_outage_past_its_bound_dead_letters_with_a_clear_reason(stage: StartStage, broker: BrokerKit) -> None:
    s = stage(Patience(store_outage_max_wait=1.5, store_outage_recheck=0.3))
    s.proxy.down()
    s.send(b"invoice-2")
    assert wait_until(lambda: s.dead_letters() == 1, 15), s.outcomes
    properties, body = broker.get(broker.topology.stage(CLASSIFIER).dead_letters)
    headers = properties.headers or {}
    assert body == b"invoice-2"
    assert headers["x-reason"] == STORE_OUTAGE_TOO_LONG
    assert "STORE_OUTAGE_MAX_WAIT" in headers["x-error"]
    assert s.outcomes[-1] == ("dead_lettered", STORE_OUTAGE_TOO_LONG)
    assert s.done == []
