"""The consumer loop every stage runs: worker threads, acks after the outcome is safe, retries and dead letters.

Stage code never sees pika: it gets an ``InboundMessage`` (``shared/core/handling.py``) and either returns what it
did, or raises ``TransientError`` (the message goes up the retry ladder: a delay queue in the broker, then back),
``PermanentError`` (straight to the stage's dead-letter queue, with the reason in its headers) or ``Deferred``
(not a failure: it waits in the stage's parking queue for the time asked, then comes back at the same attempt).
``StoreOutage`` (our own store is away) is waited out the same way, bounded by ``Patience.store_outage_max_wait``.
Anything else is a bug: its traceback is logged and the message is dead-lettered with reason ``bug``. A retry,
parking or dead letter that cannot be published for what it is (not because the broker is away) is logged with the
message's ids, and the message is rejected to the work queue's own dead-lettering instead.

Where a failed or deferred message goes, with which headers and after which delay, is decided by the pure
``follow_ups`` module; this loop only publishes the ``FollowUp`` it returns.

Once a message is settled, its outcome becomes one decision in the journal (``Reporting.journal``): published
without waiting, so a journal that cannot take it never holds the message up. A message given back to the broker
(``requeued``) records nothing: it is decided again when it comes back.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial
from typing import Any, Literal

import pika
import structlog

from shared.broker.connection import CONNECTION_ERRORS, BrokerNodes
from shared.broker.follow_ups import KNOWN_FAILURES, MAX_ERROR_TEXT, RETRIES_EXHAUSTED, FollowUp, Routes, follow_up
from shared.broker.follow_ups import MAX_DEFERRALS as MAX_DEFERRALS  # named here too, as before the split
from shared.broker.follow_ups import STORE_OUTAGE_TOO_LONG as STORE_OUTAGE_TOO_LONG
from shared.broker.publisher import Publisher
from shared.broker.reconnecting import ReconnectingConsumer
from shared.broker.topology import StageQueues, Topology
from shared.core.errors import BrokerUnavailable, UnpublishableMessage
from shared.core.handling import Handled, Handler, InboundMessage, Outcome
from shared.core.headers import (
    ATTEMPT_HEADER,
    DEFERRALS_HEADER,
    DELIVERY_ID_HEADERS,
    ID_HEADERS,
    REPLAYS_HEADER,
    ROUTING_KEY_HEADER,
    SEQ_HEADER,
)
from shared.core.ids import small_count
from shared.core.outgoing import OutgoingMessage
from shared.journal.metrics import DROPPED
from shared.journal.outcomes import Repeats, stage_decision
from shared.journal.port import Journal, NoJournal

log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class Patience:
    """How long a stage waits: for its workers to finish at shutdown, and for its own store during an outage (it
    looks again every ``store_outage_recheck`` s, up to ``store_outage_max_wait`` s)."""

    shutdown_grace: float = 30.0
    store_outage_max_wait: float = 86_400.0  # STORE_OUTAGE_MAX_WAIT
    store_outage_recheck: float = 30.0  # short enough to resume soon after the store is back, not to hammer it


# How a worker settles a message with the broker: done with it, give it back, or reject it to the queue's own
# dead-letter exchange.
Settlement = Literal["ack", "requeue", "reject"]
OutcomeObserver = Callable[[str, str, str | None, float], None]  # stage, outcome (an Outcome value), reason, seconds


@dataclass(frozen=True)
class Reporting:
    """Who hears how each message ended: the metrics (``observe``) and the decision journal."""

    observe: OutcomeObserver | None = None
    journal: Journal = field(default_factory=NoJournal)


class StageConsumer(ReconnectingConsumer):
    """Consumes one stage's work queue with ``concurrency`` worker threads; reconnects by itself."""

    def __init__(
        self,
        params: pika.ConnectionParameters | BrokerNodes,
        *,
        topology: Topology,
        stage: str,
        handler: Handler,
        publisher: Publisher,
        concurrency: int = 4,
        reporting: Reporting | None = None,
        patience: Patience | None = None,
    ) -> None:
        super().__init__(params, stage=stage)
        self._topology = topology
        self.queues: StageQueues = topology.stage(stage)
        self._handler = handler
        self._publisher = publisher
        self._concurrency = concurrency
        self._reporting = reporting or Reporting()
        self._patience = patience or Patience()
        self._pool = ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix=f"{stage}-worker")
        self._in_flight: set[Future[None]] = set()
        self._in_flight_lock = threading.Lock()

    @property
    def in_flight(self) -> int:
        """Messages taken from the queue whose outcome is not yet decided (and acknowledged) by a worker."""
        with self._in_flight_lock:
            return len(self._in_flight)

    def run(self) -> None:
        """Consume until :meth:`stop`, then let the workers finish; raises TopologyMismatch (a bug to fix)."""
        super().run()
        self._pool.shutdown(wait=True)

    def _consume(self, connection: pika.BlockingConnection) -> None:
        channel = connection.channel()
        self._topology.ensure(channel)
        channel.basic_qos(prefetch_count=self._concurrency)
        tag = channel.basic_consume(self.queues.work, on_message_callback=partial(self._on_message, connection))
        self._connected.set()
        log.info("consumer_started", stage=self.queues.stage, queue=self.queues.work, concurrency=self._concurrency)
        while not self._stopping.is_set():
            connection.process_data_events(time_limit=0.25)
        # SIGTERM: take no more, let the workers finish what they hold, and let their acks reach the broker.
        channel.basic_cancel(tag)
        deadline = time.monotonic() + self._patience.shutdown_grace
        while self._busy() and time.monotonic() < deadline:
            connection.process_data_events(time_limit=0.1)
        connection.process_data_events(time_limit=0)
        log.info("consumer_stopped", stage=self.queues.stage, unfinished=len(self._in_flight))

    def _busy(self) -> bool:
        return self.in_flight > 0

    def _on_message(
        self,
        connection: pika.BlockingConnection,
        channel: Any,
        method: Any,
        properties: pika.BasicProperties,
        body: bytes,
    ) -> None:
        headers = dict(properties.headers or {})
        headers.pop(SEQ_HEADER, None)
        message = InboundMessage(
            body=body,
            routing_key=str(headers.get(ROUTING_KEY_HEADER, method.routing_key)),
            message_id=properties.message_id,
            headers=headers,
            redelivered=bool(method.redelivered),
            attempt=small_count(headers.get(ATTEMPT_HEADER)) or 1,  # a header anyone can set: never trusted to parse
        )
        settle = partial(self._settle_threadsafe, connection, channel, method.delivery_tag)
        future = self._pool.submit(self._work, message, properties, settle)
        with self._in_flight_lock:
            self._in_flight.add(future)
        future.add_done_callback(self._forget)

    def _forget(self, future: Future[None]) -> None:
        with self._in_flight_lock:
            self._in_flight.discard(future)

    def _settle_threadsafe(
        self, connection: pika.BlockingConnection, channel: Any, tag: int, settlement: Settlement
    ) -> None:
        def settle() -> None:
            if not channel.is_open:
                return  # the broker redelivers it; the stages are idempotent
            if settlement == "ack":
                channel.basic_ack(tag)
            else:
                channel.basic_nack(tag, requeue=settlement == "requeue")

        try:
            connection.add_callback_threadsafe(settle)
        except (RuntimeError, *CONNECTION_ERRORS):
            pass

    # ---- the worker thread ----------------------------------------------------------------------------------

    def _work(
        self, message: InboundMessage, properties: pika.BasicProperties, settle: Callable[[Settlement], None]
    ) -> None:
        structlog.contextvars.clear_contextvars()
        structlog.contextvars.bind_contextvars(stage=self.queues.stage, message_id=message.message_id)
        started = time.perf_counter()
        settlement: Settlement = "ack"
        try:
            outcome, reason, extra = self._outcome(message, properties)
        except BrokerUnavailable as exc:
            # The message could not be parked in a retry or dead-letter queue: give it back to the broker,
            # after a pause so a broker outage does not become a hot redelivery loop.
            outcome, reason, extra = Outcome.REQUEUED, exc.reason, {"error": str(exc)}
            settlement = "requeue"
            time.sleep(1)
        except Exception as exc:
            # Its retry, parking or dead letter cannot be published for what it is (a header pika cannot encode,
            # or a bug building it). Requeueing would only meet the same failure; reject it instead: the work
            # queue's own dead-lettering (at-least-once, with x-death) puts it, unchanged, in the stage's
            # dead-letter queue. Nothing is lost and nothing loops.
            outcome, reason, extra = self._unpublishable_follow_up(message, exc)
            settlement = "reject"
        settle(settlement)
        self._finish(message, outcome, reason, started, extra)

    def _unpublishable_follow_up(
        self, message: InboundMessage, exc: Exception
    ) -> tuple[Outcome, str | None, dict[str, Any]]:
        reason = exc.reason if isinstance(exc, UnpublishableMessage) else "bug"
        context = structlog.contextvars.get_contextvars()
        log.error(
            "follow_up_unpublishable",
            reason=reason,
            error=f"{type(exc).__name__}: {exc}"[:MAX_ERROR_TEXT],
            message_id=message.message_id,
            **{key: context[key] for key in ID_HEADERS if context.get(key) is not None},
            hint="rejected to the stage's dead-letter queue by the broker (x-death), without x-reason",
            exc_info=exc if reason == "bug" else None,
        )
        return Outcome.DEAD_LETTERED, reason, {"error": f"{type(exc).__name__}: {exc}"[:MAX_ERROR_TEXT]}

    def _outcome(
        self, message: InboundMessage, properties: pika.BasicProperties
    ) -> tuple[Outcome, str | None, dict[str, Any]]:
        try:
            handled = self._handler(message) or Handled()
            return handled.outcome, handled.reason, dict(handled.details)
        except Exception as exc:
            if not isinstance(exc, KNOWN_FAILURES):
                log.exception("handler_bug")
            # The ids the handler bound go on a dead letter, so an operator can find the invoice.
            ids = structlog.contextvars.get_contextvars()
            next_step = follow_up(exc, message, self._routes(), ids=ids, now=datetime.now(UTC))
        self._publish(message, properties, next_step)
        return next_step.outcome, next_step.reason, dict(next_step.details)

    def _finish(
        self, message: InboundMessage, outcome: Outcome, reason: str | None, started: float, extra: dict[str, Any]
    ) -> None:
        duration = time.perf_counter() - started
        level = log.warning if outcome in {Outcome.DEAD_LETTERED, Outcome.REQUEUED} else log.info
        level("message_handled", outcome=str(outcome), reason=reason, duration_ms=round(duration * 1000, 1), **extra)
        if self._reporting.observe is not None:
            self._reporting.observe(self.queues.stage, str(outcome), reason, duration)
        if outcome is not Outcome.REQUEUED:
            self._journal(message, outcome, reason, extra)

    def _journal(self, message: InboundMessage, outcome: Outcome, reason: str | None, extra: dict[str, Any]) -> None:
        """One decision for the journal; whatever goes wrong in making it is counted, never the message's problem."""
        try:
            context = structlog.contextvars.get_contextvars()
            ids = {key: context.get(key) for key in ID_HEADERS}
            for key, header in DELIVERY_ID_HEADERS.items():
                ids[key] = ids[key] or message.headers.get(header)
            details = dict(extra)
            if outcome is Outcome.DEAD_LETTERED and details.get("dead_letter_reason") == RETRIES_EXHAUSTED:
                # The dead-letter queue knows it by this reason (what `dlq replay --reason` selects by).
                details["rule"] = f"retry ladder spent after {message.attempt} attempts, last failure: {reason}"
                reason = RETRIES_EXHAUSTED
            # The deferrals header counts the parkings before this one: each parking is its own decision.
            repeats = Repeats(
                small_count(message.headers.get(DEFERRALS_HEADER)) or 0,
                small_count(message.headers.get(REPLAYS_HEADER)) or 0,
            )
            decision = stage_decision(
                self.queues.stage,
                str(outcome),
                reason,
                attempt=message.attempt,
                ids=ids,
                details=details,
                now=datetime.now(UTC),
                repeats=repeats,
            )
            self._reporting.journal.record(decision)
        except Exception as exc:
            # A journal must not raise; one that does (or a detail no decision can hold) costs a record, never
            # the message, which is settled already.
            DROPPED.labels("unrecordable").inc()
            log.warning("journal_record_unrecordable", error=f"{type(exc).__name__}: {exc}"[:300])

    def _routes(self) -> Routes:
        return Routes(
            queues=self.queues,
            dead_letter_exchange=self._topology.dead_letter_exchange,
            store_outage_max_wait=self._patience.store_outage_max_wait,
            store_outage_recheck=self._patience.store_outage_recheck,
        )

    def _publish(self, message: InboundMessage, properties: pika.BasicProperties, next_step: FollowUp) -> None:
        """Publish what ``follow_ups`` decided: a retried, parked or dead-lettered message is the original."""
        self._publisher.publish_and_wait(
            OutgoingMessage(
                exchange=next_step.exchange,
                routing_key=next_step.routing_key,
                body=message.body,
                message_id=message.message_id,
                content_type=properties.content_type or "application/octet-stream",
                headers=dict(next_step.headers),
                timestamp=properties.timestamp,
                type=properties.type,
                expiration_ms=next_step.expiration_ms,
            )
        )
        if next_step.outcome is Outcome.RETRIED:
            structlog.contextvars.bind_contextvars(retry_in_s=next_step.delay, next_attempt=message.attempt + 1)
