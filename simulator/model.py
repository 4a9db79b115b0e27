"""The simulated portal's records and tree: folders, rooms, files, their ids, and the errors the API renders."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

# FolderType values (contract §4).
FT_DEFAULT, FT_USER, FT_VIRTUAL_ROOMS, FT_ARCHIVE = 0, 5, 14, 20
# RoomType (REST roomType) -> the FolderType of such a room (REST parentRoomType).
ROOM_FOLDER_TYPE = {1: 15, 2: 16, 5: 19, 6: 22, 8: 29, 9: 31}
FILE_TYPES = {
    ".pdf": 10, ".docx": 7, ".doc": 7, ".odt": 7, ".txt": 7, ".xlsx": 5, ".xls": 5, ".csv": 5, ".ods": 5,
    ".pptx": 6, ".ppt": 6, ".png": 4, ".jpg": 4, ".jpeg": 4, ".gif": 4, ".zip": 1, ".mp4": 2, ".mp3": 3,
}  # fmt: skip
# DistributedTaskStatus

OWNER_ID = "514c7ed5-3141-4448-af92-008bcb707042"
OWNER_NAME = "Simulated Admin"


class ApiError(Exception):
    """An error the API layer renders as DocSpace's error envelope."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def not_found_file() -> ApiError:
    return ApiError(404, "The required file was not found")


def not_found_folder() -> ApiError:
    return ApiError(404, "The required folder was not found")


def now() -> datetime:
    return datetime.now(UTC)


@dataclass
class Folder:
    """A folder or room in the simulated portal."""

    id: int
    title: str
    parent_id: int | None
    folder_type: int = FT_DEFAULT
    room_type: int | None = None
    created: datetime = field(default_factory=now)
    updated: datetime = field(default_factory=now)
    created_by: str = OWNER_ID


@dataclass
class File:
    """A file in the simulated portal."""

    id: int
    title: str
    folder_id: int
    size: int
    version: int = 1
    locked: bool = False
    created: datetime = field(default_factory=now)
    updated: datetime = field(default_factory=now)
    created_by: str = OWNER_ID


EventSink = Callable[[str, dict[str, Any]], object]  # what it returns is ignored


class Tree:
    """The portal's folders and files, keyed by id, with the lookups and paths the API needs."""

    def __init__(self, *, on_event: EventSink | None = None) -> None:
        self.lock = threading.RLock()
        self.base_url = "http://127.0.0.1"
        self.on_event: EventSink = on_event or (lambda trigger, payload: None)
        self.users = {OWNER_ID: OWNER_NAME}
        self._next_id = 18902
        self.folders: dict[int, Folder] = {}
        self.files: dict[int, File] = {}
        self.rooms_root = self._add_folder("Rooms", None, folder_type=FT_VIRTUAL_ROOMS).id
        self.archive_root = self._add_folder("Archive", None, folder_type=FT_ARCHIVE).id
        self.my_root = self._add_folder("My documents", None, folder_type=FT_USER).id

    def _new_id(self) -> int:
        self._next_id += 1
        return self._next_id

    def _add_folder(self, title: str, parent: int | None, **kw: Any) -> Folder:
        folder = Folder(id=self._new_id(), title=title, parent_id=parent, **kw)
        self.folders[folder.id] = folder
        return folder

    @staticmethod
    def parse_id(value: Any) -> int | None:
        if isinstance(value, bool):
            return None
        if isinstance(value, int):
            return value
        if isinstance(value, str) and value.strip().isdigit():
            return int(value)
        return None

    def folder(self, folder_id: Any) -> Folder:
        fid = self.parse_id(folder_id)
        if fid is None or fid not in self.folders:
            raise not_found_folder()
        return self.folders[fid]

    def file(self, file_id: Any) -> File:
        fid = self.parse_id(file_id)
        if fid is None or fid not in self.files:
            raise not_found_file()
        return self.files[fid]

    def path(self, folder: Folder) -> list[Folder]:
        chain = [folder]
        while chain[-1].parent_id is not None:
            chain.append(self.folders[chain[-1].parent_id])
        return list(reversed(chain))

    def root_of(self, folder: Folder) -> Folder:
        return self.path(folder)[0]

    def room_of(self, folder: Folder) -> Folder | None:
        return next((f for f in self.path(folder) if f.room_type is not None), None)

    def in_subtree(self, folder: Folder, ancestor: Folder) -> bool:
        return any(f.id == ancestor.id for f in self.path(folder))
