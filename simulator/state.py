"""The simulated portal's in-memory model: folders, rooms, files, asynchronous file operations and their DTOs."""

from __future__ import annotations

import collections
import os
import threading
import uuid
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
ST_CREATED, ST_RUNNING, ST_COMPLETED, ST_FAILED = 0, 1, 2, 4

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


def api_datetime(dt: datetime) -> str:
    """ApiDateTime as the REST API writes it: seven fractional digits and an explicit offset."""
    return dt.strftime("%Y-%m-%dT%H:%M:%S.") + f"{dt.microsecond * 10:07d}+00:00"


def event_datetime(dt: datetime) -> str:
    """Dates inside webhook bodies: UTC with ``Z``, whole seconds."""
    return dt.strftime("%Y-%m-%dT%H:%M:%SZ")


def size_text(size: int) -> str:
    """.NET's FilesSizeToString: ``#,0.##`` plus a unit, e.g. "84.2 KB"."""
    value, units = float(size), ["bytes", "KB", "MB", "GB", "TB"]
    unit = 0
    while value >= 1024 and unit < len(units) - 1:
        value /= 1024
        unit += 1
    if unit == 0:
        return f"{size} bytes"
    return f"{value:,.2f}".rstrip("0").rstrip(".") + f" {units[unit]}"


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


@dataclass
class Operation:
    """A file operation (a move) in progress or finished, as ``fileops`` reports it."""

    id: str
    owner: str
    hold: bool
    operation: int = 0  # FileOperationType.Move
    status: int = ST_CREATED
    progress: int = 0
    error: str = ""
    processed: int = 0
    files: list[dict[str, Any]] = field(default_factory=list)
    folders: list[dict[str, Any]] = field(default_factory=list)

    @property
    def finished(self) -> bool:
        return self.status > ST_RUNNING

    def dto(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "id": self.id,
            "Operation": self.operation,
            "progress": self.progress,
            "error": self.error,
            "processed": str(self.processed),
            "finished": self.finished,
            "status": self.status,
        }
        # Empty lists are left out, as the server does.
        if self.files:
            out["files"] = self.files
        if self.folders:
            out["folders"] = self.folders
        return out


EventSink = Callable[[str, dict[str, Any]], object]  # what it returns is ignored


class Portal:
    """One portal's files and folders. Thread-safe: every public method takes the portal lock."""

    def __init__(self, *, move_delay: float = 0.05, on_event: EventSink | None = None) -> None:
        self.lock = threading.RLock()
        self.base_url = "http://127.0.0.1"
        self.move_delay = move_delay
        self.on_event: EventSink = on_event or (lambda trigger, payload: None)
        self.users = {OWNER_ID: OWNER_NAME}
        self._next_id = 18902
        self.folders: dict[int, Folder] = {}
        self.files: dict[int, File] = {}
        self.operations: dict[str, Operation] = {}
        self._timers: set[threading.Timer] = set()
        self.move_errors: list[str] = []  # scripted: the next move operations fail with these messages
        self.moves: collections.Counter[str] = collections.Counter()  # file id -> times a move operation moved it
        self.rooms_root = self._add_folder("Rooms", None, folder_type=FT_VIRTUAL_ROOMS).id
        self.archive_root = self._add_folder("Archive", None, folder_type=FT_ARCHIVE).id
        self.my_root = self._add_folder("My documents", None, folder_type=FT_USER).id

    # --- ids and tree ----------------------------------------------------------------------------------

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

    # --- DTOs ------------------------------------------------------------------------------------------

    def employee(self, user_id: str) -> dict[str, Any]:
        return {
            "id": user_id,
            "displayName": self.users.get(user_id, "Unknown"),
            "avatarSmall": "/static/images/default_user_photo_size_32-32.png",
            "profileUrl": f"{self.base_url}/accounts/people/filter?search={user_id}",
            "hasAvatar": False,
            "isAnonim": False,
        }

    def _entry_common(self, parent: Folder | None, created: datetime, updated: datetime, by: str) -> dict:
        root = self.root_of(parent) if parent else None
        out: dict[str, Any] = {
            "created": api_datetime(created),
            "createdBy": self.employee(by),
            "updated": api_datetime(updated),
            "updatedBy": self.employee(by),
            "access": 0,
            "shared": False,
            "canShare": True,
        }
        if root is not None:
            out["rootFolderId"] = root.id
            out["rootFolderType"] = root.folder_type
        room = self.room_of(parent) if parent else None
        if room is not None and room.room_type is not None:
            out["parentRoomType"] = ROOM_FOLDER_TYPE.get(room.room_type, 19)
        return out

    def file_dto(self, f: File) -> dict[str, Any]:
        ext = os.path.splitext(f.title)[1].lower()
        parent = self.folders[f.folder_id]
        return {
            "folderId": f.folder_id,
            "version": f.version,
            "versionGroup": f.version,
            "contentLength": size_text(f.size),
            "pureContentLength": f.size,
            "fileStatus": 0,
            "mute": False,
            "viewUrl": f"{self.base_url}/filehandler.ashx?action=download&fileid={f.id}",
            "webUrl": f"{self.base_url}/doceditor?fileid={f.id}&version={f.version}",
            "fileType": FILE_TYPES.get(ext, 0),
            "fileExst": ext,
            "comment": "Uploaded" if f.version == 1 else "Uploaded a new version",
            "locked": f.locked,
            "isForm": False,
            "id": f.id,
            "title": f.title,
            **self._entry_common(parent, f.created, f.updated, f.created_by),
            "fileEntryType": 2,
        }

    def folder_dto(self, d: Folder) -> dict[str, Any]:
        out: dict[str, Any] = {
            "parentId": d.parent_id if d.parent_id is not None else 0,
            "filesCount": sum(1 for f in self.files.values() if f.folder_id == d.id),
            "foldersCount": sum(1 for x in self.folders.values() if x.parent_id == d.id),
            "new": 0,
            "mute": False,
            "pinned": False,
            "private": False,
            "id": d.id,
            "title": d.title,
            **self._entry_common(d, d.created, d.updated, d.created_by),
            "fileEntryType": 1,
        }
        if d.room_type is not None:
            out["roomType"] = d.room_type
            out.pop("parentRoomType", None)  # a room's own DTO describes the room, not a parent room
        if d.parent_id is None:
            out["type"] = d.folder_type  # only system folders carry `type`
        return out

    def webhook_entry(self, entry: File | Folder) -> dict[str, Any]:
        """The FileEntry payload of a webhook: key order as on the wire, defaults left out (contract §1.3)."""
        parent_id = entry.folder_id if isinstance(entry, File) else entry.parent_id
        parent = self.folders[parent_id] if parent_id is not None else None
        root = self.root_of(parent) if parent else (entry if isinstance(entry, Folder) else None)
        out: dict[str, Any] = {"id": entry.id}
        if parent_id is not None:
            out["parentId"] = parent_id
        out["securityByUsers"] = {}
        if parent_id is not None:
            out["folderIdDisplay"] = parent_id
        if root is not None:
            out["rootId"] = root.id
        out["title"] = entry.title
        out["createBy"] = entry.created_by
        out["modifiedBy"] = entry.created_by
        out["createOn"] = event_datetime(entry.created)
        out["modifiedOn"] = event_datetime(entry.updated)
        if root is not None and root.folder_type:
            out["rootFolderType"] = root.folder_type
            out["rootCreateBy"] = root.created_by
        out["fileEntryType"] = 2 if isinstance(entry, File) else 1
        return out

    def _fire(self, trigger: str, entry: File | Folder) -> None:
        self.on_event(trigger, self.webhook_entry(entry))

    # --- control surface -------------------------------------------------------------------------------

    def create_room(self, title: str, room_type: int = 5) -> int:
        with self.lock:
            room = self._add_folder(title, self.rooms_root, room_type=room_type)
            self._fire("room.created", room)
            return room.id

    def create_folder(self, parent_id: Any, title: str, *, api: bool = False) -> int:
        title = (title or "").strip()[:165]
        with self.lock:
            try:
                parent = self.folder(parent_id)
            except ApiError:
                if api:  # the real API answers 403 (InvalidOperationException), not 404, for a missing parent
                    raise ApiError(403, "folder not found") from None
                raise
            if not title:
                raise ApiError(400, "Title is required")
            if parent.parent_id is None and parent.folder_type in (FT_VIRTUAL_ROOMS, FT_ARCHIVE):
                raise ApiError(403, "Access denied")
            folder = self._add_folder(title, parent.id)  # no uniqueness check, like DocSpace
            self._fire("folder.created", folder)
            return folder.id

    def move_folder(self, folder_id: Any, dest_id: Any) -> None:
        """Move a folder (with everything in it) under ``dest_id``, e.g. from one room to another; keeps its id.

        What a user does in the web UI or a move operation with ``folderIds`` does; fires ``folder.moved``.
        A room, a section root, or a move into the folder's own subtree or a section root is refused with 403.
        """
        with self.lock:
            folder, dest = self.folder(folder_id), self.folder(dest_id)
            if folder.parent_id is None or folder.room_type is not None or self.in_subtree(dest, folder):
                raise ApiError(403, "Access denied")
            if dest.parent_id is None and dest.folder_type in (FT_VIRTUAL_ROOMS, FT_ARCHIVE):
                raise ApiError(403, "Access denied")
            folder.parent_id = dest.id
            folder.updated = now()
            self._fire("folder.moved", folder)

    def upload_file(self, folder_id: Any, title: str, *, size: int = 84_234, chunked: bool = False) -> int:
        """Simple upload fires file.created then file.uploaded; chunked only file.uploaded; same title = new version."""
        with self.lock:
            folder = self.folder(folder_id)
            existing = next((f for f in self.files.values() if f.folder_id == folder.id and f.title == title), None)
            if existing is not None:
                existing.version += 1
                existing.size = size
                existing.updated = now()
                self._fire("file.uploaded", existing)
                return existing.id
            f = File(id=self._new_id(), title=title, folder_id=folder.id, size=size)
            self.files[f.id] = f
            if not chunked:
                self._fire("file.created", f)
            self._fire("file.uploaded", f)
            return f.id

    def update_file(self, file_id: Any, *, size: int | None = None) -> int:
        with self.lock:
            f = self.file(file_id)
            f.version += 1
            if size is not None:
                f.size = size
            f.updated = now()
            self._fire("file.updated", f)
            return f.version

    def set_locked(self, file_id: Any, locked: bool = True) -> None:
        with self.lock:
            self.file(file_id).locked = locked

    # --- move operations -------------------------------------------------------------------------------

    def start_move(
        self, owner: str, file_ids: list[Any], folder_ids: list[Any], dest_id: Any, conflict: int, hold: bool
    ) -> dict[str, Any]:
        """Synchronous checks, then queue the operation; it runs after ``move_delay`` on a timer thread."""
        with self.lock:
            dest = self.folder(dest_id)
            if dest.parent_id is None and dest.folder_type in (FT_VIRTUAL_ROOMS, FT_ARCHIVE):
                raise ApiError(403, "Access denied")
            files = [self.file(i) for i in file_ids]
            folders = [self.folder(i) for i in folder_ids]
            for d in folders:
                if d.parent_id is None or self.in_subtree(dest, d):
                    raise ApiError(403, "Access denied")
            op = Operation(id=str(uuid.uuid4()), owner=owner, hold=hold)
            self.operations[op.id] = op
            first = op.dto()
            op.status = ST_RUNNING
            timer = threading.Timer(
                self.move_delay, self._run_move, (op, [f.id for f in files], [d.id for d in folders], dest.id, conflict)
            )
            timer.daemon = True
            self._timers.add(timer)
            timer.start()
            return first

    def _run_move(self, op: Operation, file_ids: list[int], folder_ids: list[int], dest_id: int, conflict: int) -> None:
        """FileMoveCopyOperation semantics (contract §3.5): Skip=0, Overwrite=1, Duplicate=2."""
        moved: list[File] = []
        with self.lock:
            self._timers = {t for t in self._timers if t.is_alive() and t is not threading.current_thread()}
            dest = self.folders.get(dest_id)
            if self.move_errors:
                op.error = self.move_errors.pop(0)
            elif dest is None:
                op.error = "The required folder was not found"
            else:
                for fid in file_ids:
                    f = self.files.get(fid)
                    if f is None:
                        op.error = "The required file was not found"
                        break
                    if f.folder_id == dest.id and conflict != 2:
                        continue  # already there: nothing to do, no error, not in the result
                    clash = next(
                        (
                            x
                            for x in self.files.values()
                            if x.folder_id == dest.id and x.title.lower() == f.title.lower() and x.id != f.id
                        ),
                        None,
                    )
                    if clash is None or conflict == 2:
                        f.folder_id = dest.id
                        moved.append(f)
                    elif conflict == 1:
                        if clash.locked:
                            op.error = f"The file '{clash.title}' is locked and cannot be overwritten"
                            break
                        clash.version += 1
                        clash.size = f.size
                        clash.updated = now()
                        del self.files[f.id]
                        moved.append(clash)
                    # conflict == 0 (Skip): silently nothing
                    op.processed += 1
                for did in folder_ids:
                    d = self.folders.get(did)
                    if d is not None:
                        d.parent_id = dest.id
                        op.processed += 1
                op.files = [self.file_dto(f) for f in moved]
                op.folders = [self.folder_dto(dest)] if moved else []
            op.progress = 100
            op.status = ST_FAILED if op.error else ST_COMPLETED
            if not op.hold:
                self.operations.pop(op.id, None)
            for f in moved:
                self.moves[str(f.id)] += 1
                self._fire("file.moved", f)

    def read_operations(self, owner: str, *, op_id: str | None = None, op_type: int | None = None) -> list[dict]:
        """A status read: finished operations are dequeued, and reported only if held (at most once)."""
        with self.lock:
            out = []
            for op in list(self.operations.values()):
                if op.owner != owner or (op_id and op.id != op_id):
                    continue
                if op_type is not None and op.operation != op_type:
                    continue
                if op.finished:
                    del self.operations[op.id]
                    if not op.hold:
                        continue
                out.append(op.dto())
            return out

    def consume_operation_reports(self, owner: str | None = None) -> int:
        """Another reader with the same user takes every finished report."""
        with self.lock:
            done = [o for o in self.operations.values() if o.finished and (owner is None or o.owner == owner)]
            for op in done:
                del self.operations[op.id]
            return len(done)

    def cancel_timers(self) -> None:
        with self.lock:
            for t in self._timers:
                t.cancel()
            self._timers.clear()
