"""The simulated portal's DTOs: REST ``FileDto``/``FolderDto``, the webhook ``FileEntry``, and their date formats."""

from __future__ import annotations

import os
from datetime import datetime
from typing import Any

from simulator.model import FILE_TYPES, ROOM_FOLDER_TYPE, File, Folder, Tree


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


class Rendering(Tree):
    """The tree as DocSpace renders it: REST DTOs, and webhook payloads handed to ``on_event``."""

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
