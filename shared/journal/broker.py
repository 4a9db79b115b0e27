"""The journal port over the broker: records go to the journal exchange with confirms, and nobody waits for them.

A record the broker does not take (down, blocked, queue full, unroutable, not confirmed in time) is logged and
counted in ``journal_records_dropped_total{reason="publish_failed"}``; the decision it describes goes on.
"""

from __future__ import annotations

import socket
import threading
from concurrent.futures import Future, wait

import structlog

from shared.broker.publisher import Publisher
from shared.core.outgoing import OutgoingMessage
from shared.journal.metrics import DROPPED, PUBLISHED
from shared.journal.port import Journal, NoJournal
from shared.journal.record import Decision

log = structlog.get_logger(__name__)

RECORD_TYPE = "JournalDecision"


class BrokerJournal:
    """Publishes each decision to ``exchange`` (routing key: its stage) on the process's one publisher."""

    def __init__(self, publisher: Publisher, exchange: str, *, process: str, host: str | None = None) -> None:
        self._publisher = publisher
        self._exchange = exchange
        self._process = process
        self._host = host if host is not None else socket.gethostname()
        self._lock = threading.Lock()
        self._unsettled: set[Future[None]] = set()
        self.dropped = 0  # records of this journal the broker did not take

    def record(self, decision: Decision) -> None:
        stamped = decision.model_copy(
            update={"process": decision.process or self._process, "host": decision.host or self._host}
        )
        try:
            future = self._publisher.publish(
                OutgoingMessage(
                    exchange=self._exchange,
                    routing_key=stamped.stage,
                    body=stamped.to_bytes(),
                    message_id=stamped.decision_id,
                    type=RECORD_TYPE,
                    timestamp=int(stamped.at.timestamp()),
                )
            )
        except Exception as exc:
            # The journal must never be in the invoice's way, whatever goes wrong in it.
            self._count_dropped()
            _dropped(stamped, exc)
            return
        with self._lock:
            self._unsettled.add(future)
        future.add_done_callback(lambda done: self._settled(stamped, done))

    def flush(self, timeout: float) -> int:
        """Wait up to ``timeout`` s for every record so far to be confirmed; how many were not (dropped or late).

        For a short-lived process (the CLI's audit records) before it stops its publisher; the stages never wait.
        """
        with self._lock:
            pending = set(self._unsettled)
        late = len(wait(pending, timeout).not_done) if pending else 0
        return late + self.dropped

    def _settled(self, decision: Decision, future: Future[None]) -> None:
        with self._lock:
            self._unsettled.discard(future)
        error = future.exception()
        if error is None:
            PUBLISHED.labels(decision.stage).inc()
        else:
            self._count_dropped()
            _dropped(decision, error)

    def _count_dropped(self) -> None:
        with self._lock:
            self.dropped += 1


def process_journal(publisher: Publisher, exchange: str, *, process: str, enabled: bool) -> Journal:
    """A process's journal: a :class:`BrokerJournal` on its publisher, or none when ``JOURNAL_ENABLED=false``."""
    if not enabled:
        return NoJournal()
    return BrokerJournal(publisher, exchange, process=process)


def _dropped(decision: Decision, error: BaseException) -> None:
    DROPPED.labels("publish_failed").inc()
    log.warning(
        "journal_record_dropped",
        decision_id=decision.decision_id,
        stage=decision.stage,
        outcome=decision.outcome,
        file_id=decision.file_id,
        error=f"{type(error).__name__}: {error}"[:300],
    )
