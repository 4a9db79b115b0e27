"""The reconciler's ports: what it asks DocSpace (the webhook, the delivery log, the rooms) and how it announces."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Protocol

from consumers.reconciler.model import Announcement
from shared.docspace.values import WebhookConfig
from shared.docspace.webhooks import PAGE_SIZE, ListedFile, LoggedDelivery, UnreadableRow

# Puts an announcement on ``docspace.events`` (``consumers.reconciler.announce``; a list in the tests).
Announce = Callable[[Announcement], None]


class WebhookAdmin(Protocol):
    """The pipeline's webhook on the portal: list them, enable one."""

    def list_webhooks(self) -> list[WebhookConfig]: ...
    def enable_webhook(self, config: WebhookConfig) -> WebhookConfig: ...


class DeliveryLog(Protocol):
    """DocSpace's delivery log: one webhook's failed deliveries, newest first, a page at a time."""

    def failed_deliveries(
        self, config_id: str, *, start: int = 0, count: int = PAGE_SIZE
    ) -> Sequence[LoggedDelivery | UnreadableRow]: ...


class RoomListing(Protocol):
    """A room's files, its whole subtree, most recently changed first, a page at a time."""

    def files_by_date(
        self, folder_id: str, *, start: int = 0, count: int = PAGE_SIZE
    ) -> Sequence[ListedFile | UnreadableRow]: ...


class Portal(WebhookAdmin, DeliveryLog, RoomListing, Protocol):
    """Everything the reconciler asks DocSpace (``shared.docspace.admin.PortalAdmin``)."""
