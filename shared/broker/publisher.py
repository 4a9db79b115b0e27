"""A thread-safe publisher: persistent, mandatory messages whose publisher confirms are pipelined on one channel.

One I/O thread owns a pika ``SelectConnection`` (pika is not thread-safe). Any thread calls :meth:`Publisher.publish`
and gets a ``Future`` that resolves when the broker confirms the message, or fails with ``BrokerUnavailable``
when the broker is down, blocked, nacks the message, returns it as unroutable, or does not confirm in time, and
with ``UnpublishableMessage`` when pika cannot encode that one message. Many requests' confirms are in flight at
once, so a slow confirm never holds up other publishers, and a message that cannot be sent fails only itself.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any

import pika
import pika.exceptions
import structlog
from pika.adapters.select_connection import SelectConnection
from pika.spec import Basic

from shared.broker.connection import CONNECTION_ERRORS, BrokerNodes, TopologyMismatch, backoff_delay, declare_topology
from shared.broker.frame_batching import BatchingConnection
from shared.broker.topology import Topology
from shared.core.errors import (
    BrokerUnavailable,
    MessageNacked,
    MessageRefused,
    MessageUnroutable,
    UnpublishableMessage,
)
from shared.core.headers import SEQ_HEADER
from shared.core.outgoing import OutgoingMessage

log = structlog.get_logger(__name__)

# What the broker answers (closing the channel) to a message it will not take for what it is: a header of the
# wrong type, a body over its max_message_size, a bad property.
_PRECONDITION_FAILED = 406
_MAX_ERROR_TEXT = 300


def properties(message: OutgoingMessage, seq: int) -> pika.BasicProperties:
    """The AMQP properties of ``message``, tagged with its publish sequence number on this channel."""
    return pika.BasicProperties(
        delivery_mode=pika.DeliveryMode.Persistent,
        expiration=str(message.expiration_ms) if message.expiration_ms is not None else None,
        content_type=message.content_type,
        message_id=message.message_id,
        timestamp=message.timestamp if message.timestamp is not None else int(time.time()),
        type=message.type,
        headers={**message.headers, SEQ_HEADER: seq},
    )


@dataclass
class _Pending:
    future: Future[None]
    deadline: float


class Publisher:
    """Publishes with confirms from any thread; reconnects by itself with capped, jittered backoff."""

    def __init__(
        self,
        params: pika.ConnectionParameters | BrokerNodes,
        *,
        topology: Topology | None = None,
        confirm_timeout: float = 10.0,
        max_in_flight: int = 20_000,
        on_death: Callable[[BaseException], None] | None = None,
    ) -> None:
        """``on_death`` is called (on the dying thread) if the I/O thread ever stops without being asked to.

        That is an unexpected exception, or a ``TopologyMismatch`` on any (re)connect (then ``fatal_error`` holds it).
        """
        # One node, or the nodes of a cluster: each connection goes to the next node in turn.
        self._nodes = [params] if isinstance(params, pika.ConnectionParameters) else list(params)
        self._node_index = 0
        self._topology = topology
        self._confirm_timeout = confirm_timeout
        self._max_in_flight = max_in_flight
        self._lock = threading.Lock()
        self._outbox: deque[tuple[OutgoingMessage, _Pending]] = deque()
        self._drain_scheduled = False
        self._pending: OrderedDict[int, _Pending] = OrderedDict()  # touched by the I/O thread only
        self._returned: dict[int, str] = {}
        self._seq = 0
        self._connection: BatchingConnection | None = None
        self._channel: Any = None
        self._ready = threading.Event()
        self._blocked = False
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._on_death = on_death
        self._refusal: str | None = None  # why the broker last closed the channel on a message, if it did
        self.fatal_error: TopologyMismatch | None = None
        self.died_of: BaseException | None = None

    # ---- public, any thread -------------------------------------------------------------------------------

    def start(self) -> Publisher:
        self._thread = threading.Thread(target=self._run, name="amqp-publisher", daemon=True)
        self._thread.start()
        return self

    def wait_connected(self, timeout: float) -> bool:
        return self._ready.wait(timeout)

    @property
    def is_connected(self) -> bool:
        return self._ready.is_set() and not self._blocked

    @property
    def is_alive(self) -> bool:
        """False once the I/O thread has died: nothing will be published again by this publisher."""
        return self.died_of is None

    def publish(self, message: OutgoingMessage) -> Future[None]:
        future: Future[None] = Future()
        if not self.is_connected:
            future.set_exception(BrokerUnavailable(self._unavailable_reason()))
            return future
        with self._lock:
            if len(self._outbox) >= self._max_in_flight:
                future.set_exception(BrokerUnavailable("too many messages waiting for the broker"))
                return future
            self._outbox.append((message, _Pending(future, time.monotonic() + self._confirm_timeout)))
            schedule = not self._drain_scheduled
            self._drain_scheduled = True
        if schedule:
            self._call_in_io_thread(self._drain)
        return future

    def publish_and_wait(self, message: OutgoingMessage, timeout: float | None = None) -> None:
        """Publish and block until confirmed; raises BrokerUnavailable (or a subclass) or UnpublishableMessage."""
        future = self.publish(message)
        try:
            future.result(timeout if timeout is not None else self._confirm_timeout + 1)
        except TimeoutError as exc:
            raise BrokerUnavailable("the broker did not confirm in time") from exc

    def stop(self, timeout: float = 5.0) -> None:
        self._stopping.set()
        self._call_in_io_thread(self._close_connection)
        if self._thread is not None:
            self._thread.join(timeout)

    # ---- the I/O thread -------------------------------------------------------------------------------------

    def _run(self) -> None:
        try:
            self._connect_and_serve()
        except TopologyMismatch as exc:
            # A deployment bug, found on any (re)connect: nothing will be published until someone renames the
            # queue, so it is a death like any other (no traceback: the text says what to do).
            self.fatal_error = exc
            log.critical("topology_mismatch", error=str(exc))
            self._die(exc)
        except BaseException as exc:
            # A bug (or a pika failure nobody foresaw) escaped the I/O loop. Say so loudly.
            log.critical("publisher_thread_died", error=_describe(exc), exc_info=exc)
            self._die(exc)

    def _die(self, exc: BaseException) -> None:
        """Fail every waiting publish and let the owner decide: the ingress turns not-ready and exits."""
        self.died_of = exc
        self._ready.clear()
        self._fail_everything(f"the publisher's I/O thread died: {_describe(exc)}")
        if self._on_death is not None:
            self._on_death(exc)

    def _connect_and_serve(self) -> None:
        attempt = 0
        untried = len(self._nodes)  # nodes left to try before backing off
        while not self._stopping.is_set():
            params = self._nodes[self._node_index % len(self._nodes)]
            self._node_index += 1
            untried -= 1
            try:
                if self._topology is not None:
                    declare_topology(params, self._topology)
                connection = BatchingConnection(
                    params,
                    on_open_callback=self._on_connection_open,
                    on_open_error_callback=self._on_connection_open_error,
                    on_close_callback=self._on_connection_closed,
                )
            except CONNECTION_ERRORS as exc:
                log.warning("broker_unreachable", error=str(exc) or type(exc).__name__, attempt=attempt)
            else:
                self._connection = connection
                connection.ioloop.start()  # runs until the connection closes
                self._connection = None
                if self._ready.is_set():
                    attempt = 0  # it was up: the next outage starts its backoff afresh
                    untried = len(self._nodes) - 1  # ... at once on the next node, if there is one
                self._ready.clear()
                refusal, self._refusal = self._refusal, None
                self._fail_everything(
                    "the broker connection was lost",
                    in_flight=MessageRefused(refusal) if refusal is not None else None,
                )
            if self._stopping.is_set():
                break
            if untried > 0:
                continue  # another node of the cluster may answer: try it without waiting
            untried = len(self._nodes)
            self._stopping.wait(backoff_delay(attempt))
            attempt += 1
        self._fail_everything("the publisher is stopping")

    def _on_connection_open(self, connection: SelectConnection) -> None:
        connection.add_on_connection_blocked_callback(self._on_blocked)
        connection.add_on_connection_unblocked_callback(self._on_unblocked)
        connection.channel(on_open_callback=self._on_channel_open)

    def _on_connection_open_error(self, connection: SelectConnection, error: BaseException) -> None:
        log.warning("broker_connect_failed", error=str(error) or type(error).__name__)
        connection.ioloop.stop()

    def _on_connection_closed(self, connection: SelectConnection, reason: BaseException) -> None:
        if not self._stopping.is_set():
            log.warning("broker_connection_closed", reason=str(reason))
        connection.ioloop.stop()

    def _on_channel_open(self, channel: Any) -> None:
        self._channel = channel
        channel.add_on_close_callback(self._on_channel_closed)
        channel.add_on_return_callback(self._on_return)
        channel.confirm_delivery(ack_nack_callback=self._on_confirm, callback=self._on_confirm_mode)

    def _on_confirm_mode(self, _frame: Any) -> None:
        self._seq = 0
        self._blocked = False
        self._ready.set()
        log.info("publisher_connected")
        self._schedule_tick()
        self._drain()

    def _on_channel_closed(self, _channel: Any, reason: BaseException) -> None:
        # A closed channel leaves confirms unknowable: start over on a fresh connection.
        if not self._stopping.is_set():
            log.warning("publisher_channel_closed", reason=_describe(reason))
        if isinstance(reason, pika.exceptions.ChannelClosedByBroker) and reason.reply_code == _PRECONDITION_FAILED:
            self._refusal = f"the broker refused a message in flight: {_describe(reason)}"
        self._channel = None
        self._close_connection()

    def _on_blocked(self, _connection: Any, _frame: Any) -> None:
        log.warning("broker_blocked_publisher", hint="the broker hit a memory or disk alarm")
        self._blocked = True

    def _on_unblocked(self, _connection: Any, _frame: Any) -> None:
        log.info("broker_unblocked_publisher")
        self._blocked = False

    def _drain(self) -> None:
        with self._lock:
            batch = list(self._outbox)
            self._outbox.clear()
            self._drain_scheduled = False
        channel, connection = self._channel, self._connection
        if connection is None:
            for _message, pending in batch:
                _fail(pending, BrokerUnavailable(self._unavailable_reason()))
            return
        with connection.one_write():
            self._publish_batch(channel, batch)

    def _publish_batch(self, channel: Any, batch: list[tuple[OutgoingMessage, _Pending]]) -> None:
        for message, pending in batch:
            if channel is None or not channel.is_open or not self._ready.is_set():
                _fail(pending, BrokerUnavailable(self._unavailable_reason()))
                continue
            seq = self._seq + 1
            try:
                channel.basic_publish(
                    message.exchange,
                    message.routing_key,
                    message.body,
                    properties(message, seq),
                    mandatory=True,
                )
            except CONNECTION_ERRORS as exc:
                _fail(pending, BrokerUnavailable(f"publish failed: {exc}"))
                continue
            except Exception as exc:
                # pika could not encode this one message (ShortStringTooLong, struct.error, an unsupported header
                # type...). It marshals before it writes, so nothing was sent and the channel is intact: fail this
                # message alone and keep the thread, and every other message, going.
                log.error("message_unpublishable", message_id=_clip(message.message_id), error=_describe(exc))
                _fail(pending, UnpublishableMessage(f"the message cannot be encoded: {_describe(exc)}"))
                continue
            self._seq = seq
            self._pending[seq] = pending

    def _on_return(self, _channel: Any, method: Basic.Return, properties: Any, _body: bytes) -> None:
        seq = (properties.headers or {}).get(SEQ_HEADER)
        if isinstance(seq, int):
            self._returned[seq] = f"{method.reply_text} (exchange {method.exchange!r}, key {method.routing_key!r})"

    def _on_confirm(self, frame: Any) -> None:
        method = frame.method
        acked = isinstance(method, Basic.Ack)
        tags = [method.delivery_tag]
        if method.multiple:
            tags = []
            for seq in self._pending:
                if seq > method.delivery_tag:
                    break
                tags.append(seq)
        for seq in tags:
            pending = self._pending.pop(seq, None)
            returned = self._returned.pop(seq, None)
            if pending is None:
                continue
            if returned is not None:
                _fail(pending, MessageUnroutable(f"unroutable: {returned}"))
            elif not acked:
                _fail(pending, MessageNacked("the broker refused the message (nack)"))
            elif not pending.future.done():
                pending.future.set_result(None)

    def _schedule_tick(self) -> None:
        connection = self._connection
        if connection is not None:
            connection.ioloop.call_later(0.25, self._tick)

    def _tick(self) -> None:
        """Fail publishes the broker has not confirmed in time, so callers never wait forever."""
        now = time.monotonic()
        expired = [seq for seq, pending in self._pending.items() if pending.deadline < now]
        for seq in expired:
            _fail(self._pending.pop(seq), BrokerUnavailable("the broker did not confirm in time"))
            self._returned.pop(seq, None)
        if self._ready.is_set():
            self._schedule_tick()

    def _close_connection(self) -> None:
        connection = self._connection
        if connection is not None and not (connection.is_closing or connection.is_closed):
            connection.close()

    def _call_in_io_thread(self, callback: Any) -> None:
        connection = self._connection
        try:
            if connection is not None:
                connection.ioloop.add_callback_threadsafe(callback)
        except (RuntimeError, *CONNECTION_ERRORS):
            # The loop is gone; _run fails everything left in the outbox when it notices.
            pass

    def _fail_everything(self, reason: str, *, in_flight: BrokerUnavailable | None = None) -> None:
        """Fail every waiting publish with ``reason``; those already sent with ``in_flight`` when given."""
        with self._lock:
            batch = list(self._outbox)
            self._outbox.clear()
            self._drain_scheduled = False
        for _message, pending in batch:
            _fail(pending, BrokerUnavailable(reason))
        for pending in self._pending.values():
            _fail(pending, in_flight or BrokerUnavailable(reason))
        self._pending.clear()
        self._returned.clear()

    def _unavailable_reason(self) -> str:
        if self.fatal_error is not None:
            return str(self.fatal_error)
        if self.died_of is not None:
            return f"the publisher's I/O thread died: {_describe(self.died_of)}"
        if self._blocked:
            return "the broker is blocking publishers (resource alarm)"
        return "not connected to the broker"


def _fail(pending: _Pending, error: BaseException) -> None:
    if not pending.future.done():
        pending.future.set_exception(error)


def _describe(exc: BaseException) -> str:
    """The exception's type and text, clipped: pika puts the whole offending value in some messages."""
    return _clip(f"{type(exc).__name__}: {exc}") or type(exc).__name__


def _clip(text: str | None) -> str | None:
    if text is None or len(text) <= _MAX_ERROR_TEXT:
        return text
    return text[:_MAX_ERROR_TEXT] + f"... ({len(text)} characters)"
