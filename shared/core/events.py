"""The messages stages exchange: frozen, schema-versioned pydantic models that ignore unknown fields."""

from __future__ import annotations

from datetime import datetime
from typing import Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from shared.core.errors import PermanentError


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
    """The classifier found an invoice in a watched client room; the mover takes it from here.

    Version 2: decided from the signed delivery itself, the classifier knows the upload (``upload_id``) but
    not yet the file's version; the mover learns it from the move and names the invoice then. A detection made
    from a REST read of the file still carries ``version`` and ``invoice_id``. Upgrade movers before classifiers.
    """

    schema_version: Literal[1, 2] = 2
    invoice_id: str | None = Field(
        default=None, description="'<file id>:v<version>' when the classifier read the version, else None"
    )
    upload_id: str | None = Field(
        default=None, description="'<file id>@<payload.modifiedOn>': one upload, the same in both of its webhooks"
    )
    event_id: str | None = None
    trigger: str
    file_id: str
    version: int | None = None
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

    @model_validator(mode="after")
    def _names_its_work(self) -> InvoiceDetected:
        if not self.invoice_id and not self.upload_id:
            raise ValueError("an InvoiceDetected needs an invoice_id or an upload_id")
        return self

    @property
    def work_id(self) -> str:
        """What the mover claims: the invoice when its version is known, else the upload."""
        return self.invoice_id or f"upload:{self.upload_id}"


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


def upload_id_for(file_id: str, modified_on: str) -> str:
    """One upload before its version is known: both webhooks of it carry the same ``payload.modifiedOn``, and a
    new version changes it."""
    return f"{file_id}@{modified_on}"


class InvalidMessage(PermanentError):
    """A message on a work queue that is not the event the stage expects: dead-lettered, never retried."""

    reason = "invalid_message"


M = TypeVar("M", bound=Message)


def decode(model: type[M], body: bytes) -> M:
    try:
        return model.model_validate_json(body)
    except ValidationError as exc:
        raise InvalidMessage(f"not a valid {model.__name__}: {exc.error_count()} error(s): {exc}") from exc
