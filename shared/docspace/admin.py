"""Webhook administration and room listing for the operator's command and the reconciler: register, list, find
and enable the pipeline's webhook, page its deliveries, and list a room's files newest first.

The calls ride on the process's ``DocSpaceTransport`` (its rate limiter, 429 handling and typed errors). The
webhook calls need an API key with a global scope (``settings/`` is outside DocSpace's scope map, contract §2.3);
the stages never make them. What they return, and the trigger table, are in ``webhooks`` (no HTTP).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from pydantic import SecretStr

from shared.core.ids import InvalidId, parse_id, small_count
from shared.docspace.delivery import parse_datetime
from shared.docspace.errors import DocSpaceUnavailable
from shared.docspace.transport import DocSpaceTransport, path_id
from shared.docspace.values import WebhookConfig, WebhookDelivery, _webhook_config, _webhook_delivery
from shared.docspace.webhooks import (
    FAILED_DELIVERIES,
    FILES_ONLY,
    PAGE_SIZE,
    ListedFile,
    LoggedDelivery,
    UnreadableRow,
)


class PortalAdmin:
    """The operator's and the reconciler's DocSpace calls, made through ``transport`` (and its rate limit)."""

    def __init__(self, transport: DocSpaceTransport) -> None:
        self._transport = transport

    def __repr__(self) -> str:
        return f"PortalAdmin({self._transport!r})"

    # --- the webhook ----------------------------------------------------------------------------------------

    def list_webhooks(self) -> list[WebhookConfig]:
        """``GET settings/webhook``: the webhooks this key can see, each with the status of its last delivery."""
        rows = self._transport.request("GET", "settings/webhook")
        rows = rows if isinstance(rows, list) else []
        return [
            _webhook_config(row["configs"], row.get("status"))
            for row in rows
            if isinstance(row, dict) and isinstance(row.get("configs"), dict)
        ]

    def create_webhook(
        self, *, name: str, uri: str, secret: SecretStr, triggers: int, ssl: bool, enabled: bool = True
    ) -> WebhookConfig:
        """``POST settings/webhook``. DocSpace HEAD-checks ``uri`` first and answers 400 when it is unreachable.

        ``triggers`` is a plain int bitmask (384 = file.created | file.uploaded); ``enabled`` is always sent,
        because DocSpace takes a missing value as false.
        """
        dto = self._transport.request(
            "POST",
            "settings/webhook",
            json={
                "name": name,
                "uri": uri,
                "secretKey": secret.get_secret_value(),
                "enabled": enabled,
                "ssl": ssl,
                "triggers": triggers,
            },
        )
        if not isinstance(dto, dict):
            raise DocSpaceUnavailable("DocSpace POST settings/webhook returned no webhook")
        return _webhook_config(dto, None)

    def webhook_deliveries(self, config_id: str | int, *, count: int = 20) -> list[WebhookDelivery]:
        """``GET settings/webhooks/log`` for one webhook, newest first (at most 100)."""
        rows = self._transport.request(
            "GET", "settings/webhooks/log", params={"configId": path_id(config_id), "count": max(1, min(count, 100))}
        )
        return [_webhook_delivery(row) for row in rows if isinstance(row, dict)] if isinstance(rows, list) else []

    def enable_webhook(self, config: WebhookConfig) -> WebhookConfig:
        """``PUT settings/webhook/enable``: DocSpace sends ``HEAD`` to the URL first and answers 400 ("webhook
        URL not available", ``DocSpaceRejected``) unless it gets a 2xx. The secret is not sent, so it stays."""
        dto = self._transport.request(
            "PUT",
            "settings/webhook/enable",
            json={
                "id": _numeric_or_text(path_id(config.id)),
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

    def failed_deliveries(
        self, config_id: str, *, start: int = 0, count: int = PAGE_SIZE
    ) -> list[LoggedDelivery | UnreadableRow]:
        """One page of the webhook's failed deliveries (not sent, 3xx, 4xx, 5xx), newest first.

        Failures are found by ``groupStatus``, never by ``deliveryFrom``/``deliveryTo``: those filter on the
        delivery time, which only successful rows have (contract §2.4). A row that cannot be read stays in the
        page as an ``UnreadableRow``, so the page's length still says where the next one starts.
        """
        return self._log_page(config_id, start=start, count=count, group_status=FAILED_DELIVERIES)

    def deliveries(
        self, config_id: str, *, start: int = 0, count: int = PAGE_SIZE
    ) -> list[LoggedDelivery | UnreadableRow]:
        """One page of all the webhook's deliveries (sent or not, any answer), newest first, with their bodies."""
        return self._log_page(config_id, start=start, count=count, group_status=None)

    def _log_page(
        self, config_id: str, *, start: int, count: int, group_status: int | None
    ) -> list[LoggedDelivery | UnreadableRow]:
        params: dict[str, Any] = {
            "configId": path_id(config_id),
            "count": max(1, min(count, PAGE_SIZE)),
            "startIndex": max(start, 0),
        }
        if group_status is not None:
            params["groupStatus"] = group_status
        rows = self._transport.request("GET", "settings/webhooks/log", params=params)
        rows = rows if isinstance(rows, list) else []
        return [_logged_delivery(row) for row in rows]

    # --- listing ------------------------------------------------------------------------------------------

    def files_by_date(
        self, folder_id: str, *, start: int = 0, count: int = PAGE_SIZE
    ) -> list[ListedFile | UnreadableRow]:
        """One page of every file in ``folder_id``'s whole subtree, most recently modified first.

        ``filterType=1`` with ``withSubFolders=true`` searches the subtree (contract §5); ``DateAndTime`` orders
        by modification time. An entry that cannot be read stays in the page as an ``UnreadableRow``.
        """
        content = self._transport.request(
            "GET",
            f"files/{quote(path_id(folder_id), safe='')}",
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
        return [_listed_file(f) for f in files] if isinstance(files, list) else []


def _numeric_or_text(value: str) -> int | str:
    return int(value) if value.isdigit() else value


def _logged_delivery(row: object) -> LoggedDelivery | UnreadableRow:
    # small_count, not int(): "²".isdigit() is true and int() of a 5,000-digit string raises (shared.core.ids).
    log_id = small_count(row.get("id")) if isinstance(row, dict) else None
    if not isinstance(row, dict) or log_id is None:
        # Without an id a row cannot be checkpointed or told apart: not one DocSpace writes.
        return UnreadableRow("a delivery-log row without a readable id")
    payload = row.get("requestPayload")
    return LoggedDelivery(
        id=log_id,
        trigger=small_count(row.get("trigger")) or 0,  # 0 is no trigger: skipped as the wrong one
        created=parse_datetime(row.get("creationTime")),
        status=small_count(row.get("status")) or 0,
        request_payload=payload if isinstance(payload, str) else "",
    )


def _optional_id(value: object) -> str | None:
    # Only an id the scan may put into a delivery: it writes a numeric one back as a number.
    try:
        return parse_id(value) if value is not None else None
    except InvalidId:
        return None


def _user_id(value: Any) -> str | None:
    return str(value["id"]) if isinstance(value, dict) and value.get("id") else None


def _listed_file(dto: object) -> ListedFile | UnreadableRow:
    """Unreadable when the entry's ids are not DocSpace ids: it could not be announced (the classifier refuses it)."""
    if not isinstance(dto, dict):
        return UnreadableRow("a listing entry that is not an object")
    try:
        file_id, folder_id = parse_id(dto.get("id")), parse_id(dto.get("folderId"))
    except InvalidId as exc:
        return UnreadableRow(f"a listing entry whose id is not a DocSpace id: {exc}")
    title = str(dto.get("title") or "")
    ext = dto.get("fileExst")
    if not isinstance(ext, str) or not ext:
        ext = "." + title.rsplit(".", 1)[-1] if "." in title else ""
    rft = dto.get("rootFolderType")
    return ListedFile(
        id=file_id,
        title=title,
        folder_id=folder_id,
        version=small_count(dto.get("version")) or 1,
        extension=ext.lower(),
        created=parse_datetime(dto.get("created")),
        updated=parse_datetime(dto.get("updated")),
        created_by=_user_id(dto.get("createdBy")),
        updated_by=_user_id(dto.get("updatedBy")),
        root_id=_optional_id(dto.get("rootFolderId")),
        root_folder_type=rft if isinstance(rft, int) and not isinstance(rft, bool) else None,
    )
