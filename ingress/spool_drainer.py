"""Drains the spool in order whenever the broker is up, and quarantines what cannot be published."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import replace

import structlog

from ingress.facts import CONTENT_TYPE, UNKNOWN_TRIGGER
from ingress.fields import fitting
from ingress.spool import Spool
from ingress.spool_format import Record
from shared.errors import BrokerUnavailable, MessageRefused, UnpublishableMessage
from shared.outgoing import OutgoingMessage

log = structlog.get_logger("ingress.spool")

# The broker closing the channel on a message fails every message in flight with it; a record refused this many
# times in a row, each time alone on the channel, is the one it refuses.
MAX_REFUSALS = 3


def publishable(message: OutgoingMessage, exchange: str) -> OutgoingMessage:
    """A spooled message as it is published now: to today's exchange, its AMQP fields fitted.

    A spool written by an earlier version may hold the request's own content type, or an id longer than AMQP
    allows; those are fixed here rather than quarantining an otherwise good delivery.
    """
    return replace(
        message,
        exchange=exchange,
        routing_key=fitting(message.routing_key) or UNKNOWN_TRIGGER,
        message_id=fitting(message.message_id),
        content_type=CONTENT_TYPE,
        headers={**message.headers, "x-spooled": True},
    )


class SpoolDrainer:
    """Publishes spooled deliveries, oldest first, one confirmed publish at a time, whenever the broker is up.

    A record the broker or pika refuses for what it is goes to quarantine; the thread itself survives any
    exception, and ``on_death`` hears of it if it ever stops otherwise.
    """

    def __init__(
        self,
        spool: Spool,
        *,
        publish_and_wait: Callable[[OutgoingMessage], None],
        is_connected: Callable[[], bool],
        exchange: str,
        idle_wait: float = 0.5,
        on_death: Callable[[BaseException], None] | None = None,
    ) -> None:
        self._spool = spool
        self._exchange = exchange
        self._publish = publish_and_wait
        self._is_connected = is_connected
        self._idle_wait = idle_wait
        self._on_death = on_death
        self._refused: tuple[int, int] = (-1, 0)  # (offset of the record, refusals in a row)
        self._stopping = threading.Event()
        self._wake = threading.Event()
        self._thread = threading.Thread(target=self._run, name="spool-drainer", daemon=True)

    def start(self) -> SpoolDrainer:
        self._thread.start()
        return self

    def wake(self) -> None:
        self._wake.set()

    def stop(self) -> None:
        self._stopping.set()
        self._wake.set()
        self._thread.join(5)

    def _run(self) -> None:
        try:
            while not self._stopping.is_set():
                self._step()
        except BaseException as exc:
            log.critical("spool_drainer_died", error=f"{type(exc).__name__}: {exc}", exc_info=exc)
            if self._on_death is not None:
                self._on_death(exc)

    def _step(self) -> None:
        try:
            record = self._spool.peek() if self._is_connected() else None
            if record is None:
                self._wake.wait(self._idle_wait)
                self._wake.clear()
                return
            self._publish_one(record)
        except Exception as exc:
            # A bug or a disk fault: say so, wait a little, try again. Never a hot loop, never a dead thread.
            log.error("spool_drain_failed", error=f"{type(exc).__name__}: {exc}", exc_info=exc)
            self._stopping.wait(1.0)

    def _publish_one(self, record: Record) -> None:
        try:
            self._publish(publishable(record.message, self._exchange))
        except UnpublishableMessage as exc:
            self._spool.quarantine(record, "unpublishable", str(exc))
            return
        except MessageRefused as exc:
            offset, count = self._refused
            count = count + 1 if offset == record.offset else 1
            self._refused = (record.offset, count)
            if count >= MAX_REFUSALS:
                self._spool.quarantine(record, "refused", str(exc))
            else:
                log.warning("spool_record_refused", error=str(exc), attempt=count, pending=self._spool.depth)
            return
        except BrokerUnavailable as exc:
            log.warning("spool_drain_paused", error=str(exc), pending=self._spool.depth)
            self._stopping.wait(1.0)
            return
        self._spool.confirm(record)
        if self._spool.depth == 0:
            log.info("spool_drained")
