"""Builders for the pipeline's messages with sensible defaults: one acme invoice, overridable field by field."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from shared.core.events import IncomingFolder, InvoiceDetected, InvoiceReceived

# What both messages say about the same upload: one acme invoice in its room, bound for its Incoming folder.
_INVOICE: dict[str, Any] = {
    "invoice_id": "3358301:v1",
    "event_id": "141022",
    "file_id": "3358301",
    "title": "Invoice-2026-0917.pdf",
    "extension": ".pdf",
    "size": 52_113,
    "web_url": "https://docspace.example/doceditor?fileid=3358301",
    "uploaded_by": "Ann Uploader",
    "uploaded_at": datetime(2026, 9, 18, 8, 14, 2, tzinfo=UTC),
    "client": "acme",
    "room_id": "6590431",
    "room_title": "Acme Ltd",
    "manager_email": "ann@acme.example",
}


def invoice_detected(**overrides: Any) -> InvoiceDetected:
    """The classifier's event for a fresh upload at the room's top level."""
    fields: dict[str, Any] = {
        **_INVOICE,
        "trigger": "file.uploaded",
        "version": 1,
        "folder_id": "6590431",
        "incoming": IncomingFolder(id="6590500"),
        "already_in_incoming": False,
        "detected_at": datetime(2026, 9, 18, 8, 14, 5, tzinfo=UTC),
    }
    return InvoiceDetected(**{**fields, **overrides})


def invoice_received(**overrides: Any) -> InvoiceReceived:
    """The mover's announcement of that same invoice, now in the room's Incoming folder."""
    fields: dict[str, Any] = {
        **_INVOICE,
        "folder_id": "6590500",
        "moved_at": datetime(2026, 9, 18, 8, 14, 9, tzinfo=UTC),
    }
    return InvoiceReceived(**{**fields, **overrides})
