"""What every consumer shares: run on the calling thread until stopped, and connect again after a lost connection."""

from __future__ import annotations

import contextlib
import threading
from abc import ABC, abstractmethod

import pika
import pika.exceptions
import structlog

from shared.broker.connection import CONNECTION_ERRORS, BrokerNodes, backoff_delay, fatal_topology_failures

log = structlog.get_logger(__name__)


class ReconnectingConsumer(ABC):
    """Connects, consumes in ``_consume`` and, when the connection is lost, connects again until :meth:`stop`.

    ``_consume`` sets ``_connected`` once it consumes (a connection that got that far starts the next outage's
    backoff afresh) and returns when ``_stopping`` is set; ``_lost`` forgets what was in hand on a lost
    connection. ``where`` names the consumer in the log lines.
    """

    def __init__(self, params: pika.ConnectionParameters | BrokerNodes, **where: str) -> None:
        self._params = params
        self._where = where
        self._stopping = threading.Event()
        self._connected = threading.Event()

    @property
    def is_connected(self) -> bool:
        return self._connected.is_set()

    def stop(self) -> None:
        """Finish (or give back) what is in hand and return from :meth:`run`; safe from a signal handler."""
        self._stopping.set()

    def run(self) -> None:
        """Consume until :meth:`stop`; raises TopologyMismatch (a bug to fix, not an outage to wait out)."""
        attempt = 0
        while not self._stopping.is_set():
            try:
                # Given a cluster's nodes, pika connects to the first that answers: failover is the next connect.
                connection = pika.BlockingConnection(self._params)
            except CONNECTION_ERRORS as exc:
                log.warning("broker_unreachable", **self._where, error=str(exc) or type(exc).__name__)
            else:
                try:
                    with fatal_topology_failures():
                        self._consume(connection)
                except pika.exceptions.ChannelClosedByBroker as exc:
                    log.warning("consumer_channel_closed", **self._where, reason=exc.reply_text)
                except CONNECTION_ERRORS as exc:
                    log.warning("consumer_connection_lost", **self._where, error=str(exc))
                finally:
                    if self._connected.is_set():
                        attempt = 0  # it was consuming: this outage starts its backoff afresh
                    self._connected.clear()
                    self._lost()
                    if connection.is_open:
                        with contextlib.suppress(*CONNECTION_ERRORS):
                            connection.close()
            if not self._stopping.is_set():
                self._stopping.wait(backoff_delay(attempt))
                attempt += 1

    @abstractmethod
    def _consume(self, connection: pika.BlockingConnection) -> None:
        """Consume on ``connection`` until it is lost or the consumer stops (each subclass: its own way)."""

    def _lost(self) -> None:  # noqa: B027 - an optional hook: only a consumer holding messages overrides it
        """Forget what was in hand on the lost connection: unacknowledged, the broker redelivers it."""
