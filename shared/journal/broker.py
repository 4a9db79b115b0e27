"""The journal port over the broker: records go to the journal exchange in batches, with confirms; nobody waits.

:meth:`BrokerJournal.record` only appends to a buffer. A flusher thread publishes the buffer as one message of up
to ``max_records`` records once it holds that many or its oldest record has waited ``max_wait`` seconds, on the
process's one publisher (no connection of its own): one message and one confirm per batch instead of per record is
what keeps the journal's cost on a busy ingress small. A batch the broker does not take (down, blocked, queue full,
unroutable, not confirmed in time) is logged, and each of its records is counted in
``journal_records_dropped_total{reason="publish_failed"}``; the decisions it describes went on long before.
"""

from __future__ import annotations

import collections
import socket
import threading
import time
import uuid
from concurrent.futures import Future, wait
from dataclasses import dataclass
from typing import Protocol

import structlog

from shared.core.outgoing import OutgoingMessage
from shared.journal.metrics import DROPPED, PUBLISHED
from shared.journal.port import NoJournal
from shared.journal.record import Decision, batch_to_bytes

log = structlog.get_logger(__name__)

RECORD_TYPE = "JournalDecision"  # one record a message: what this journal published before batches, and the console
BATCH_TYPE = "JournalDecisions"  # a batch of records (shared.journal.record.batch_to_bytes)
BATCH_ROUTING_KEY = "batch"  # a batch mixes stages; the journal queue takes every key
CLOSE_TIMEOUT = 5.0  # seconds a stopping process waits for its last records' confirms


class Publishes(Protocol):
    """What the journal needs of the process's publisher (``shared.broker.publisher.Publisher``)."""

    def publish(self, message: OutgoingMessage) -> Future[None]: ...


@dataclass(frozen=True)
class Batching:
    """How records are gathered into messages."""

    max_records: int = 200  # records in one message, at most (about 100 KB)
    max_wait: float = 0.1  # seconds a record waits for company before its batch is published
    max_buffered: int = 50_000  # records waiting to be published, at most: past it a record is dropped and counted


@dataclass(frozen=True)
class _Sent:
    records: list[Decision]
    stages: collections.Counter[str]


class BrokerJournal:
    """Publishes decisions to ``exchange`` in batches on the process's one publisher; :meth:`close` when done."""

    def __init__(
        self,
        publisher: Publishes,
        exchange: str,
        *,
        process: str,
        host: str | None = None,
        batching: Batching | None = None,
    ) -> None:
        self._publisher = publisher
        self._exchange = exchange
        self._process = process
        self._host = host if host is not None else socket.gethostname()
        self._batching = batching or Batching()
        self._lock = threading.Lock()
        self._wake = threading.Condition(self._lock)
        self._buffer: list[Decision] = []
        self._first_at = 0.0  # when the oldest buffered record came (monotonic)
        self._closing = False
        self._sending = threading.Lock()  # one batch taken and handed to the publisher at a time: see flush()
        self._unsettled: dict[Future[None], _Sent] = {}
        self.dropped = 0  # records of this journal the broker did not take
        self._flusher = threading.Thread(target=self._flush_when_due, name="journal-flusher", daemon=True)
        self._flusher.start()

    def record(self, decision: Decision) -> None:
        """Buffer ``decision`` for the next batch; never raises, never waits for the broker."""
        with self._lock:
            closing = self._closing
            if not closing and len(self._buffer) < self._batching.max_buffered:
                self._buffer.append(decision)
                size = len(self._buffer)
                if size == 1:
                    self._first_at = time.monotonic()
                    self._wake.notify()  # the batch's clock starts
                elif size >= self._batching.max_records:
                    self._wake.notify()  # full: publish it now
                return
        if closing:
            # Stopping, the flusher gone: a late record (a consumer finishing its last message) goes on its own.
            self._send([decision])
        else:
            self._dropped([decision], OverflowError("the journal's buffer is full: the publisher cannot keep up"))

    def flush(self, timeout: float) -> int:
        """Publish what is buffered now and wait up to ``timeout`` s for every record so far to be confirmed; how
        many were not (dropped or late).

        For a short-lived process (the CLI's audit records) before it stops its publisher; the stages never wait.
        """
        self._send_buffered()
        with self._lock:
            pending = dict(self._unsettled)
        late = wait(pending, timeout).not_done if pending else set()
        return sum(len(pending[future].records) for future in late) + self.dropped

    def close(self, timeout: float = CLOSE_TIMEOUT) -> int:
        """Stop the flusher and :meth:`flush` what is left, before the publisher stops; what :meth:`flush` returns."""
        with self._lock:
            self._closing = True
            self._wake.notify()
        self._flusher.join(timeout)
        return self.flush(timeout)

    # ---- the flusher thread ----------------------------------------------------------------------------------

    def _flush_when_due(self) -> None:
        while True:
            with self._lock:
                while not self._buffer and not self._closing:
                    self._wake.wait()
                if self._closing:
                    return  # close() publishes what is left
                deadline = self._first_at + self._batching.max_wait
                while len(self._buffer) < self._batching.max_records and not self._closing:
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        break
                    self._wake.wait(remaining)
                # Woken by a full batch before the clock ran out: the records past it wait for their own company.
                full_only = time.monotonic() < deadline and not self._closing
            self._send_buffered(full_only=full_only)

    def _send_buffered(self, *, full_only: bool = False) -> None:
        # Taking the buffer and handing it to the publisher under one lock: once flush() holds it, every record
        # taken before is in _unsettled (or counted as dropped), so flush() waits for all of them.
        with self._sending:
            with self._lock:
                taken = len(self._buffer)
                if full_only:
                    taken -= taken % self._batching.max_records
                # What stays keeps the clock it started: it goes out no later than its oldest record's deadline.
                batch, self._buffer = self._buffer[:taken], self._buffer[taken:]
            step = self._batching.max_records
            for start in range(0, len(batch), step):
                self._send(batch[start : start + step])

    def _send(self, records: list[Decision]) -> None:
        try:
            message = OutgoingMessage(
                exchange=self._exchange,
                routing_key=BATCH_ROUTING_KEY,
                body=batch_to_bytes(records, process=self._process, host=self._host),
                message_id=uuid.uuid4().hex,
                type=BATCH_TYPE,
                # The oldest record's time: the writer's lag is the age of the oldest record it has not written.
                timestamp=int(min(d.at for d in records).timestamp()),
            )
            future = self._publisher.publish(message)
        except Exception as exc:
            # The journal must never be in the invoice's way, whatever goes wrong in it.
            self._dropped(records, exc)
            return
        with self._lock:
            self._unsettled[future] = _Sent(records, collections.Counter(d.stage for d in records))
        future.add_done_callback(self._settled)

    def _settled(self, future: Future[None]) -> None:
        # On the publisher's I/O thread: a dictionary look-up and a few counters, nothing more.
        with self._lock:
            sent = self._unsettled.pop(future, None)
        if sent is None:
            return
        error = future.exception()
        if error is None:
            for stage, count in sent.stages.items():
                PUBLISHED.labels(stage).inc(count)
        else:
            self._dropped(sent.records, error)

    def _dropped(self, records: list[Decision], error: BaseException) -> None:
        with self._lock:
            self.dropped += len(records)
        DROPPED.labels("publish_failed").inc(len(records))
        log.warning(
            "journal_record_dropped",  # the name the alert and the docs give, though it may name many
            records=len(records),
            stages=dict(collections.Counter(d.stage for d in records)),
            decision_ids=[d.decision_id for d in records],
            file_ids=sorted({d.file_id for d in records if d.file_id is not None}),
            error=f"{type(error).__name__}: {error}"[:300],
        )


def process_journal(publisher: Publishes, exchange: str, *, process: str, enabled: bool) -> BrokerJournal | NoJournal:
    """A process's journal: a :class:`BrokerJournal` on its publisher, or none when ``JOURNAL_ENABLED=false``.

    Register its ``close`` to run before the publisher stops (``runtime.on_exit`` after the publisher's), so the
    last batch goes out.
    """
    if not enabled:
        return NoJournal()
    return BrokerJournal(publisher, exchange, process=process)
