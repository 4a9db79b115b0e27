"""The simulated ``/api/2.0/files`` endpoints: file and folder info, path, contents, create folder, async move."""

from __future__ import annotations

from typing import Any

import falcon

from simulator.model import ApiError, Folder
from simulator.portal import Portal
from simulator.wire import body, send

CONFLICTS = {"skip": 0, "overwrite": 1, "duplicate": 2}
OPERATION_TYPES = {"move": 0, "copy": 1, "delete": 2, "download": 3, "markasread": 4, "import": 5, "convert": 6}


def conflict_mode(value: Any) -> int:
    """``FileConflictResolveType`` via JsonStringEnumConverter: a name in any case, or 0/1/2. Default Skip."""
    if value is None:
        return 0
    if isinstance(value, int) and not isinstance(value, bool) and value in (0, 1, 2):
        return value
    if isinstance(value, str):
        if value.strip().isdigit() and int(value) in (0, 1, 2):
            return int(value)
        if value.strip().lower() in CONFLICTS:
            return CONFLICTS[value.strip().lower()]
    raise ApiError(400, f"The JSON value could not be converted to FileConflictResolveType: {value!r}")


def id_list(value: Any) -> list[Any]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise ApiError(400, "fileIds and folderIds must be arrays")
    return value


class FileResource:
    """``GET files/file/{fileId}``: one file."""

    def __init__(self, portal: Portal) -> None:
        self.portal = portal

    def on_get(self, req: falcon.Request, resp: falcon.Response, file_id: str) -> None:
        with self.portal.lock:
            send(req, resp, self.portal.file_dto(self.portal.file(file_id)))


class FolderResource:
    """``GET files/folder/{folderId}``: one folder."""

    def __init__(self, portal: Portal) -> None:
        self.portal = portal

    def on_get(self, req: falcon.Request, resp: falcon.Response, folder_id: str) -> None:
        with self.portal.lock:
            send(req, resp, self.portal.folder_dto(self.portal.folder(folder_id)))

    def on_post(self, req: falcon.Request, resp: falcon.Response, folder_id: str) -> None:
        title = body(req).get("title")
        new_id = self.portal.create_folder(folder_id, title if isinstance(title, str) else "", api=True)
        with self.portal.lock:
            send(req, resp, self.portal.folder_dto(self.portal.folders[new_id]))


class FolderPathResource:
    """``GET files/folder/{folderId}/path``: the breadcrumbs from the root down."""

    def __init__(self, portal: Portal) -> None:
        self.portal = portal

    def on_get(self, req: falcon.Request, resp: falcon.Response, folder_id: str) -> None:
        with self.portal.lock:
            chain = self.portal.path(self.portal.folder(folder_id))
            send(req, resp, [self.portal.folder_dto(f) for f in chain])


class ContentsResource:
    """``GET files/{folderId}``: the folder's contents, with filterType / filterValue / withSubFolders / paging."""

    def __init__(self, portal: Portal) -> None:
        self.portal = portal

    def on_get(self, req: falcon.Request, resp: falcon.Response, folder_id: str) -> None:
        p = self.portal
        filter_type = req.get_param_as_int("filterType") or 0
        value = (req.get_param("filterValue") or "").lower()
        with_sub = req.get_param_as_bool("withSubFolders", default=True)
        start = max(req.get_param_as_int("startIndex") or 0, 0)
        count = min(max(req.get_param_as_int("count") or 100, 1), 100)
        with p.lock:
            folder = p.folder(folder_id)
            # Like the real API, a filter or search with withSubFolders (the default!) covers the whole subtree.
            deep = with_sub and (filter_type != 0 or bool(value))

            def inside(parent_id: int | None) -> bool:
                if parent_id is None:
                    return False
                if parent_id == folder.id:
                    return True
                return deep and p.in_subtree(p.folders[parent_id], folder)

            folders = [d for d in p.folders.values() if inside(d.parent_id)]
            files = [f for f in p.files.values() if inside(f.folder_id)]
            if filter_type == 1:
                folders = []
            elif filter_type == 2:
                files = []
            if value:
                folders = [d for d in folders if value in d.title.lower()]
                files = [f for f in files if value in f.title.lower()]
            entries: list[Any] = [*folders, *files]
            entries = _sorted(entries, req.get_param("sortBy"), req.get_param("sortOrder"))
            page = entries[start : start + count]
            send(
                req,
                resp,
                {
                    "files": [p.file_dto(f) for f in page if not isinstance(f, Folder)],
                    "folders": [p.folder_dto(d) for d in page if isinstance(d, Folder)],
                    "current": p.folder_dto(folder),
                    "pathParts": [{"id": f.id, "title": f.title} for f in p.path(folder)],
                    "startIndex": start,
                    "count": len(page),
                    "total": len(entries),
                    "new": 0,
                },
            )


# SortedByType names the API takes for ``sortBy`` (case-insensitive), and the entry attribute each orders by.
SORT_KEYS = {"datetime": "updated", "dateandtime": "updated", "dateandtimecreation": "created", "az": "title"}


def _sorted(entries: list[Any], sort_by: str | None, sort_order: str | None) -> list[Any]:
    """``sortBy``/``sortOrder`` as DocSpace applies them; folders stay before files, as in the real listing.

    ``DateAndTime`` orders by the last modification, ``DateAndTimeCreation`` by creation. Ties keep id order
    so paging through equal times stays stable.
    """
    if not sort_by:
        return entries
    attribute = SORT_KEYS.get(sort_by.strip().lower())
    if attribute is None:
        raise ApiError(400, f"The value '{sort_by}' is not valid for SortedByType.")
    descending = (sort_order or "ascending").strip().lower() in ("descending", "desc", "1")

    def key(entry: Any) -> Any:
        value = getattr(entry, attribute)
        return value.casefold() if isinstance(value, str) else value

    folders = [e for e in entries if isinstance(e, Folder)]
    files = [e for e in entries if not isinstance(e, Folder)]
    ordered = []
    for group in (folders, files):
        by_id = sorted(group, key=lambda e: e.id, reverse=descending)
        ordered += sorted(by_id, key=key, reverse=descending)
    return ordered


class SubfoldersResource:
    """``GET files/{folderId}/subfolders``: a folder's subfolders."""

    def __init__(self, portal: Portal) -> None:
        self.portal = portal

    def on_get(self, req: falcon.Request, resp: falcon.Response, folder_id: str) -> None:
        with self.portal.lock:
            folder = self.portal.folder(folder_id)
            subs = [d for d in self.portal.folders.values() if d.parent_id == folder.id]
            send(req, resp, [self.portal.folder_dto(d) for d in subs])


class MoveResource:
    """``PUT files/fileops/move`` (queues the operation) and ``GET files/fileops/move`` (the conflict check)."""

    def __init__(self, portal: Portal) -> None:
        self.portal = portal

    def on_put(self, req: falcon.Request, resp: falcon.Response) -> None:
        doc = body(req)
        dest = doc.get("destfolderid")
        if dest is None:
            raise ApiError(400, "destFolderId is required")
        conflict = conflict_mode(doc.get("conflictresolvetype"))
        # deleteAfter is misnamed: it only says whether the finished operation stays readable (holdResult).
        hold = not bool(doc.get("deleteafter", False))
        owner = req.context.key
        op = self.portal.start_move(
            owner, id_list(doc.get("fileids")), id_list(doc.get("folderids")), dest, conflict, hold
        )
        if doc.get("returnsingleoperation"):
            send(req, resp, [op])
            return
        # All of the user's move operations: this read consumes finished reports, as on the real server.
        others = [o for o in self.portal.read_operations(owner, op_type=0) if o["id"] != op["id"]]
        send(req, resp, [*others, op])

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        p = self.portal
        with p.lock:
            dest = p.folder(req.get_param("destFolderId"))
            ids = req.get_param_as_list("fileIds") or []
            clashes = []
            for fid in ids:
                f = p.file(fid)
                if any(x.folder_id == dest.id and x.title.lower() == f.title.lower() for x in p.files.values()):
                    clashes.append(p.file_dto(f))
            send(req, resp, clashes)


class OperationsResource:
    """``GET files/fileops[/{type}]?id=``: finished operations are reported at most once, then dequeued."""

    def __init__(self, portal: Portal) -> None:
        self.portal = portal

    def on_get(self, req: falcon.Request, resp: falcon.Response, op_type: str | None = None) -> None:
        type_id = None
        if op_type is not None:
            key = op_type.strip().lower()
            if key.isdigit():
                type_id = int(key)
            elif key in OPERATION_TYPES:
                type_id = OPERATION_TYPES[key]
            else:
                raise ApiError(400, f"Unknown operation type {op_type!r}")
        ops = self.portal.read_operations(req.context.key, op_id=req.get_param("id"), op_type=type_id)
        send(req, resp, ops)


def add_routes(app: falcon.App, portal: Portal) -> None:
    ops = OperationsResource(portal)
    app.add_route("/api/2.0/files/file/{file_id}", FileResource(portal))
    app.add_route("/api/2.0/files/folder/{folder_id}", FolderResource(portal))
    app.add_route("/api/2.0/files/folder/{folder_id}/path", FolderPathResource(portal))
    app.add_route("/api/2.0/files/{folder_id}", ContentsResource(portal))
    app.add_route("/api/2.0/files/{folder_id}/subfolders", SubfoldersResource(portal))
    app.add_route("/api/2.0/files/fileops/move", MoveResource(portal))
    app.add_route("/api/2.0/files/fileops", ops)
    app.add_route("/api/2.0/files/fileops/{op_type}", ops)
