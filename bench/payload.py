"""A signed, DocSpace-shaped 1 KiB webhook delivery for the load generator."""

from __future__ import annotations

from typing import Any

from ingress.signature import sign
from ops.test_event import sample_delivery

SECRET = "bench-Webhook-Secret!1"
SIZE = 1024


def delivery(file_id: int = 3358301, size: int = SIZE) -> bytes:
    """A ``file.created`` delivery padded (in the title) to exactly ``size`` bytes."""
    fields: dict[str, Any] = {
        "file_id": file_id,
        "folder_id": 6590431,
        "trigger": "file.created",
        "event_id": 141022,
        "created_on": "2026-09-18T08:14:02Z",
        "webhook": {"id": 2622, "name": "invoice-router", "url": "http://127.0.0.1/docspace/webhook"},
    }
    base = len(sample_delivery(title="", **fields))
    return sample_delivery(title="Invoice-" + "x" * max(size - base - len("Invoice-.pdf"), 0) + ".pdf", **fields)


def signature(body: bytes, secret: str = SECRET) -> str:
    return sign(body, secret)
