"""The DocSpace adapter: a REST client true to DocSpace's real contract, its typed errors and its values."""

from shared.docspace.client import FILE_FIELDS, ROOMS_ROOT_FOLDER_TYPE, DocSpaceClient
from shared.docspace.errors import (
    DocSpaceAccessDenied,
    DocSpaceNotFound,
    DocSpaceRejected,
    DocSpaceUnavailable,
    InvalidDocSpaceId,
    MoveFailed,
    MoveReportLost,
    MoveSkipped,
    MoveUnconfirmed,
)
from shared.docspace.values import FileInfo, MoveResult, Room, WebhookConfig, WebhookDelivery

__all__ = [
    "FILE_FIELDS",
    "ROOMS_ROOT_FOLDER_TYPE",
    "DocSpaceAccessDenied",
    "DocSpaceClient",
    "DocSpaceNotFound",
    "DocSpaceRejected",
    "DocSpaceUnavailable",
    "FileInfo",
    "InvalidDocSpaceId",
    "MoveFailed",
    "MoveReportLost",
    "MoveResult",
    "MoveSkipped",
    "MoveUnconfirmed",
    "Room",
    "WebhookConfig",
    "WebhookDelivery",
]
