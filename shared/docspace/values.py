"""What the DocSpace client returns, and the tolerant readers that build it from DocSpace's DTOs."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from shared.core.ids import small_count
from shared.docspace.delivery import parse_datetime


@dataclass(frozen=True)
class FileInfo:
    """The facts about a file the pipeline uses, from ``GET /api/2.0/files/file/{id}``."""

    id: str
    title: str
    folder_id: str
    version: int
    extension: str
    size: int | None
    web_url: str | None
    uploaded_by: str | None
    uploaded_at: datetime | None
    root_folder_type: int | None
    updated_at: datetime | None = None


@dataclass(frozen=True)
class Room:
    """A DocSpace room (the first folder with a ``roomType`` on a folder's path).

    ``seen_at`` is when DocSpace last said so (the folder path read this answer came from): a folder can be moved
    to another room, so the mover checks how old the answer is before it acts on it. Not part of equality.
    """

    id: str
    title: str
    seen_at: datetime | None = field(default=None, compare=False)


@dataclass(frozen=True)
class MoveResult:
    """A confirmed move: ``confirmed_by`` is ``"operation"`` (its report) or ``"file_location"`` (a re-read).

    ``file`` is the moved file as DocSpace described it in that report or re-read (version, title, uploader):
    the mover names the invoice from it without reading the file again.
    """

    file_id: str
    folder_id: str
    confirmed_by: str
    file: FileInfo | None = None


def _sid(value: Any) -> str:
    return str(value).strip()


def _id_sort_key(value: str) -> tuple[int, int, str]:
    # Numeric ids compare as numbers so "the lowest id" is the same in every process.
    number = small_count(value, max_digits=19)
    return (0, number, "") if number is not None else (1, 0, value)


def _file_info(dto: dict[str, Any]) -> FileInfo:
    title = str(dto.get("title") or "")
    ext = dto.get("fileExst")
    if not isinstance(ext, str) or not ext:
        ext = os.path.splitext(title)[1]
    created_by = dto.get("createdBy")
    if not isinstance(created_by, dict):
        created_by = {}
    uploaded_by = created_by.get("displayName") or created_by.get("id")
    size = dto.get("pureContentLength")
    version = dto.get("version")
    rft = dto.get("rootFolderType")
    return FileInfo(
        id=_sid(dto.get("id")),
        title=title,
        folder_id=_sid(dto.get("folderId")) if dto.get("folderId") is not None else "",
        version=small_count(version) or 1,
        extension=ext.lower(),
        size=int(size) if isinstance(size, int) and not isinstance(size, bool) else None,
        web_url=dto.get("webUrl") or None,
        uploaded_by=str(uploaded_by) if uploaded_by else None,
        uploaded_at=parse_datetime(dto.get("created")),
        root_folder_type=rft if isinstance(rft, int) and not isinstance(rft, bool) else None,
        updated_at=parse_datetime(dto.get("updated")),
    )


@dataclass(frozen=True)
class WebhookConfig:
    """A webhook as ``GET settings/webhook`` describes it (its secret is never returned by DocSpace)."""

    id: str
    name: str
    uri: str
    enabled: bool
    ssl: bool
    triggers: int
    created_on: datetime | None
    last_success_on: datetime | None
    last_failure_on: datetime | None
    last_failure_content: str | None
    last_status: int | None  # status of the newest delivered log row; 0 when nothing was delivered yet


@dataclass(frozen=True)
class WebhookDelivery:
    """One row of the webhook delivery log; ``status`` 0 means no HTTP answer (pending or connection failure)."""

    id: str
    trigger: int
    created: datetime | None
    delivered: datetime | None
    status: int
    response: str


def _webhook_config(dto: dict[str, Any], status: Any) -> WebhookConfig:
    triggers = dto.get("triggers")
    return WebhookConfig(
        id=_sid(dto.get("id")),
        name=str(dto.get("name") or ""),
        uri=str(dto.get("uri") or ""),
        enabled=bool(dto.get("enabled", False)),  # left out when false (WhenWritingDefault)
        ssl=bool(dto.get("ssl", False)),
        triggers=small_count(triggers) or 0,
        created_on=parse_datetime(dto.get("createdOn")),
        last_success_on=parse_datetime(dto.get("lastSuccessOn")),
        last_failure_on=parse_datetime(dto.get("lastFailureOn")),
        last_failure_content=dto.get("lastFailureContent") or None,
        last_status=int(status) if isinstance(status, int) else None,
    )


def _webhook_delivery(dto: dict[str, Any]) -> WebhookDelivery:
    status = dto.get("status")
    trigger = dto.get("trigger")
    return WebhookDelivery(
        id=_sid(dto.get("id")),
        trigger=int(trigger) if isinstance(trigger, int) else 0,
        created=parse_datetime(dto.get("creationTime")),
        delivered=parse_datetime(dto.get("delivery")),
        status=int(status) if isinstance(status, int) else 0,
        response=str(dto.get("responsePayload") or ""),
    )
