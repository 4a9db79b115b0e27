"""One process's DocSpace client: the transport, and the room directory and file operations on it.

Each role has its module: ``transport`` (HTTP, the rate limit, 429s, typed errors), ``rooms`` (which room holds a
folder), ``files`` (the stages' reads, folders and moves); ``DocSpaceClient`` builds them on one session and offers
their calls, so one object satisfies each stage's port.
"""

from __future__ import annotations

from dataclasses import dataclass

from pydantic import SecretStr

from shared.docspace.files import FILE_FIELDS, FileOperations
from shared.docspace.lookups import SharedLookups
from shared.docspace.rooms import DEFAULT_ROOM_TTL, ROOMS_ROOT_FOLDER_TYPE, RoomDirectory
from shared.docspace.transport import DocSpaceTransport, HttpOptions
from shared.docspace.values import (
    FileInfo,
    MoveResult,
    Room,
)
from shared.limits.rate_limit import Limiter

__all__ = ["FILE_FIELDS", "ROOMS_ROOT_FOLDER_TYPE", "DocSpaceClient", "LookupCaching"]


@dataclass(frozen=True)
class LookupCaching:
    """How long and how many folder -> room and Incoming-folder answers are remembered, and where replicas share
    them (Redis); ``ttl`` is ``ROOM_CACHE_TTL_SECONDS``."""

    size: int = 4096
    ttl: float = DEFAULT_ROOM_TTL
    shared: SharedLookups | None = None


class DocSpaceClient:
    """A thread-safe DocSpace client shared by a process's worker threads (see the module docstring)."""

    def __init__(
        self,
        base_url: str,
        api_key: str | SecretStr,
        *,
        http: HttpOptions | None = None,
        lookups: LookupCaching | None = None,
        move_deadline: float = 30.0,
        poll_interval: float = 0.25,
        poll_max_interval: float = 2.0,
        limiter: Limiter | None = None,
    ) -> None:
        lookups = lookups or LookupCaching()
        self.transport = DocSpaceTransport(base_url, api_key, http, limiter=limiter)
        self.rooms = RoomDirectory(self.transport, cache_size=lookups.size, ttl=lookups.ttl, shared=lookups.shared)
        self.files = FileOperations(
            self.transport,
            move_deadline=move_deadline,
            poll_interval=poll_interval,
            poll_max_interval=poll_max_interval,
            folder_ttl=lookups.ttl,
            shared=lookups.shared,
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

    def forget_folder(self, room_id: str | int, title: str = "Incoming") -> None:
        """Forget a remembered room folder DocSpace says is gone (``FileOperations.forget_folder``)."""
        self.files.forget_folder(room_id, title)

    def move_file(self, file_id: str | int, dest_folder_id: str | int, *, conflict: str = "Duplicate") -> MoveResult:
        """Move a file and confirm it landed (``FileOperations.move_file``)."""
        return self.files.move_file(file_id, dest_folder_id, conflict=conflict)

    def folder_title(self, folder_id: str | int) -> str:
        """A folder's title, proving the key can read it (``FileOperations.folder_title``)."""
        return self.files.folder_title(folder_id)

    def find_subfolder(self, room_id: str | int, title: str) -> str | None:
        """The room's subfolder ``title``, not created (``FileOperations.find_subfolder``)."""
        return self.files.find_subfolder(room_id, title)
