"""What the console's pages read and do, as plain callables: the same ops/ functions the CLI calls, wired once.

``console/__main__.py`` builds one from the environment; tests build one over their own broker and topology.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import structlog

from console.refresh import Refreshing
from ops.checkup import WriteQuota
from ops.dead_letters import DeadLetter, DeadLetterQueues, Decision, Sweep
from ops.doctor import Check
from ops.queues import StageQueue
from ops.today import Arrivals, Today
from shared.core.rules import Rules
from shared.docspace.values import WebhookDelivery
from shared.journal import record
from shared.journal.store import JournalStore

log = structlog.get_logger("console")

ACTIONS = {"replay": "replayed", "purge": "purged"}  # the journal's outcome word for each action


class Audit:
    """Every operator action: one structured log line, and (with a journal) one journal record per dead letter.

    ``publish`` sends a record to the journal's exchange and waits for the broker's confirm; when it fails the
    log line still names the user, and the page says the journal did not get it.
    """

    def __init__(self, publish: Callable[[record.Decision], None] | None = None) -> None:
        self._publish = publish

    def __call__(self, user: str, action: str, details: Mapping[str, Any], letters: Sequence[DeadLetter] = ()) -> bool:
        """Record the action; True when the journal has it (or there is no journal to tell)."""
        log.info("console_action", user=user, action=action, **details)
        if self._publish is None:
            return True
        occurrence = time.time_ns() // 1000  # the same letter replayed twice is two actions, not a duplicate
        records = [
            record.Decision.make(
                d.stage,
                ACTIONS[action],
                occurrence=occurrence,
                reason=d.reason,
                file_id=d.file_id,
                invoice_id=d.invoice_id,
                event_id=d.event_id,
                actor=user,
                process="console",
                attempt=0,
            )
            for d in letters
        ] or [
            record.Decision.make(
                str(details.get("stage", "console")),
                ACTIONS[action],
                occurrence=occurrence,
                reason=f"{details.get('count', 0)} dead letter(s)",
                actor=user,
                process="console",
                attempt=0,
            )
        ]
        try:
            for decision in records:
                self._publish(decision)
        except Exception as exc:
            # The action is done; only its journal record is missing. The log line above is the audit then.
            log.warning("console_audit_not_journaled", user=user, action=action, error=f"{type(exc).__name__}")
            return False
        return True


@dataclass
class Sources:
    """Everything the pages show or change; each a function of ops/ (or a snapshot a thread keeps fresh)."""

    checks: Refreshing[list[Check]]
    queues: Callable[[], list[StageQueue]]
    last_run: Callable[[], dict[str, Any] | None]
    rules: Callable[[], tuple[Rules | None, Check]]
    dead_letters: DeadLetterQueues
    audit: Audit = field(default_factory=Audit)
    journal: JournalStore | None = None
    deliveries: Refreshing[tuple[list[WebhookDelivery], str]] | None = None
    docspace_url: str | None = None
    write_quota: Callable[[], WriteQuota] | None = None  # None: DocSpace is not configured here
    # Today's invoices per client, counted in the background: the count reads every decision of the day.
    arrivals: Refreshing[Arrivals] | None = None
    # Windows whose numbers sum too many rollups for a page to wait on (7 days: about 70,000), kept fresh likewise.
    counted_windows: dict[str, Refreshing[Today]] = field(default_factory=dict)
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
