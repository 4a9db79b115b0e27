"""Collects the processes' JSON log lines so the demo (and the end-to-end tests) can ask what happened."""

from __future__ import annotations

import json
import threading
from typing import Any

# What a consuming process logs once it consumes: a stage's consumer loop, or the journal writer's batch consumer.
STARTED = frozenset({"consumer_started", "batch_consumer_started"})


class LogCollector:
    """Every JSON line each process printed, parsed; other lines are kept raw."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.records: list[tuple[str, dict[str, Any]]] = []
        self.raw: list[tuple[str, str]] = []

    def add(self, process: str, line: str) -> None:
        with self._lock:
            self.raw.append((process, line))
            try:
                record = json.loads(line)
            except ValueError:
                return
            if isinstance(record, dict):
                self.records.append((process, record))

    def events(self, process: str | None, event: str, **match: Any) -> list[dict[str, Any]]:
        with self._lock:
            return [
                record
                for name, record in self.records
                if (process is None or name == process)
                and record.get("event") == event
                and all(record.get(k) == v for k, v in match.items())
            ]

    def started(self) -> set[str]:
        with self._lock:
            return {name for name, record in self.records if record.get("event") in STARTED}

    def dump(self, last: int = 200) -> str:
        with self._lock:
            return "\n".join(f"[{name}] {line}" for name, line in self.raw[-last:])
