"""Failover between broker nodes, on the real broker: two proxies in front of it stand for two cluster nodes.

A process given both nodes keeps working when the one it is connected to dies, without waiting for it to return.
(The whole pipeline on a real three-node cluster is tests/e2e/test_cluster.py.)
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Iterator

import pika
import pytest

from ops.doctor import check_broker
from shared.broker.connection import connection_parameters
from shared.broker.consumer import StageConsumer
from shared.broker.publisher import Publisher
from shared.broker.topology import CLASSIFIER
from shared.core.handling import Handled, InboundMessage, Outcome
from shared.core.outgoing import OutgoingMessage
from tests.support.real_broker import BrokerKit
from tests.support.tcp_proxy import TcpProxy


class FirstNode(random.Random):
    """Makes ``connection_parameters`` start at the first node listed, so the test knows where a client goes."""

    def randrange(self, *args: object, **kwargs: object) -> int:
        return 0


@pytest.fixture
def two_nodes(broker: BrokerKit) -> Iterator[tuple[TcpProxy, TcpProxy]]:
    first, second = TcpProxy.in_front_of(broker.url), TcpProxy.in_front_of(broker.url)
    yield first, second
    first.close()
    second.close()


@pytest.fixture
def first_node_dead(two_nodes: tuple[TcpProxy, TcpProxy]) -> tuple[TcpProxy, TcpProxy]:
    """The two nodes, the first dead before a client starts: it must find the second by itself."""
    two_nodes[0].down()
    return two_nodes


def nodes(broker: BrokerKit, first: TcpProxy, second: TcpProxy, name: str) -> list[pika.URLParameters]:
    url = f"{first.proxied(broker.url)},{second.proxied(broker.url)}"
    return connection_parameters(url, name=name, heartbeat=5, rng=FirstNode())


def confirmed(publisher: Publisher, exchange: str, timeout: float) -> float:
    """Seconds until a publish is confirmed again, retrying while the publisher reconnects."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        future = publisher.publish(OutgoingMessage(exchange=exchange, routing_key="file.created", body=b"x"))
        try:
            future.result(2)
            return time.monotonic() - started
        except Exception:
            time.sleep(0.05)
    raise AssertionError(f"no confirmed publish within {timeout}s")


def test_the_publisher_goes_to_the_next_node_when_its_node_dies(
    broker: BrokerKit, two_nodes: tuple[TcpProxy, TcpProxy]
) -> None:
    first, second = two_nodes
    broker.bind_probe(broker.topology.events_exchange)
    publisher = Publisher(nodes(broker, first, second, "test-failover"), topology=broker.topology).start()
    try:
        assert publisher.wait_connected(10)
        assert first.accepted >= 1 and second.accepted == 0  # it started at the first node

        first.down()  # the node dies and stays dead
        took = confirmed(publisher, broker.topology.events_exchange, timeout=10)

        assert second.accepted >= 1
        assert took < 3, f"failover took {took:.1f}s"
    finally:
        publisher.stop()


def test_a_consumer_whose_first_node_is_dead_consumes_from_the_next(
    broker: BrokerKit, first_node_dead: tuple[TcpProxy, TcpProxy]
) -> None:
    first, second = first_node_dead
    params = nodes(broker, first, second, "test-failover-consumer")
    publisher = Publisher(params, topology=broker.topology).start()
    seen = threading.Event()

    def handler(_message: InboundMessage) -> Handled:
        seen.set()
        return Handled(Outcome.ACCEPTED)

    consumer = StageConsumer(params, topology=broker.topology, stage=CLASSIFIER, handler=handler, publisher=publisher)
    thread = threading.Thread(target=consumer.run, daemon=True)
    thread.start()
    try:
        assert publisher.wait_connected(10)
        deadline = time.monotonic() + 10
        while not consumer.is_connected and time.monotonic() < deadline:
            time.sleep(0.05)
        assert consumer.is_connected
        publisher.publish_and_wait(
            OutgoingMessage(exchange=broker.topology.events_exchange, routing_key="file.created", body=b"{}")
        )
        assert seen.wait(10)
    finally:
        consumer.stop()
        thread.join(10)
        publisher.stop()


def test_doctor_names_a_cluster_node_that_does_not_answer(
    broker: BrokerKit, first_node_dead: tuple[TcpProxy, TcpProxy]
) -> None:
    first, second = first_node_dead
    checks = {check.component: check for check in check_broker(nodes(broker, first, second, "doctor"), broker.topology)}

    assert checks["broker"].status == "ok"  # it reached the cluster through the node that answers
    assert checks["topology"].status == "ok"
    assert checks["cluster nodes"].status == "warn"
    assert checks["cluster nodes"].detail.startswith("1 of 2 answer")
    assert f"127.0.0.1:{first.port}" in checks["cluster nodes"].detail
    assert "guest" not in checks["cluster nodes"].detail + checks["broker"].detail  # no credentials shown

    first.up()
    checks = {check.component: check for check in check_broker(nodes(broker, first, second, "doctor"), broker.topology)}
    assert checks["cluster nodes"].status == "ok" and checks["cluster nodes"].detail == "all 2 nodes answer"
