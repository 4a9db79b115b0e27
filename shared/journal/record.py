"""One decision about one file, as the journal keeps it: small, frozen, and with an id that makes it idempotent."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from datetime import UTC, datetime

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError, field_validator

SCHEMA_VERSION = 1


def decision_id(
    *,
    stage: str,
    outcome: str,
    reason: str | None,
    attempt: int,
    file_id: str | None,
    invoice_id: str | None,
    event_id: str | None,
    occurrence: int | str = 0,
) -> str:
    """The same decision about the same message gets the same id, however often a redelivery makes it again.

    ``occurrence`` tells apart decisions that repeat at one attempt on purpose (a message parked a second time, an
    operator's replay operation, a decision made again after an operator replayed the message: see
    :meth:`Decision.make`).
    """
    key = "\0".join(
        (stage, outcome, reason or "", str(attempt), file_id or "", invoice_id or "", event_id or "", str(occurrence))
    )
    return hashlib.sha256(key.encode()).hexdigest()[:32]


class Decision(BaseModel):
    """What a stage (or an operator) decided about a file, and why: nothing the manager's e-mail does not show.

    No file contents, no secrets, no message bodies: ids, words from the outcome vocabulary, and the few details
    an operator needs to act (the folder, whom it was e-mailed to, the pipeline's answer, how long it is parked).
    Readers ignore unknown fields, so a newer writer and an older reader can share a journal.
    """

    model_config = ConfigDict(frozen=True, extra="ignore")

    schema_version: int = SCHEMA_VERSION
    decision_id: str = Field(min_length=1, max_length=64)
    stage: str = Field(min_length=1, max_length=64, description="ingress, classifier, mover, notifier.email, ...")
    outcome: str = Field(
        min_length=1, max_length=64, description="a word of shared.core.handling.Outcome, or an action"
    )
    reason: str | None = Field(default=None, max_length=200)
    rule: str | None = Field(default=None, max_length=300, description="the rule that decided, in words")
    file_id: str | None = Field(default=None, max_length=100)
    invoice_id: str | None = Field(default=None, max_length=200)
    event_id: str | None = Field(default=None, max_length=200)
    title: str | None = Field(default=None, max_length=300)
    attempt: int = Field(default=1, ge=0)
    process: str = Field(default="", max_length=100)
    host: str = Field(default="", max_length=200)
    at: datetime
    client: str | None = Field(default=None, max_length=200)
    folder: str | None = Field(default=None, max_length=300)
    manager: str | None = Field(default=None, max_length=320)
    pipeline_status: int | None = None
    parked_until: datetime | None = None
    actor: str | None = Field(default=None, max_length=200, description="who, for an operator's action")
    operation: str | None = Field(
        default=None, max_length=64, description="an operator's action: its id, shared by all its records"
    )
    scope: str | None = Field(
        default=None, max_length=500, description="an operator's action: what it selected (or the queue), in words"
    )
    count: int | None = Field(default=None, ge=0, description="an operator's action: how many messages it affected")

    @field_validator("at", "parked_until")
    @classmethod
    def _aware(cls, value: datetime | None) -> datetime | None:
        # A time without an offset is UTC: every process and both stores compare instants, never wall clocks.
        if value is not None and value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value

    @classmethod
    def make(
        cls,
        stage: str,
        outcome: str,
        *,
        at: datetime | None = None,
        occurrence: int | str = 0,
        replay: int = 0,
        **fields: object,
    ) -> Decision:
        """A decision made now (or ``at``), its id derived from what identifies it; the journal adds the process.

        ``replay`` counts the operator's replays of the message: its attempts start afresh after one, so without it
        the decisions after a replay would be taken for the ones before it (and dropped as duplicates).
        """
        attempt = fields.get("attempt", 1)
        ident = decision_id(
            stage=stage,
            outcome=outcome,
            reason=_str_or_none(fields.get("reason")),
            attempt=attempt if isinstance(attempt, int) else 1,
            file_id=_str_or_none(fields.get("file_id")),
            invoice_id=_str_or_none(fields.get("invoice_id")),
            event_id=_str_or_none(fields.get("event_id")),
            # Only a replayed message's ids change: those of decisions never replayed stay what they were.
            occurrence=f"{occurrence}/replay-{replay}" if replay else occurrence,
        )
        return cls.model_validate(
            {**fields, "stage": stage, "outcome": outcome, "decision_id": ident, "at": at or _now()}
        )

    def to_bytes(self) -> bytes:
        return self.model_dump_json(exclude_none=True).encode()

    @classmethod
    def from_bytes(cls, body: bytes) -> Decision:
        """Raises ``pydantic.ValidationError`` (a ``ValueError``) for anything that is not a decision."""
        return cls.model_validate_json(body)


def _str_or_none(value: object) -> str | None:
    return None if value is None else str(value)


def _now() -> datetime:
    return datetime.now(UTC)


BATCH_SCHEMA_VERSION = 1
_RECORDS = TypeAdapter(list[Decision])


def batch_to_bytes(decisions: Sequence[Decision], *, process: str, host: str) -> bytes:
    """Many records in one journal message: ``{"process", "host", "records": [...]}``.

    ``process`` and ``host`` are said once for the whole batch and fill in every record that names neither, so a
    stage's record needs no copy to carry them.
    """
    head = json.dumps({"batch_version": BATCH_SCHEMA_VERSION, "process": process, "host": host})
    records = _RECORDS.dump_json(list(decisions), exclude_none=True)
    return b"".join((head[:-1].encode(), b', "records": ', records, b"}"))


def decisions_from_bytes(body: bytes) -> tuple[list[Decision], int]:
    """The decisions one journal message holds, a single record or a batch, and how many of its records it could not
    read: a batch's bad record costs only itself."""
    try:
        data = json.loads(body)
    except ValueError:
        return [], 1
    if not isinstance(data, dict):
        return [], 1
    if "records" not in data:
        try:
            return [Decision.model_validate(data)], 0
        except ValidationError:
            return [], 1
    records = data["records"]
    if not isinstance(records, list):
        return [], 1
    stamp = {key: data[key] for key in ("process", "host") if isinstance(data.get(key), str)}
    decisions: list[Decision] = []
    bad = 0
    for record in records:
        if not isinstance(record, dict):
            bad += 1
            continue
        for key, value in stamp.items():
            if not record.get(key):
                record[key] = value
        try:
            decisions.append(Decision.model_validate(record))
        except ValidationError:
            bad += 1
    return decisions, bad
