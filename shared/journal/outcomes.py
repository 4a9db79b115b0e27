"""A stage's outcome (what the consumer loop logs for each message) as a journal decision: the wiring's one step.

The consumer loop already knows, for every message, the stage, outcome, reason, attempt, the ids the handler bound
to the log context (``event_id``, ``file_id``, ``invoice_id``) and the handler's details. This turns them into a
:class:`Decision`, taking from the details only the fields the journal keeps (never a body, never a secret).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from shared.journal.record import Decision

# Handler detail keys (shared.core.handling.Handled.details, as logged) -> the decision's field.
DETAIL_FIELDS = {
    "title": "title",
    "client": "client",
    "folder": "folder",
    "folder_id": "folder",
    "to": "manager",
    "manager": "manager",
    "pipeline_status": "pipeline_status",
    "status": "pipeline_status",
    "rule": "rule",
}
ID_FIELDS = ("event_id", "file_id", "invoice_id")


@dataclass(frozen=True)
class Repeats:
    """How often the message came back without a new attempt: parked (``deferrals``), replayed by an operator."""

    deferrals: int = 0
    replays: int = 0


NO_REPEATS = Repeats()


def stage_decision(
    stage: str,
    outcome: str,
    reason: str | None,
    *,
    attempt: int,
    ids: Mapping[str, Any],
    details: Mapping[str, Any],
    now: datetime,
    repeats: Repeats = NO_REPEATS,
) -> Decision:
    """The decision one message's outcome records; ``repeats`` tells apart each parking at the same attempt, and
    the decisions made again after an operator's replay."""
    fields: dict[str, Any] = {key: str(ids[key]) for key in ID_FIELDS if ids.get(key) is not None}
    for key, field in DETAIL_FIELDS.items():
        value = details.get(key)
        if value is not None and field not in fields:
            fields[field] = value if field == "pipeline_status" and isinstance(value, int) else str(value)
    if "pipeline_status" in fields and not isinstance(fields["pipeline_status"], int):
        del fields["pipeline_status"]  # a status that is not a number is not one the journal can show
    delay = details.get("deferred_s")
    if outcome == "deferred" and isinstance(delay, int | float):
        fields["parked_until"] = now + timedelta(seconds=float(delay))
    return Decision.make(
        stage,
        outcome,
        at=now,
        occurrence=repeats.deferrals if outcome == "deferred" else 0,
        replay=repeats.replays,
        reason=reason,
        attempt=attempt,
        **fields,
    )
