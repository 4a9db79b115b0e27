"""The messages stages exchange: frozen, schema-versioned pydantic models that ignore unknown fields."""

from __future__ import annotations

from datetime import datetime
from typing import Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from shared.errors import PermanentError


class Message(BaseModel):
    """Base for every message on the broker: immutable, and tolerant of fields added by newer writers."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    def to_bytes(self) -> bytes:
        return self.model_dump_json().encode("utf-8")

    @classmethod
    def from_bytes(cls, raw: bytes) -> Message:
        return cls.model_validate_json(raw)


class IncomingFolder(BaseModel):
    """Where a client's invoices go: a known folder id, or a name to find or create in the room."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    id: str | None = None
    name: str = "Incoming"


class InvoiceDetected(Message):
    """The classifier found an invoice in a watched client room; the mover takes it from here."""

    schema_version: Literal[1] = 1
    invoice_id: str = Field(description="stable across duplicate deliveries: '<file id>:v<version>'")
    event_id: str | None = None
    trigger: str
    file_id: str
    version: int
    title: str
    extension: str
    size: int | None = None
    web_url: str | None = None
    uploaded_by: str | None = None
    uploaded_at: datetime | None = None
    folder_id: str
    client: str
    room_id: str
    room_title: str | None = None
    room_seen_at: datetime | None = Field(
        default=None, description="when DocSpace last placed folder_id in room_id (its folder path read)"
    )
    manager_email: str
    incoming: IncomingFolder
    already_in_incoming: bool = False
    delivered_at: datetime | None = Field(default=None, description="when the ingress accepted the delivery")
    detected_at: datetime


class InvoiceReceived(Message):
    """Public contract on the ``invoice.received`` exchange: an invoice sits in its client's Incoming folder.

    Carries no DocSpace ACL data. Readers must ignore unknown fields; a breaking change bumps
    ``schema_version``.
    """

    schema_version: Literal[1] = 1
    invoice_id: str
    event_id: str | None = None
    file_id: str
    title: str
    extension: str
    size: int | None = None
    client: str
    room_id: str
    room_title: str | None = None
    manager_email: str
    folder_id: str = Field(description="the Incoming folder the file now sits in")
    web_url: str | None = None
    uploaded_by: str | None = None
    uploaded_at: datetime | None = None
    moved_at: datetime
    delivered_at: datetime | None = Field(default=None, description="when the ingress accepted the delivery")


def invoice_id_for(file_id: str, version: int) -> str:
    """The semantic dedupe key: one upload (or re-upload as a new version) is one invoice."""
    return f"{file_id}:v{version}"


class InvalidMessage(PermanentError):
    """A message on a work queue that is not the event the stage expects: dead-lettered, never retried."""

    reason = "invalid_message"


M = TypeVar("M", bound=Message)


def decode(model: type[M], body: bytes) -> M:
    try:
        return model.model_validate_json(body)
    except ValidationError as exc:
        raise InvalidMessage(f"not a valid {model.__name__}: {exc.error_count()} error(s): {exc}") from exc
