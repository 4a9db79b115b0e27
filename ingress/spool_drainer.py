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
from shared.core.errors import BrokerUnavailable, MessageRefused, UnpublishableMessage
from shared.core.headers import DELIVERY_ID_HEADERS
from shared.core.outgoing import OutgoingMessage
from shared.journal.port import Journal, NoJournal
from shared.journal.record import Decision

log = structlog.get_logger("ingress.spool")

# A head record that fails this many times in a row for what it is (refused, or a bug in publishing it) is moved
# aside, so the deliveries behind it are not held up for good. One failure is no proof: the broker closing the
# channel on a message fails every message in flight with it; three in a row, each record alone on the channel, a
# second apart, are. A nack or an unroutable return is not about the record (the classifier's queue takes every
# routing key, and a nack is a queue refusing whatever comes): it is the broker's state, waited out like an outage,
# with the spool growing (and its alert firing) behind it, never a reason to move good deliveries aside.
MAX_HEAD_FAILURES = 3
# The spool itself failing this many steps in a row (reading the head, confirming it, or writing a quarantine) is a
# fault the drainer cannot work around: it dies, so the ingress turns not-ready and exits instead of answering
# 2xx into a spool that does not drain.
MAX_SPOOL_FAULTS = 5


class SpoolStuck(RuntimeError):
    """The spool failed step after step (a disk fault, a quarantine that cannot be written): draining has stopped."""


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

    A record the broker or pika refuses for what it is goes to quarantine; the thread survives any exception in
    publishing, and stops (``on_death`` hears of it) only when the spool itself keeps failing.
    """

    def __init__(
        self,
        spool: Spool,
        *,
        publish_and_wait: Callable[[OutgoingMessage], None],
        is_connected: Callable[[], bool],
        exchange: str,
        idle_wait: float = 0.5,
        failure_wait: float = 1.0,
        on_death: Callable[[BaseException], None] | None = None,
        journal: Journal | None = None,
    ) -> None:
        self._spool = spool
        self._journal = journal if journal is not None else NoJournal()
        self._exchange = exchange
        self._publish = publish_and_wait
        self._is_connected = is_connected
        self._idle_wait = idle_wait
        self._failure_wait = failure_wait
        self._on_death = on_death
        self._failures: tuple[int, int] = (-1, 0)  # (offset of the head record, its failures in a row)
        self._faults = 0  # steps in a row the spool itself failed
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
            else:
                self._publish_one(record)
        except Exception as exc:
            # A disk fault (or a bug) in the spool: say so, wait a little, try again; never a hot loop. If it goes
            # on, stop: a drainer spinning on its spool while the ingress answers 2xx would lose nothing but tell
            # nobody, and a restart (or an operator) can.
            self._faults += 1
            # The traceback once per run of faults: the same one again says nothing more.
            trace = exc if self._faults == 1 else None
            log.error("spool_drain_failed", error=f"{type(exc).__name__}: {exc}", attempt=self._faults, exc_info=trace)
            if self._faults >= MAX_SPOOL_FAULTS:
                raise SpoolStuck(f"the spool failed {self._faults} times in a row: {type(exc).__name__}") from exc
            self._stopping.wait(self._failure_wait)
        else:
            self._faults = 0

    def _publish_one(self, record: Record) -> None:
        try:
            self._publish(publishable(record.message, self._exchange))
        except UnpublishableMessage as exc:
            self._quarantine(record, "unpublishable", str(exc))
            return
        except MessageRefused as exc:
            self._failed(record, "refused", str(exc))
            return
        except BrokerUnavailable as exc:  # down, blocked, a nack, no binding: the broker's state, not the record's
            log.warning("spool_drain_paused", error=str(exc), pending=self._spool.depth)
            self._stopping.wait(self._failure_wait)
            return
        except Exception as exc:
            # A bug in publishing this one record: it gets the same few tries as a refusal, then quarantine,
            # so it never stands in front of every delivery behind it.
            log.error("spool_publish_failed", error=f"{type(exc).__name__}: {exc}", exc_info=exc)
            self._failed(record, "bug", f"{type(exc).__name__}: {exc}")
            return
        self._failures = (-1, 0)
        self._spool.confirm(record)
        self._record(record, "published", "from_spool", "the broker took it back from the spool")
        if self._spool.depth == 0:
            log.info("spool_drained")

    def _failed(self, record: Record, reason: str, error: str) -> None:
        """One more failure of the head record for what it is: quarantine it after ``MAX_HEAD_FAILURES`` in a row."""
        offset, count = self._failures
        count = count + 1 if offset == record.offset else 1
        self._failures = (record.offset, count)
        if count >= MAX_HEAD_FAILURES:
            self._quarantine(record, reason, error)  # if this raises, the next step fails it again: see _step
            return
        log.warning("spool_record_failed", reason=reason, error=error, attempt=count, pending=self._spool.depth)
        self._stopping.wait(self._failure_wait)

    def _quarantine(self, record: Record, reason: str, error: str) -> None:
        self._spool.quarantine(record, reason, error)
        self._failures = (-1, 0)
        self._record(record, "quarantined", reason, error[:300])

    def _record(self, record: Record, outcome: str, reason: str, rule: str) -> None:
        """The record's decision for the journal, never waited for; a failure to make it is logged, not raised."""
        headers = record.message.headers or {}
        try:
            self._journal.record(
                Decision.make(
                    "ingress",
                    outcome,
                    reason=reason,
                    rule=rule,
                    event_id=_text(headers.get(DELIVERY_ID_HEADERS["event_id"])),
                    file_id=_text(headers.get(DELIVERY_ID_HEADERS["file_id"])),
                )
            )
        except Exception as exc:
            log.warning("journal_record_unrecordable", error=f"{type(exc).__name__}: {exc}"[:300])


def _text(value: object) -> str | None:
    return None if value is None else str(value)
