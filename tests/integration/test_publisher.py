"""The publisher against the real broker: confirms from many threads at once, batched writes, failures kept apart."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from concurrent.futures import Future

import pytest

from shared.broker import connection_parameters
from shared.errors import BrokerUnavailable
from shared.publisher import MessageUnroutable, OutgoingMessage, Publisher
from tests.broker import BrokerKit


@pytest.fixture
def publisher(broker: BrokerKit) -> Iterator[Publisher]:
    publisher = Publisher(connection_parameters(broker.url, name="test-publisher"), topology=broker.topology).start()
    assert publisher.wait_connected(10)
    yield publisher
    publisher.stop()


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
    for thread in range(16):  # one thread's messages keep their order, however they were batched
        mine = [b for b in bodies if b.startswith(f"{thread}:".encode())]
        assert mine == [f"{thread}:{n}".encode() for n in range(25)]


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
