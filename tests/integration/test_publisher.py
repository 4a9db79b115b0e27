"""The publisher against the real broker: confirms from many threads at once, batched writes, failures kept apart."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from concurrent.futures import Future
from typing import Any

import pytest

from shared.broker.connection import TopologyMismatch, connection_parameters
from shared.broker.publisher import Publisher
from shared.broker.topology import Topology
from shared.core.errors import BrokerUnavailable, MessageRefused, MessageUnroutable, UnpublishableMessage
from shared.core.outgoing import OutgoingMessage
from tests.support.real_broker import BrokerKit, connected_publisher
from tests.support.tcp_proxy import TcpProxy


@pytest.fixture
def publisher(broker: BrokerKit) -> Iterator[Publisher]:
    yield from connected_publisher(broker, "test-publisher")


def test_a_burst_from_many_threads_is_confirmed_and_arrives_once_each(publisher: Publisher, broker: BrokerKit) -> None:
    exchange = broker.topology.events_exchange
    probe = broker.bind_probe(exchange)
    futures: list[Future[None]] = []
    lock = threading.Lock()

    def burst(thread: int) -> None:
        for n in range(25):
            future = publisher.publish(
                OutgoingMessage(exchange=exchange, routing_key="file.created", body=f"{thread}:{n}".encode())
            )
            with lock:
                futures.append(future)

    threads = [threading.Thread(target=burst, args=(t,)) for t in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    for future in futures:
        future.result(timeout=10)

    bodies = [body for _props, body in broker.get_all(probe)]
    assert len(bodies) == 400 and len(set(bodies)) == 400
    for sender in range(16):  # one thread's messages keep their order, however they were batched
        mine = [b for b in bodies if b.startswith(f"{sender}:".encode())]
        assert mine == [f"{sender}:{n}".encode() for n in range(25)]


def test_in_one_batch_only_the_unroutable_messages_fail(publisher: Publisher, broker: BrokerKit) -> None:
    exchange = broker.topology.prefix + "half-bound"
    with broker.connect() as connection:
        channel = connection.channel()
        channel.exchange_declare(exchange, "direct", auto_delete=True)
        probe = broker.bind_probe(exchange, "bound")
        keys = ["bound" if n % 3 else "nowhere" for n in range(60)]
        # Published back to back from one thread, so many share one batch (and one socket write).
        futures = [
            publisher.publish(OutgoingMessage(exchange=exchange, routing_key=key, body=str(n).encode()))
            for n, key in enumerate(keys)
        ]
        outcomes = []
        for future in futures:
            try:
                future.result(timeout=10)
                outcomes.append("confirmed")
            except MessageUnroutable:
                outcomes.append("unroutable")
        channel.exchange_delete(exchange)

    assert outcomes == ["confirmed" if key == "bound" else "unroutable" for key in keys]
    assert [int(body) for _props, body in broker.get_all(probe)] == [n for n, key in enumerate(keys) if key == "bound"]


def test_publishing_after_stop_fails_fast(publisher: Publisher, broker: BrokerKit) -> None:
    publisher.stop()
    future = publisher.publish(OutgoingMessage(exchange=broker.topology.events_exchange, routing_key="x", body=b"{}"))
    with pytest.raises(BrokerUnavailable):
        future.result(timeout=5)


# What pika cannot encode: each fails alone, before anything reaches the socket.
UNENCODABLE = {
    "content type of 300 bytes": {"content_type": "application/json; x=" + "y" * 280},
    "message id of 5,000 digits": {"message_id": "7" * 5000},
    "routing key of 100 three-byte characters": {"routing_key": "ж" * 100 + "€" * 50},
    "header integer of 2**63": {"headers": {"x-docspace-retry-count": 2**63}},
    "header name of 300 bytes": {"headers": {"x" * 300: 1}},
    "header value pika has no type for": {"headers": {"x-odd": object()}},
}


@pytest.mark.parametrize("fields", UNENCODABLE.values(), ids=UNENCODABLE.keys())
def test_a_message_pika_cannot_encode_fails_alone_and_the_next_one_arrives_at_once(
    publisher: Publisher, broker: BrokerKit, fields: dict[str, Any]
) -> None:
    exchange = broker.topology.events_exchange
    probe = broker.bind_probe(exchange)
    # Back to back from one thread: the bad message shares a batch (and one socket write) with good ones.
    before = publisher.publish(OutgoingMessage(exchange=exchange, routing_key="file.created", body=b"before"))
    bad = publisher.publish(OutgoingMessage(**{"exchange": exchange, "routing_key": "k", "body": b"bad", **fields}))
    after = publisher.publish(OutgoingMessage(exchange=exchange, routing_key="file.created", body=b"after"))
    with pytest.raises(UnpublishableMessage):
        bad.result(timeout=5)
    before.result(timeout=5)
    after.result(timeout=5)

    started = time.monotonic()
    publisher.publish_and_wait(OutgoingMessage(exchange=exchange, routing_key="file.created", body=b"next"))
    assert time.monotonic() - started < 1.0
    assert [body for _props, body in broker.get_all(probe)] == [b"before", b"after", b"next"]
    assert publisher.is_alive and publisher.is_connected


def test_a_message_the_broker_refuses_fails_as_refused_and_the_publisher_comes_back(
    publisher: Publisher, broker: BrokerKit
) -> None:
    exchange = broker.topology.events_exchange
    probe = broker.bind_probe(exchange)
    # RabbitMQ closes the channel (406 PRECONDITION_FAILED) on a "CC" header that is not a list of strings.
    refused = OutgoingMessage(exchange=exchange, routing_key="k", body=b"refused", headers={"CC": "not-a-list"})
    with pytest.raises(MessageRefused, match="PRECONDITION_FAILED"):
        publisher.publish_and_wait(refused)

    deadline = time.monotonic() + 5
    while not publisher.is_connected:
        assert time.monotonic() < deadline, "the publisher did not reconnect after the refusal"
        time.sleep(0.05)
    publisher.publish_and_wait(OutgoingMessage(exchange=exchange, routing_key="file.created", body=b"next"))
    assert [body for _props, body in broker.get_all(probe)] == [b"next"]


def test_if_the_io_thread_dies_it_says_so_and_publishing_fails_fast(broker: BrokerKit) -> None:
    # An exchange name over 255 bytes makes pika raise while declaring: nothing the loop expects, so it dies.
    deaths: list[BaseException] = []
    publisher = Publisher(
        connection_parameters(broker.url, name="test-publisher-death"),
        topology=Topology("x" * 300),
        on_death=deaths.append,
    ).start()
    try:
        deadline = time.monotonic() + 10
        while not deaths:
            assert time.monotonic() < deadline, "the I/O thread did not die"
            time.sleep(0.05)
        assert not publisher.is_alive and not publisher.is_connected
        future = publisher.publish(OutgoingMessage(exchange="x", routing_key="x", body=b"{}"))
        with pytest.raises(BrokerUnavailable, match="I/O thread died"):
            future.result(timeout=1)
    finally:
        publisher.stop()


def test_a_topology_mismatch_on_reconnect_is_a_death_its_owner_hears_of(
    broker: BrokerKit, broker_proxy: TcpProxy
) -> None:
    deaths: list[BaseException] = []
    publisher = Publisher(
        connection_parameters(broker_proxy.proxied(broker.url), name="test-publisher-mismatch"),
        topology=broker.topology,
        on_death=deaths.append,
    ).start()
    try:
        assert publisher.wait_connected(10)
        with broker.connect() as connection:  # someone redeployed a queue with other arguments
            channel = connection.channel()
            clash = broker.topology.stage("classifier").work
            channel.queue_delete(clash)
            channel.queue_declare(clash, durable=True)  # a classic queue where a quorum queue belongs
        broker_proxy.cut()  # the reconnect declares the topology again, and the broker refuses it
        deadline = time.monotonic() + 10
        while not deaths:
            assert time.monotonic() < deadline, "the publisher stopped on the mismatch without saying so"
            time.sleep(0.05)
        assert isinstance(deaths[0], TopologyMismatch) and publisher.fatal_error is deaths[0]
        assert not publisher.is_alive and not publisher.is_connected
        future = publisher.publish(OutgoingMessage(exchange=broker.topology.events_exchange, routing_key="x", body=b""))
        with pytest.raises(BrokerUnavailable, match="new name"):
            future.result(timeout=1)
    finally:
        publisher.stop()
