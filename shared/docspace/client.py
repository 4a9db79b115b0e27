"""One process's DocSpace client: the transport, and the room directory and file operations on it.

Each role has its module: ``transport`` (HTTP, the rate limit, 429s, typed errors), ``rooms`` (which room holds a
folder), ``files`` (the stages' reads, folders and moves); ``DocSpaceClient`` builds them on one session and offers
their calls, so one object satisfies each stage's port.
"""

from __future__ import annotations

from typing import Any

from pydantic import SecretStr

from shared.docspace.errors import DocSpaceUnavailable
from shared.docspace.files import FILE_FIELDS, FileOperations
from shared.docspace.rooms import ROOMS_ROOT_FOLDER_TYPE, RoomDirectory
from shared.docspace.transport import DocSpaceTransport, path_id
from shared.docspace.values import (
    FileInfo,
    MoveResult,
    Room,
    WebhookConfig,
    WebhookDelivery,
    _webhook_config,
    _webhook_delivery,
)
from shared.rate_limit import Limiter
from shared.retry_after import DEFAULT_MAX_PAUSE

__all__ = ["FILE_FIELDS", "ROOMS_ROOT_FOLDER_TYPE", "DocSpaceClient"]


class DocSpaceClient:
    """A thread-safe DocSpace client shared by a process's worker threads (see the module docstring)."""

    def __init__(
        self,
        base_url: str,
        api_key: str | SecretStr,
        *,
        timeout: tuple[float, float] = (3.05, 15.0),
        pool_size: int = 16,
        room_cache_size: int = 4096,
        move_deadline: float = 30.0,
        poll_interval: float = 0.25,
        poll_max_interval: float = 2.0,
        max_retry_after: float = 10.0,
        rate_limit_retries: int = 2,
        max_pause: float = DEFAULT_MAX_PAUSE,
        limiter: Limiter | None = None,
        user_agent: str | None = None,
    ) -> None:
        self.transport = DocSpaceTransport(
            base_url,
            api_key,
            timeout=timeout,
            pool_size=pool_size,
            max_retry_after=max_retry_after,
            rate_limit_retries=rate_limit_retries,
            max_pause=max_pause,
            limiter=limiter,
            user_agent=user_agent,
        )
        self.rooms = RoomDirectory(self.transport, cache_size=room_cache_size)
        self.files = FileOperations(
            self.transport,
            move_deadline=move_deadline,
            poll_interval=poll_interval,
            poll_max_interval=poll_max_interval,
        )
        self.base_url = self.transport.base_url
        self.shown_url = self.transport.shown_url  # for logs and messages: no userinfo or path

    def __repr__(self) -> str:
        return f"DocSpaceClient(base_url={self.shown_url!r})"

    def __enter__(self) -> DocSpaceClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.transport.close()

    def request(self, method: str, path: str, *, params: dict[str, Any] | None = None, json: Any = None) -> Any:
        """One call through this client's transport (``DocSpaceTransport.request``), for ``admin``."""
        return self.transport.request(method, path, params=params, json=json)

    # --- the stages' calls (ports: the classifier's FileFacts, the mover's FileMover) ----------------------

    def get_file(self, file_id: str | int) -> FileInfo:
        """Read a file's facts (``FileOperations.get_file``)."""
        return self.files.get_file(file_id)

    def find_room(self, folder_id: str | int) -> Room | None:
        """The room that holds ``folder_id``, or ``None`` (``RoomDirectory.find_room``)."""
        return self.rooms.find_room(folder_id)

    def find_or_create_folder(self, room_id: str | int, title: str = "Incoming") -> str:
        """The room's subfolder ``title``, created when missing (``FileOperations.find_or_create_folder``)."""
        return self.files.find_or_create_folder(room_id, title)

    def move_file(self, file_id: str | int, dest_folder_id: str | int, *, conflict: str = "Duplicate") -> MoveResult:
        """Move a file and confirm it landed (``FileOperations.move_file``)."""
        return self.files.move_file(file_id, dest_folder_id, conflict=conflict)

    def folder_title(self, folder_id: str | int) -> str:
        """A folder's title, proving the key can read it (``FileOperations.folder_title``)."""
        return self.files.folder_title(folder_id)

    def find_subfolder(self, room_id: str | int, title: str) -> str | None:
        """The room's subfolder ``title``, not created (``FileOperations.find_subfolder``)."""
        return self.files.find_subfolder(room_id, title)

    # --- operator calls: webhook management (used by the invoice-pipeline CLI) -----------------------------
    # Kept apart from the stage calls above: only the CLI uses them, and they need an API key with a global
    # scope (``*:read`` / ``*:write``) because ``settings/`` is not in DocSpace's scope map (contract §2.3).

    def list_webhooks(self) -> list[WebhookConfig]:
        """``GET settings/webhook``: the webhooks this key can see, each with the status of its last delivery."""
        rows = self.transport.request("GET", "settings/webhook")
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
        dto = self.transport.request(
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
        rows = self.transport.request(
            "GET", "settings/webhooks/log", params={"configId": path_id(config_id), "count": max(1, min(count, 100))}
        )
        return [_webhook_delivery(row) for row in rows if isinstance(row, dict)] if isinstance(rows, list) else []
