"""The simulated portal: its tree, DTOs and move operations, and the control surface that changes it."""

from __future__ import annotations

from typing import Any

from simulator.model import FT_ARCHIVE, FT_VIRTUAL_ROOMS, ApiError, File, now
from simulator.operations import MoveOperations


class Portal(MoveOperations):
    """One portal's files and folders. Thread-safe: every public method takes the portal lock."""

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
