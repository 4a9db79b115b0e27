"""The stages' file operations on DocSpace: read a file, find or create a folder, move a file and confirm it."""

from __future__ import annotations

import math
import time
from typing import Any
from urllib.parse import quote

import structlog

from shared.core.single_flight import SingleFlightCache
from shared.docspace.errors import (
    DocSpaceAccessDenied,
    DocSpaceNotFound,
    DocSpaceRejected,
    DocSpaceUnavailable,
    MoveFailed,
    MoveReportLost,
    MoveSkipped,
    MoveUnconfirmed,
)
from shared.docspace.lookups import SharedLookups
from shared.docspace.paging import MAX_FOLDER_PAGES, page_cap_hit
from shared.docspace.transport import DocSpaceTransport, path_id
from shared.docspace.values import FileInfo, MoveResult, _file_info, _id_sort_key, _sid

log = structlog.get_logger(__name__)

# ``?fields=`` for GET files/file/{id}: just what ``FileInfo`` reads (contract §3.2), not the whole FileDto.
FILE_FIELDS = "id,title,folderId,version,fileExst,pureContentLength,webUrl,createdBy,created,updated,rootFolderType"


class FileOperations:
    """Reads files and folders, finds or creates a room's folder, and moves files with a confirmed outcome.

    Every call accepts int or str ids and returns str ids; an id that is not a DocSpace id is refused before any
    request (``InvalidDocSpaceId``).
    """

    def __init__(
        self,
        transport: DocSpaceTransport,
        *,
        move_deadline: float = 30.0,
        poll_interval: float = 0.25,
        poll_max_interval: float = 2.0,
        folder_cache_size: int = 4096,
        folder_ttl: float = 300.0,
        shared: SharedLookups | None = None,
    ) -> None:
        self._transport = transport
        self._move_deadline = move_deadline
        self._poll_interval = poll_interval
        self._poll_max_interval = poll_max_interval
        self._folder_ttl = folder_ttl
        self._shared = shared
        self._folders: SingleFlightCache[tuple[str, str], str] = SingleFlightCache(
            max_entries=folder_cache_size, ttl=folder_ttl
        )

    # --- files and folders --------------------------------------------------------------------------------

    def get_file(self, file_id: str | int) -> FileInfo:
        """Read a file's facts. Raises ``DocSpaceNotFound`` / ``DocSpaceAccessDenied`` / ``DocSpaceUnavailable``."""
        fid = path_id(file_id)
        dto = self._transport.request("GET", f"files/file/{quote(fid, safe='')}", params={"fields": FILE_FIELDS})
        if not isinstance(dto, dict):
            raise DocSpaceUnavailable(f"DocSpace GET files/file/{fid} returned no file")
        return _file_info(dto)

    def folder_title(self, folder_id: str | int) -> str:
        """``GET files/folder/{id}``: proves the key can read the folder; returns its title."""
        key = path_id(folder_id)
        dto = self._transport.request("GET", f"files/folder/{quote(key, safe='')}")
        if not isinstance(dto, dict):
            raise DocSpaceUnavailable(f"DocSpace GET files/folder/{key} returned no folder")
        return str(dto.get("title") or "")

    def find_subfolder(self, room_id: str | int, title: str) -> str | None:
        """The id of the direct subfolder ``title`` of ``room_id`` (lowest id on a tie), without creating it."""
        found = self._matching_subfolders(path_id(room_id), title)
        return found[0] if found else None

    def find_or_create_folder(self, room_id: str | int, title: str = "Incoming") -> str:
        """The id of the direct subfolder ``title`` of ``room_id``, created when missing.

        DocSpace has no uniqueness check on folder names, so within this process find-or-create runs once per
        (room, title) at a time and the answer is remembered. Across processes two creators can still race;
        after creating, the folder list is read again and the lowest id among the exact matches wins, so every
        process settles on the same folder (the loser's empty twin is left alone).
        """
        room = path_id(room_id)
        return self._folders.get((room, title), lambda: self._find_or_create(room, title))

    def forget_folder(self, room_id: str | int, title: str = "Incoming") -> None:
        """Forget the room's folder ``title`` (DocSpace said it is gone): the next use finds or creates it again."""
        room = path_id(room_id)
        self._folders.forget((room, title))
        if self._shared is not None:
            self._shared.keep(f"folder:{room}:{title}", "", seconds=self._folder_ttl)  # "": ask DocSpace again

    def _find_or_create(self, room: str, title: str) -> str:
        key = f"folder:{room}:{title}"
        known = self._shared.recall(key) if self._shared is not None else None
        if known:
            return known
        folder = self._find_or_create_in_docspace(room, title)
        if self._shared is not None:
            self._shared.keep(key, folder, seconds=self._folder_ttl)
        return folder

    def _find_or_create_in_docspace(self, room: str, title: str) -> str:
        found = self._matching_subfolders(room, title)
        if not found:
            created = self._transport.request("POST", f"files/folder/{quote(room, safe='')}", json={"title": title})
            found = self._matching_subfolders(room, title)
            if not found and isinstance(created, dict) and created.get("id") is not None:
                found = [_sid(created["id"])]  # listing may lag behind the create on a busy portal
            if not found:
                raise DocSpaceUnavailable(f"created folder {title!r} in room {room} but cannot find it")
            log.info("docspace_folder_created", room_id=room, title=title, folder_id=found[0])
        return found[0]

    def _matching_subfolders(self, room: str, title: str) -> list[str]:
        """Exact (title, parent) matches among the room's direct subfolders, lowest id first."""
        matches: list[str] = []
        start, page = 0, 100
        for _ in range(MAX_FOLDER_PAGES):
            content = self._transport.request(
                "GET",
                f"files/{quote(room, safe='')}",
                params={
                    "filterType": 2,
                    "withSubFolders": "false",
                    "filterValue": title,
                    "count": page,
                    "startIndex": start,
                },
            )
            folders = content.get("folders") if isinstance(content, dict) else None
            folders = folders if isinstance(folders, list) else []
            for f in folders:
                # filterValue is a contains match (maybe full-text), and withSubFolders may be ignored: the
                # exact check on both title and parent is what makes this correct.
                if isinstance(f, dict) and f.get("title") == title and _sid(f.get("parentId")) == room:
                    matches.append(_sid(f.get("id")))
            total = content.get("total") if isinstance(content, dict) else None
            start += len(folders)
            if not folders or not isinstance(total, int) or start >= total:
                break
        else:
            page_cap_hit("folder_subfolders", MAX_FOLDER_PAGES, room_id=room)
        return sorted(set(matches), key=_id_sort_key)

    def move_file(self, file_id: str | int, dest_folder_id: str | int, *, conflict: str = "Duplicate") -> MoveResult:
        """Move a file into a folder and confirm it landed there.

        The move is asynchronous: the operation is polled by id (backing off from ``poll_interval`` to
        ``poll_max_interval``) until it finishes or ``move_deadline`` passes. ``deleteAfter`` is false so the
        finished operation stays readable - once: any reader with the same user may take the report first.

        Outcomes:
        - finished with an ``error``: ``MoveFailed`` (DocSpace's message kept);
        - finished, the file in ``files``: moved (its id from ``files``: Overwrite yields the destination's id);
        - finished, no error, file not in ``files`` (what Skip does): the file is re-read; in the destination
          means moved, otherwise ``MoveSkipped``;
        - report gone (empty list) or deadline passed: the file is re-read; in the destination means moved,
          otherwise ``MoveReportLost`` / ``MoveUnconfirmed`` (both transient: the move is safe to repeat).

        A file that is *already* in the destination (a redelivery after a crash) is success. This costs no
        extra call on the normal path: DocSpace treats a move into the file's own folder as a no-op that
        finishes without error, which the Skip branch confirms by re-reading the file; and when the move
        request itself is refused (400/403), the file is read once to see whether it is already in place
        before the refusal is raised.
        """
        fid, dest = path_id(file_id), path_id(dest_folder_id)
        deadline = time.monotonic() + self._move_deadline
        body = {
            "fileIds": [int(fid) if fid.isascii() and fid.isdigit() else fid],
            "folderIds": [],
            "destFolderId": int(dest) if dest.isascii() and dest.isdigit() else dest,
            "conflictResolveType": conflict,
            "deleteAfter": False,
            "content": False,
            "toFillOut": False,
            "returnSingleOperation": True,
        }
        try:
            ops = self._transport.request("PUT", "files/fileops/move", json=body)
        except (DocSpaceAccessDenied, DocSpaceRejected):
            located = self._located(fid, dest)
            if located is not None:
                return located
            raise
        op = self._pick_op(ops, None)
        if op is None:
            return self._confirm(fid, dest, lost=True)
        op_id = _sid(op.get("id"))
        interval = self._poll_interval
        while not op.get("finished"):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return self._confirm(fid, dest, lost=False)
            time.sleep(min(interval, remaining))
            interval = min(interval * 2, self._poll_max_interval)
            try:
                reports = self._transport.request("GET", "files/fileops", params={"id": op_id})
            except DocSpaceUnavailable as exc:
                # The operation runs on regardless; keep polling until the deadline decides.
                log.warning("docspace_move_poll_failed", file_id=fid, operation_id=op_id, error=str(exc))
                continue
            found = self._pick_op(reports, op_id)
            if found is None:
                return self._confirm(fid, dest, lost=True)
            op = found
        return self._finished(op, fid, dest)

    @staticmethod
    def _pick_op(ops: Any, op_id: str | None) -> dict[str, Any] | None:
        for op in ops if isinstance(ops, list) else []:
            if isinstance(op, dict) and (op_id is None or _sid(op.get("id")) == op_id):
                return op
        return None

    def _finished(self, op: dict[str, Any], fid: str, dest: str) -> MoveResult:
        error = op.get("error")
        if isinstance(error, str) and error.strip():
            raise MoveFailed(f"DocSpace move of file {fid} to folder {dest} failed: {error}")
        files = [f for f in op.get("files") or [] if isinstance(f, dict)]
        if files:
            match = next((f for f in files if _sid(f.get("id")) == fid), files[0])
            folder = match.get("folderId")
            return MoveResult(
                file_id=_sid(match.get("id", fid)),
                folder_id=_sid(folder) if folder is not None else dest,
                confirmed_by="operation",
                file=_file_info(match) if match.get("version") is not None else None,
            )
        located = self._located(fid, dest)
        if located is not None:
            return located
        raise MoveSkipped(
            f"DocSpace move of file {fid} to folder {dest} did nothing: the destination already holds a file "
            "with that title (conflict resolution skipped it)"
        )

    def _located(self, fid: str, dest: str) -> MoveResult | None:
        try:
            info = self.get_file(fid)
        except DocSpaceNotFound:
            return None
        if info.folder_id == dest:
            return MoveResult(file_id=info.id, folder_id=dest, confirmed_by="file_location", file=info)
        return None

    def _confirm(self, fid: str, dest: str, *, lost: bool) -> MoveResult:
        info = self.get_file(fid)
        if info.folder_id == dest:
            return MoveResult(file_id=info.id, folder_id=dest, confirmed_by="file_location", file=info)
        if lost:
            raise MoveReportLost(
                f"DocSpace move of file {fid} to folder {dest}: the report was taken by another reader and "
                f"the file is still in folder {info.folder_id}"
            )
        raise MoveUnconfirmed(
            f"DocSpace move of file {fid} to folder {dest} unconfirmed after {self._move_deadline:g}s "
            f"(file still in folder {info.folder_id})",
            retry_after=math.ceil(self._poll_max_interval),
        )
