"""Test helpers for the real broker: finding one, isolating each test by a name prefix, reading queues."""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass

import pika
import pika.exceptions
import pytest

from shared.broker.connection import connection_parameters
from shared.broker.publisher import Publisher
from shared.broker.topology import Topology

DEFAULT_URL = "amqp://guest:guest@localhost:5672/%2F"


def broker_answers(url: str) -> bool:
    params = pika.URLParameters(url)
    params.connection_attempts = 1
    params.socket_timeout = 2
    try:
        pika.BlockingConnection(params).close()
    except pika.exceptions.AMQPError:
        return False
    return True


def find_broker() -> Iterator[str]:
    """AMQP_URL when a broker answers there, else a testcontainers RabbitMQ when Docker runs.

    Under CI=true a missing broker fails the run: a suite that silently skips its broker tests proves nothing.
    """
    url = os.environ.get("AMQP_URL", DEFAULT_URL)
    if broker_answers(url):
        yield url
        return
    try:
        from testcontainers.rabbitmq import RabbitMqContainer

        with RabbitMqContainer("rabbitmq:3.13-management") as container:
            params = container.get_connection_params()
            yield f"amqp://guest:guest@{params.host}:{params.port}/%2F"
            return
    except Exception as exc:  # no Docker engine, image pull refused, ...
        reason = f"no RabbitMQ at {url} and no Docker for testcontainers ({type(exc).__name__}: {exc})"
    if os.environ.get("CI", "").lower() in {"1", "true", "yes"}:
        pytest.fail(f"CI=true: {reason}", pytrace=False)
    pytest.skip(reason)


@dataclass
class BrokerKit:
    """One test's view of the broker: a unique topology prefix and small helpers to inspect queues."""

    url: str
    topology: Topology

    def env(self, amqp_url: str | None = None) -> dict[str, str]:
        """The environment that points a process at this test's broker and topology, as production's does."""
        return {
            "AMQP_URL": amqp_url or self.url,
            "TOPOLOGY_PREFIX": self.topology.prefix,
            "RETRY_DELAYS": ",".join(str(d) for d in self.topology.retry_delays),
            "DELIVERY_LIMIT": str(self.topology.delivery_limit),
        }

    def connect(self) -> pika.BlockingConnection:
        return pika.BlockingConnection(pika.URLParameters(self.url))

    def bind_probe(self, exchange: str, routing_key: str = "#") -> str:
        """A queue that copies what reaches ``exchange`` so a test can read it; it expires a minute after use."""
        name = f"{self.topology.prefix}probe.{uuid.uuid4().hex[:6]}"
        with _channel(self) as channel:
            channel.queue_declare(name, durable=False, auto_delete=False, arguments={"x-expires": 60_000})
            channel.queue_bind(name, exchange, routing_key)
        return name

    def get(self, queue: str, *, timeout: float = 5.0) -> tuple[pika.BasicProperties, bytes]:
        """Wait for one message on ``queue`` and ack it."""
        deadline = time.monotonic() + timeout
        with _channel(self) as channel:
            while time.monotonic() < deadline:
                method, properties, body = channel.basic_get(queue, auto_ack=True)
                if method is not None:
                    return properties, body
                time.sleep(0.05)
        raise AssertionError(f"no message on {queue} within {timeout}s")

    def get_all(self, queue: str) -> list[tuple[pika.BasicProperties, bytes]]:
        messages: list[tuple[pika.BasicProperties, bytes]] = []
        with _channel(self) as channel:
            while True:
                method, properties, body = channel.basic_get(queue, auto_ack=True)
                if method is None:
                    return messages
                messages.append((properties, body))

    def depth(self, queue: str) -> int:
        return self.depths([queue])[queue]

    def depths(self, queues: list[str]) -> dict[str, int]:
        """Messages ready in each queue (a passive declare: not those a consumer holds unacknowledged)."""
        with _channel(self) as channel:
            return {queue: channel.queue_declare(queue, passive=True).method.message_count for queue in queues}


def wait_until_quiet(
    broker: BrokerKit,
    stages: Iterable[str],
    *,
    held: Callable[[], Mapping[str, float]],
    timeout: float = 120.0,
    settle: float = 1.0,
    explain: Callable[[], str] = str,
) -> None:
    """Wait until the stages have had nothing to do for ``settle`` seconds running, instead of sleeping and hoping.

    Nothing to do: every stage's work, delay and parked queue is empty (a passive declare's ready count) and
    ``held`` (what consumers hold outside the queues: messages in workers' hands, a spool) is all zero. ``settle``
    covers a message on its way from the broker to a consumer, in neither count for a moment. A process that does
    not answer, or a broker node that does not, is not quiet yet. ``explain`` says more when it times out.
    """
    queues = [
        queue
        for stage in stages
        for names in [broker.topology.stage(stage)]
        for queue in (names.work, names.parked, *names.retries)
    ]
    deadline = time.monotonic() + timeout
    quiet_since: float | None = None
    busy: dict[str, float] = {}
    while time.monotonic() < deadline:
        try:
            busy = {name: count for name, count in {**broker.depths(queues), **held()}.items() if count}
        except (OSError, pika.exceptions.AMQPError) as exc:  # requests' errors are OSErrors too
            busy = {f"unreadable ({type(exc).__name__})": 1}
        if busy:
            quiet_since = None
        elif quiet_since is None:
            quiet_since = time.monotonic()
        elif time.monotonic() - quiet_since >= settle:
            return
        time.sleep(0.2)
    raise AssertionError(f"still busy after {timeout}s: {busy}\n{explain()}")


class _channel:
    def __init__(self, kit: BrokerKit) -> None:
        self._kit = kit

    def __enter__(self) -> pika.adapters.blocking_connection.BlockingChannel:
        self._connection = self._kit.connect()
        return self._connection.channel()

    def __exit__(self, *exc: object) -> None:
        self._connection.close()


def new_prefix() -> str:
    return f"t{uuid.uuid4().hex[:8]}."


def connected_publisher(broker: BrokerKit, name: str) -> Iterator[Publisher]:
    """For a fixture: a publisher on the test's topology, connected before the test and stopped after it."""
    publisher = Publisher(connection_parameters(broker.url, name=name), topology=broker.topology).start()
    assert publisher.wait_connected(10)
    yield publisher
    publisher.stop()
