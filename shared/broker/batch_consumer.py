"""A consumer that takes messages in batches: up to ``batch_size`` or ``max_wait`` seconds, then one call, then one ack.

For a sink that writes many records per transaction (the journal writer). ``handle`` gets the batch's bodies and
returns once they are durably stored; only then is the batch acknowledged (one multiple-ack). When ``handle``
raises, nothing is acknowledged: the batch stays in hand and is offered again after a backoff, while the
connection keeps its heartbeats. A crash at any point leaves every unacknowledged message in the queue for the
next consumer, so the sink must be idempotent. pika stays here: the sink sees bytes.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import pika
import structlog

from shared.broker.connection import BrokerNodes, backoff_delay
from shared.broker.reconnecting import ReconnectingConsumer
from shared.broker.topology import Topology

log = structlog.get_logger(__name__)

BatchHandler = Callable[[Sequence[bytes]], None]


@dataclass(frozen=True)
class _Held:
    tag: int
    body: bytes
    timestamp: float  # when it was published (the AMQP timestamp), or when it arrived here if it has none


class BatchConsumer(ReconnectingConsumer):
    """Consumes one queue in batches on the calling thread; reconnects by itself until :meth:`stop`."""

    def __init__(
        self,
        params: pika.ConnectionParameters | BrokerNodes,
        *,
        topology: Topology,
        queue: str,
        handle: BatchHandler,
        batch_size: int = 500,
        max_wait: float = 0.2,
        between_batches: Callable[[], None] | None = None,
    ) -> None:
        super().__init__(params, queue=queue)
        self._topology = topology
        self._queue = queue
        self._handle = handle
        self._batch_size = batch_size
        self._max_wait = max_wait
        self._between_batches = between_batches
        self._held: list[_Held] = []
        self._held_lock = threading.Lock()
        self._failures = 0

    def oldest_held_age(self, now: float | None = None) -> float:
        """Seconds since the oldest message in hand was published; 0 when nothing waits to be written."""
        with self._held_lock:
            oldest = min((held.timestamp for held in self._held), default=None)
        return 0.0 if oldest is None else max(0.0, (now or time.time()) - oldest)

    def _lost(self) -> None:
        with self._held_lock:
            self._held.clear()  # unacknowledged: the broker redelivers them

    def _consume(self, connection: pika.BlockingConnection) -> None:
        channel = connection.channel()
        self._topology.ensure(channel)
        channel.basic_qos(prefetch_count=self._batch_size)
        channel.basic_consume(self._queue, on_message_callback=self._on_message)
        self._connected.set()
        log.info("batch_consumer_started", queue=self._queue, batch_size=self._batch_size)
        first_held_at: float | None = None
        retry_at = 0.0
        while not self._stopping.is_set():
            connection.process_data_events(time_limit=0.05)
            with self._held_lock:
                count = len(self._held)
            now = time.monotonic()
            if count == 0:
                first_held_at = None
                if self._between_batches is not None:
                    self._between_batches()
                continue
            first_held_at = first_held_at if first_held_at is not None else now
            due = count >= self._batch_size or now - first_held_at >= self._max_wait
            if due and now >= retry_at:
                retry_at = 0.0 if self._flush(channel) else now + backoff_delay(self._failures, base=0.5, cap=15.0)
                if retry_at == 0.0:
                    first_held_at = None
        # Stopping: one last try for the batch in hand, so a clean shutdown leaves nothing to redeliver.
        with self._held_lock:
            pending = bool(self._held)
        if pending:
            self._flush(channel)
        log.info("batch_consumer_stopped", queue=self._queue)

    def _on_message(self, _channel: Any, method: Any, properties: pika.BasicProperties, body: bytes) -> None:
        stamp = properties.timestamp
        with self._held_lock:
            self._held.append(_Held(method.delivery_tag, body, float(stamp) if stamp else time.time()))

    def _flush(self, channel: Any) -> bool:
        """Hand the held messages to ``handle``; ack them all once it returns. False when it raised."""
        with self._held_lock:
            batch = list(self._held)
        try:
            self._handle([held.body for held in batch])
        except Exception as exc:
            # The sink is away (a database outage) or refused the batch: keep it in hand, unacknowledged.
            self._failures += 1
            log.warning(
                "batch_not_written",
                queue=self._queue,
                size=len(batch),
                failures=self._failures,
                error=f"{type(exc).__name__}: {exc}"[:300],
            )
            return False
        self._failures = 0
        channel.basic_ack(batch[-1].tag, multiple=True)
        with self._held_lock:
            del self._held[: len(batch)]
        return True
