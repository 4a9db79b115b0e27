"""What the console's pages read and do, as plain callables: the same ops/ functions the CLI calls, wired once.

``console/__main__.py`` builds one from the environment; tests build one over their own broker and topology.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import structlog

from console.refresh import Refreshing
from ops.dead_letters import DeadLetter, DeadLetterQueues, Decision, Sweep
from ops.doctor import Check
from ops.queues import StageQueue
from shared.core.rules import Rules

log = structlog.get_logger("console")

Audit = Callable[[str, str, Mapping[str, Any]], None]


def log_audit(user: str, action: str, details: Mapping[str, Any]) -> None:
    """An operator's action as one structured log line: who did what to which dead letters."""
    log.info("console_action", user=user, action=action, **details)


@dataclass
class Sources:
    """Everything the pages show or change; each a function of ops/ (or a snapshot a thread keeps fresh)."""

    checks: Refreshing[list[Check]]
    queues: Callable[[], list[StageQueue]]
    last_run: Callable[[], dict[str, Any] | None]
    rules: Callable[[], tuple[Rules | None, Check]]
    dead_letters: DeadLetterQueues
    audit: Audit = log_audit
    docspace_url: str | None = None
    # One sweep at a time: two sweeps of one queue would interleave its messages (ops/dead_letters.py).
    sweep_lock: threading.Lock = field(default_factory=threading.Lock)

    def sweep(self) -> Sweep:
        def locked(
            stages: list[str], decide: Callable[[DeadLetter], Decision], _verb: str
        ) -> list[tuple[DeadLetter, Decision]]:
            with self.sweep_lock:
                done: list[tuple[DeadLetter, Decision]] = []
                for stage in stages:
                    done += self.dead_letters.sweep(stage, decide)
                return done

        return locked
