"""Webhook administration and room listing on the client's transport: find and enable the pipeline's webhook,
page its failed deliveries, and list a room's files newest first.

The calls ride on ``DocSpaceClient.request`` (its rate limiter, 429 handling and typed errors). The webhook
calls need an API key with a global scope (``settings/`` is outside DocSpace's scope map, contract §2.3).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import quote

from shared.delivery import parse_datetime
from shared.docspace.client import DocSpaceClient
from shared.docspace.errors import DocSpaceUnavailable
from shared.docspace.transport import path_id as _path_id
from shared.docspace.values import WebhookConfig, _sid, _webhook_config
from shared.ids import InvalidId, parse_id

# WebhookTrigger flags (contract §2.1): the log reports a delivery's trigger as one of these integers.
FILE_CREATED = 128
FILE_UPLOADED = 256
# The two triggers that can carry a new invoice; file.updated etc. would only be ignored by the classifier.
INVOICE_TRIGGERS = FILE_CREATED | FILE_UPLOADED  # 384

TRIGGER_NAMES = {
    1: "user.created", 2: "user.invited", 4: "user.updated", 8: "user.deleted",
    16: "group.created", 32: "group.updated", 64: "group.deleted",
    128: "file.created", 256: "file.uploaded", 512: "file.updated", 1024: "file.trashed", 2048: "file.deleted",
    4096: "file.restored", 8192: "file.copied", 16384: "file.moved",
    32768: "folder.created", 65536: "folder.updated", 131072: "folder.trashed", 262144: "folder.deleted",
    524288: "folder.restored", 1048576: "folder.copied", 2097152: "folder.moved",
    4194304: "room.created", 8388608: "room.updated", 16777216: "room.archived", 33554432: "room.deleted",
    67108864: "room.restored", 134217728: "room.copied",
    268435456: "form.submit", 536870912: "form.filled.out", 1073741824: "form.stopped",
    2147483648: "agent.created", 4294967296: "agent.updated", 8589934592: "agent.deleted",
    17179869184: "file.downloaded", 34359738368: "folder.downloaded",
}  # fmt: skip
TRIGGER_BITS = {name: bit for bit, name in TRIGGER_NAMES.items()}

# groupStatus flags of the delivery log (contract §2.4): NotSent = 1 (status 0), 4xx = 8, 5xx = 16.
FAILED_DELIVERIES = 1 | 8 | 16  # 25
PAGE_SIZE = 100  # the most DocSpace returns per page (log and folder contents alike)
FILES_ONLY = 1  # filterType


def trigger_names(mask: int) -> list[str]:
    """``384`` -> ``["file.created", "file.uploaded"]``; 0 means every trigger."""
    if mask == 0:
        return ["* (all)"]
    return [name for bit, name in TRIGGER_NAMES.items() if mask & bit]


def triggers_mask(names: Iterable[str]) -> int:
    """``["file.created", "file.uploaded"]`` -> ``384``; names DocSpace does not have are left out."""
    mask = 0
    for name in names:
        mask |= TRIGGER_BITS.get(name, 0)
    return mask


def register_command(url: str | None = None) -> str:
    """The command that registers the webhook again; it makes a new secret, which the ingress must get too."""
    return f"invoice-pipeline docspace register-webhook --url {url or 'https://<public host>/docspace/webhook'}"


def find_pipeline_webhook(
    configs: Iterable[WebhookConfig], *, path: str, url: str | None = None, config_id: str | None = None
) -> WebhookConfig | None:
    """The pipeline's webhook among the portal's: by id, else by URL, else the one whose URL ends in ``path``.

    Several candidates (an old registration left behind): an enabled one first, then the newest.
    """
    configs = list(configs)
    if config_id:
        return next((c for c in configs if c.id == str(config_id)), None)
    if url:
        candidates = [c for c in configs if c.uri.rstrip("/") == url.rstrip("/")]
    else:
        candidates = [c for c in configs if c.uri.rstrip("/").endswith(path)]
    if not candidates:
        return None
    return sorted(candidates, key=lambda c: (c.enabled, _numeric(c.id)), reverse=True)[0]


@dataclass(frozen=True)
class LoggedDelivery:
    """A row of the delivery log with what it takes to deliver it again: the exact body DocSpace last sent."""

    id: int
    trigger: int  # the WebhookTrigger flag (an integer in the log, unlike the body's trigger name)
    created: datetime | None
    status: int  # 0 = no HTTP answer (pending, or a connection failure); else the HTTP status, 500 for timeouts
    request_payload: str  # a JSON string; empty when DocSpace has not sent it yet


@dataclass(frozen=True)
class ListedFile:
    """A file as a folder listing describes it: enough to judge it and to describe it the way a webhook would."""

    id: str
    title: str
    folder_id: str
    version: int
    extension: str
    created: datetime | None
    updated: datetime | None
    created_by: str | None  # the uploader's user id
    updated_by: str | None
    root_id: str | None
    root_folder_type: int | None


class PortalAdmin:
    """The reconciler's DocSpace calls, made through ``client`` (and counted against its rate limit)."""

    def __init__(self, client: DocSpaceClient) -> None:
        self._client = client

    def __repr__(self) -> str:
        return f"PortalAdmin({self._client!r})"

    # --- the webhook ----------------------------------------------------------------------------------------

    def list_webhooks(self) -> list[WebhookConfig]:
        return self._client.list_webhooks()

    def enable_webhook(self, config: WebhookConfig) -> WebhookConfig:
        """``PUT settings/webhook/enable``: DocSpace sends ``HEAD`` to the URL first and answers 400 ("webhook
        URL not available", ``DocSpaceRejected``) unless it gets a 2xx. The secret is not sent, so it stays."""
        dto = self._client.request(
            "PUT",
            "settings/webhook/enable",
            json={
                "id": _numeric_or_text(_path_id(config.id)),
                "enabled": True,
                # [Required] on the DTO although enabling changes neither (contract §2.2).
                "name": config.name,
                "uri": config.uri,
                "ssl": config.ssl,
                "triggers": config.triggers,
            },
        )
        if not isinstance(dto, dict):
            raise DocSpaceUnavailable("DocSpace PUT settings/webhook/enable returned no webhook")
        return _webhook_config(dto, None)

    def failed_deliveries(self, config_id: str, *, start: int = 0, count: int = PAGE_SIZE) -> list[LoggedDelivery]:
        """One page of the webhook's failed deliveries (not sent, 4xx, 5xx), newest first.

        Failures are found by ``groupStatus``, never by ``deliveryFrom``/``deliveryTo``: those filter on the
        delivery time, which only successful rows have (contract §2.4).
        """
        rows = self._client.request(
            "GET",
            "settings/webhooks/log",
            params={
                "configId": _path_id(config_id),
                "groupStatus": FAILED_DELIVERIES,
                "count": max(1, min(count, PAGE_SIZE)),
                "startIndex": max(start, 0),
            },
        )
        rows = rows if isinstance(rows, list) else []
        return [d for d in (_logged_delivery(row) for row in rows if isinstance(row, dict)) if d is not None]

    # --- listing ------------------------------------------------------------------------------------------

    def files_by_date(self, folder_id: str, *, start: int = 0, count: int = PAGE_SIZE) -> list[ListedFile]:
        """One page of every file in ``folder_id``'s whole subtree, most recently modified first.

        ``filterType=1`` with ``withSubFolders=true`` searches the subtree (contract §5); ``DateAndTime`` orders
        by modification time.
        """
        content = self._client.request(
            "GET",
            f"files/{quote(_path_id(folder_id), safe='')}",
            params={
                "filterType": FILES_ONLY,
                "withSubFolders": "true",
                "sortBy": "DateAndTime",
                "sortOrder": "descending",
                "count": max(1, min(count, PAGE_SIZE)),
                "startIndex": max(start, 0),
            },
        )
        files = content.get("files") if isinstance(content, dict) else None
        listed = (_listed_file(f) for f in files if isinstance(f, dict)) if isinstance(files, list) else ()
        return [f for f in listed if f is not None]


def _numeric(value: str) -> int:
    return int(value) if value.isdigit() else -1


def _numeric_or_text(value: str) -> int | str:
    return int(value) if value.isdigit() else value


def _int(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().isdigit():
        return int(value)
    return None


def _logged_delivery(row: dict[str, Any]) -> LoggedDelivery | None:
    log_id = _int(row.get("id"))
    if log_id is None:
        return None  # a row without an id cannot be checkpointed or told apart: not one DocSpace writes
    payload = row.get("requestPayload")
    return LoggedDelivery(
        id=log_id,
        trigger=_int(row.get("trigger")) or 0,
        created=parse_datetime(row.get("creationTime")),
        status=_int(row.get("status")) or 0,
        request_payload=payload if isinstance(payload, str) else "",
    )


def _user_id(value: Any) -> str | None:
    return str(value["id"]) if isinstance(value, dict) and value.get("id") else None


def _listed_file(dto: dict[str, Any]) -> ListedFile | None:
    """None for an entry whose ids are not DocSpace ids: it could not be announced (the classifier refuses it)."""
    try:
        file_id, folder_id = parse_id(dto.get("id")), parse_id(dto.get("folderId"))
    except InvalidId:
        return None
    title = str(dto.get("title") or "")
    ext = dto.get("fileExst")
    if not isinstance(ext, str) or not ext:
        ext = "." + title.rsplit(".", 1)[-1] if "." in title else ""
    rft = dto.get("rootFolderType")
    return ListedFile(
        id=file_id,
        title=title,
        folder_id=folder_id,
        version=_int(dto.get("version")) or 1,
        extension=ext.lower(),
        created=parse_datetime(dto.get("created")),
        updated=parse_datetime(dto.get("updated")),
        created_by=_user_id(dto.get("createdBy")),
        updated_by=_user_id(dto.get("updatedBy")),
        root_id=_sid(dto.get("rootFolderId")) if dto.get("rootFolderId") is not None else None,
        root_folder_type=rft if isinstance(rft, int) and not isinstance(rft, bool) else None,
    )
