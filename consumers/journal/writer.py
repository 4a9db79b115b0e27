"""The journal writer's logic: decode a batch of messages, store their records idempotently, prune what retention
lets go."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta

import structlog

from shared.journal.metrics import DROPPED, WRITTEN
from shared.journal.record import Decision, decisions_from_bytes
from shared.journal.store import JournalStore, JournalUnavailable

log = structlog.get_logger(__name__)

PRUNE_CHUNK = 10_000  # decisions deleted per transaction, so a big backlog of old rows never holds the writer long


class JournalWriter:
    """What the batch consumer calls: :meth:`write` for each batch, :meth:`between_batches` when idle."""

    def __init__(
        self,
        store: JournalStore,
        *,
        retention: timedelta,
        batch_size: int = 500,
        prune_interval: float = 600.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._store = store
        self._retention = retention
        self._batch_size = batch_size
        self._prune_interval = prune_interval
        self._clock = clock
        self._next_prune = clock()  # prune once at start: a writer that was away may have much to let go
        self.store_answers = True

    def write(self, bodies: Sequence[bytes]) -> None:
        """Store the messages' records, ``batch_size`` a transaction; raises JournalUnavailable (the messages stay
        unacknowledged and come again: the records already stored are then duplicates, which the store ignores).

        A message is one record (as stages published before batching, and the console does) or a batch of them.
        """
        decisions: list[Decision] = []
        for body in bodies:
            read, bad = decisions_from_bytes(body)
            decisions += read
            if bad:
                # Not a record (a foreign publisher, a corrupted body): storing it is impossible, retrying useless.
                DROPPED.labels("undecodable").inc(bad)
                log.warning("journal_record_undecodable", size=len(body), records=bad)
        for start in range(0, len(decisions), self._batch_size):
            chunk = decisions[start : start + self._batch_size]
            try:
                new = self._store.insert(chunk)
            except JournalUnavailable:
                self.store_answers = False
                raise
            self.store_answers = True
            WRITTEN.inc(new)
            log.debug("journal_batch_written", records=len(chunk), new=new)

    def between_batches(self) -> None:
        """Prune one chunk when a pass is due; a full chunk keeps the pass going on the next idle moment."""
        now = self._clock()
        if now < self._next_prune:
            return
        cutoff = datetime.fromtimestamp(now, UTC) - self._retention
        try:
            deleted = self._store.prune(cutoff, batch=PRUNE_CHUNK)
        except JournalUnavailable as exc:
            self.store_answers = False
            log.warning("journal_prune_failed", error=str(exc)[:300])
            self._next_prune = now + min(60.0, self._prune_interval)
            return
        self.store_answers = True
        if deleted:
            log.info("journal_pruned", decisions=deleted, older_than=cutoff.isoformat(timespec="seconds"))
        if deleted < PRUNE_CHUNK:
            self._next_prune = now + self._prune_interval
