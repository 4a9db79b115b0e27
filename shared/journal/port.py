"""The port a stage records its decisions through: ``record(decision)``, which never fails and never waits."""

from __future__ import annotations

from typing import Protocol

from shared.journal.record import Decision


class Journal(Protocol):
    """Takes one decision for the journal. Must not raise and must not wait on a database or a broker confirm."""

    def record(self, decision: Decision) -> None: ...


class NoJournal:
    """The journal switched off: decisions are dropped on purpose (and so not counted as failures)."""

    def record(self, decision: Decision) -> None:
        return None

    def flush(self, timeout: float) -> int:
        return 0

    def close(self, timeout: float = 0.0) -> int:
        return 0
