"""Fakes for the journal's port: a journal that remembers what it was given, and one that always fails quietly."""

from __future__ import annotations

import threading

from shared.journal.record import Decision


class RecordingJournal:
    """Implements ``shared.journal.port.Journal``: keeps every decision, in order, for a test to read."""

    def __init__(self) -> None:
        self.decisions: list[Decision] = []
        self._lock = threading.Lock()

    def record(self, decision: Decision) -> None:
        with self._lock:
            self.decisions.append(decision)

    def outcomes(self, stage: str | None = None) -> list[tuple[str, str, str | None]]:
        """``(stage, outcome, reason)`` of each decision (of ``stage`` only, when given)."""
        return [(d.stage, d.outcome, d.reason) for d in self.decisions if stage is None or d.stage == stage]


class DroppingJournal:
    """A journal whose broker is away: it counts what it drops and, like the real one, never raises."""

    def __init__(self) -> None:
        self.dropped = 0

    def record(self, decision: Decision) -> None:
        self.dropped += 1
