"""The one delivery encoder: a file event's body as DocSpace sends it (contract §1.3), from its fields.

The room scan announces the invoices no delivery announced with it, and ``send-test-event`` (and the tests and
the benchmark, through it) builds its sample with it, so both speak the same wire shape: key order as on the
wire, a field left ``None`` left out (DocSpace leaves defaults out), compact UTF-8 JSON.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime

import orjson

from shared.docspace.webhooks import TRIGGER_BITS

FILE_ENTRY = 2  # ``fileEntryType`` of a file (a folder is 1)


@dataclass(frozen=True)
class FileDelivery:
    """The fields of one file delivery. Typed ``object`` where a test sends any JSON value on purpose."""

    event_id: object
    event_at: str  # ``event.createOn``
    trigger: object
    file_id: object
    folder_id: object
    title: object
    event_by: str | None = None  # ``event.createBy``: who acted
    root_id: object = None
    created_by: str | None = None
    modified_by: str | None = None
    created_on: str | None = None
    modified_on: str | None = None
    root_folder_type: int | None = None
    root_created_by: str | None = None
    entry_type: object = FILE_ENTRY
    webhook: dict[str, object] = field(default_factory=dict)  # the config that sent it; empty: none did


def encode_delivery(delivery: FileDelivery) -> bytes:
    """The body's bytes; raises ``orjson.JSONEncodeError`` for what no JSON can carry (a lone surrogate in a
    title). An integer beyond 64 bits is written as it is: the tests send one on purpose."""
    event: dict[str, object] = {"id": delivery.event_id, "createOn": delivery.event_at}
    if delivery.event_by is not None:
        event["createBy"] = delivery.event_by
    event["trigger"] = delivery.trigger
    if isinstance(delivery.trigger, str) and delivery.trigger in TRIGGER_BITS:
        event["triggerId"] = TRIGGER_BITS[delivery.trigger]
    payload: dict[str, object] = {
        "id": delivery.file_id,
        "parentId": delivery.folder_id,
        "securityByUsers": {},
        "folderIdDisplay": delivery.folder_id,
    }
    optional = {
        "rootId": delivery.root_id,
        "title": delivery.title,
        "createBy": delivery.created_by,
        "modifiedBy": delivery.modified_by,
        "createOn": delivery.created_on,
        "modifiedOn": delivery.modified_on,
        "rootFolderType": delivery.root_folder_type,
        "rootCreateBy": delivery.root_created_by,
        "fileEntryType": delivery.entry_type,
    }
    payload.update((key, value) for key, value in optional.items() if value is not None)
    return orjson.dumps(_wide({"event": event, "payload": payload, "webhook": delivery.webhook}))


def _wide(value: object) -> object:
    """``value`` with every integer orjson refuses (beyond 64 bits) as its literal digits."""
    if isinstance(value, dict):
        return {key: _wide(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_wide(item) for item in value]
    if isinstance(value, int) and not isinstance(value, bool) and not -(2**63) <= value < 2**64:
        return orjson.Fragment(str(value).encode("ascii"))
    return value


def wire_time(value: datetime) -> str:
    """A time as DocSpace writes it in a delivery: UTC, to the second."""
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def wire_id(value: str) -> int | str:
    """An id as DocSpace sends it: its own storage's ids are ints, a third-party room's are strings."""
    return int(value) if value.isascii() and value.isdigit() else value
