"""Connecting to RabbitMQ: parameters (one per cluster node), the topology declaration, its one fatal failure.

``AMQP_URL`` may list several nodes of one cluster, comma-separated. Every connection goes to the first node that
answers (pika's own multi-host support: a list of parameters), so a process fails over by itself when its node
dies. A comma inside a user name or password is written ``%2C``.
"""

from __future__ import annotations

import contextlib
import random
from collections.abc import Iterator, Sequence
from typing import Protocol

import pika
import pika.exceptions
from pydantic import SecretStr

from shared.broker.topology import Topology


class TopologyMismatch(RuntimeError):
    """The broker holds a queue or exchange with other arguments: a deployment bug, never retried."""


class TopologyRefused(TopologyMismatch):
    """The broker refused this user what the process does on connect (ACCESS_REFUSED): a deployment bug too."""


_ACCESS_REFUSED = 403
_PRECONDITION_FAILED = 406


def topology_failure(exc: pika.exceptions.ChannelClosedByBroker) -> TopologyMismatch | None:
    """The fatal meaning of a channel the broker closed while declaring, checking or consuming; None if retryable.

    A 404 (a passive check found a name missing) is retryable: ``invoice-pipeline topology`` may not have run yet.
    """
    if exc.reply_code == _PRECONDITION_FAILED:
        return TopologyMismatch(
            f"the broker refused the topology: {exc.reply_text}. A queue's arguments changed; "
            "give the changed queue a new name (see docs/architecture.md, 'Changing the topology')."
        )
    if exc.reply_code == _ACCESS_REFUSED:
        return TopologyRefused(
            f"the broker refused this user: {exc.reply_text}. A least-privilege user cannot declare the topology: "
            "set TOPOLOGY_DECLARE=passive and run `invoice-pipeline topology` as the administrator, or give the "
            "user the permissions docs/security.md lists for its process."
        )
    return None


@contextlib.contextmanager
def fatal_topology_failures() -> Iterator[None]:
    """Raise a channel the broker closed over the topology as its fatal meaning; any other closing goes on as it was."""
    try:
        yield
    except pika.exceptions.ChannelClosedByBroker as exc:
        fatal = topology_failure(exc)
        if fatal is not None:
            raise fatal from exc
        raise


# One or more nodes of one broker: pika's BlockingConnection takes the list as it is and tries each in turn.
BrokerNodes = Sequence[pika.ConnectionParameters]


def split_amqp_urls(amqp_url: str) -> list[str]:
    """The node URLs of a (possibly comma-separated) ``AMQP_URL``."""
    return [url.strip() for url in amqp_url.split(",") if url.strip()]


def connection_parameters(
    amqp_url: str,
    *,
    name: str,
    heartbeat: int = 30,
    blocked_connection_timeout: float = 30.0,
    rng: random.Random | None = None,
) -> list[pika.URLParameters]:
    """One set of parameters per node, starting at a random node so replicas spread over the cluster."""
    nodes = []
    for url in split_amqp_urls(amqp_url):
        params = pika.URLParameters(url)
        params.heartbeat = heartbeat
        params.blocked_connection_timeout = blocked_connection_timeout
        # One try per node and no pause between nodes: a dead node costs a refused connect, not seconds.
        params.connection_attempts = 1
        params.retry_delay = 0
        params.socket_timeout = 5
        params.client_properties = {"connection_name": name}
        nodes.append(params)
    if not nodes:
        raise ValueError("AMQP_URL names no broker node")
    start = (rng or random).randrange(len(nodes))  # load spreading, not cryptography
    return nodes[start:] + nodes[:start]


class BrokerSettings(Protocol):
    """What a process's settings say about its broker (``CommonSettings`` has all three)."""

    @property
    def amqp_url(self) -> SecretStr: ...
    @property
    def heartbeat(self) -> int: ...
    @property
    def blocked_connection_timeout(self) -> float: ...


def broker_nodes(settings: BrokerSettings, *, name: str) -> list[pika.URLParameters]:
    """The parameters every process and CLI command connects with; ``name`` shows in the broker's connection list."""
    return connection_parameters(
        settings.amqp_url.get_secret_value(),
        name=name,
        heartbeat=settings.heartbeat,
        blocked_connection_timeout=settings.blocked_connection_timeout,
    )


def node_names(nodes: pika.ConnectionParameters | BrokerNodes) -> str:
    """``host:port`` of each node, for log lines and errors (never the credentials)."""
    listed = [nodes] if isinstance(nodes, pika.ConnectionParameters) else list(nodes)
    return ", ".join(f"{params.host}:{params.port}" for params in listed)


def declare_topology(params: pika.ConnectionParameters | BrokerNodes, topology: Topology) -> None:
    """Declare (or, when passive, check) the whole topology over a short-lived connection.

    Raises TopologyMismatch on a 406, TopologyRefused on a 403; a missing name (404, passive) is retryable.
    """
    connection = pika.BlockingConnection(params)
    try:
        channel = connection.channel()
        with fatal_topology_failures():
            topology.ensure(channel)
    finally:
        if connection.is_open:
            connection.close()


def backoff_delay(attempt: int, *, base: float = 0.5, cap: float = 15.0) -> float:
    """Capped exponential backoff with full jitter, so restarted replicas do not reconnect in lockstep."""
    return random.uniform(0, min(cap, base * 2**attempt))  # noqa: S311 - jitter, not cryptography


CONNECTION_ERRORS = (
    pika.exceptions.AMQPConnectionError,
    pika.exceptions.AMQPChannelError,
    pika.exceptions.StreamLostError,
    ConnectionError,
    OSError,
)
