"""Connecting to RabbitMQ: connection parameters, the topology declaration, and its one fatal failure."""

from __future__ import annotations

import random

import pika
import pika.exceptions

from shared.topology import Topology


class TopologyMismatch(RuntimeError):
    """The broker holds a queue or exchange with other arguments: a deployment bug, never retried."""


def connection_parameters(
    amqp_url: str, *, name: str, heartbeat: int = 30, blocked_connection_timeout: float = 30.0
) -> pika.URLParameters:
    params = pika.URLParameters(amqp_url)
    params.heartbeat = heartbeat
    params.blocked_connection_timeout = blocked_connection_timeout
    params.connection_attempts = 1
    params.socket_timeout = 5
    params.client_properties = {"connection_name": name}
    return params


def declare_topology(params: pika.ConnectionParameters, topology: Topology) -> None:
    """Declare the whole topology over a short-lived connection; raise TopologyMismatch on a 406."""
    connection = pika.BlockingConnection(params)
    try:
        channel = connection.channel()
        try:
            topology.declare(channel)
        except pika.exceptions.ChannelClosedByBroker as exc:
            if exc.reply_code == 406:
                raise TopologyMismatch(
                    f"the broker refused the topology: {exc.reply_text}. A queue's arguments changed; "
                    "give the changed queue a new name (see README, 'Changing the topology')."
                ) from exc
            raise
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
