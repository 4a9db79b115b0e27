"""The DocSpace REST client: file info, room lookup, verified asynchronous moves, find-or-create folders."""

from __future__ import annotations

import enum
import math
import threading
import time
from collections import OrderedDict
from typing import Any, Final, Literal
from urllib.parse import quote

import requests
import structlog
from pydantic import SecretStr
from requests.adapters import HTTPAdapter

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
from shared.docspace.values import (
    FileInfo,
    MoveResult,
    Room,
    WebhookConfig,
    WebhookDelivery,
    _file_info,
    _id_sort_key,
    _sid,
    _webhook_config,
    _webhook_delivery,
)
from shared.ids import InvalidId, parse_id
from shared.rate_limit import Limiter
from shared.redact import safe_url, scrub
from shared.retry_after import DEFAULT_MAX_PAUSE, retry_after_from

log = structlog.get_logger(__name__)

ROOMS_ROOT_FOLDER_TYPE = 14
# ``?fields=`` for GET files/file/{id}: just what ``FileInfo`` reads (contract §3.2), not the whole FileDto.
FILE_FIELDS = "id,title,folderId,version,fileExst,pureContentLength,webUrl,createdBy,created,updated,rootFolderType"


class _Missing(enum.Enum):
    """A room-cache miss, as distinct from a cached None ("not in a room"); an enum so the type checker narrows it."""

    MISSING = enum.auto()


_MISSING: Final = _Missing.MISSING


def _path_id(value: str | int) -> str:
    """An id about to become part of a URL or a request body: a DocSpace id, or ``InvalidDocSpaceId``.

    Validated rather than only percent-encoded: ``..`` survives ``quote`` and would walk up the API's path.
    """
    try:
        return parse_id(value)
    except InvalidId as exc:
        raise InvalidDocSpaceId(f"not a DocSpace id, so no request was made: {exc}") from None


class _BearerAuth(requests.auth.AuthBase):
    """Adds ``Authorization: Bearer`` per request, so the key never sits in a repr or the session headers."""

    def __init__(self, key: SecretStr) -> None:
        self._key = key

    def __call__(self, r: requests.PreparedRequest) -> requests.PreparedRequest:
        r.headers["Authorization"] = f"Bearer {self._key.get_secret_value()}"
        return r

    def __repr__(self) -> str:
        return "_BearerAuth(**********)"


class DocSpaceClient:
    """A thread-safe DocSpace REST client shared by a process's worker threads.

    Every public call accepts int or str ids and returns str ids. Failures are typed (see the error classes
    above): permanent ones dead-letter, transient ones carry ``retry_after`` for the retry ladder. A 429
    whose ``Retry-After`` is at most ``max_retry_after`` seconds is retried here, at most
    ``rate_limit_retries`` times; anything longer is left to the ladder so a worker never sleeps for long.
    """

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
        self.base_url = base_url.rstrip("/")
        self.shown_url = safe_url(self.base_url)  # for logs and messages: no userinfo or path
        self._api = f"{self.base_url}/api/2.0/"
        self._timeout = timeout
        self._move_deadline = move_deadline
        self._poll_interval = poll_interval
        self._poll_max_interval = poll_max_interval
        self._max_retry_after = max_retry_after
        self._rate_limit_retries = rate_limit_retries
        self._max_pause = max_pause  # the longest wait a Retry-After / X-RateLimit-Reset may ask for
        self._limiter = limiter  # shared by the process's threads; None = no client-side limit
        self._session = requests.Session()
        self._session.auth = _BearerAuth(api_key if isinstance(api_key, SecretStr) else SecretStr(api_key))
        self._session.headers.update({"Accept": "application/json"})
        if user_agent:
            # Names the process in the portal's logs (and lets the simulator count each process's calls).
            self._session.headers["User-Agent"] = user_agent
        adapter = HTTPAdapter(pool_connections=pool_size, pool_maxsize=pool_size, max_retries=0)
        self._session.mount("http://", adapter)
        self._session.mount("https://", adapter)
        self._room_cache: OrderedDict[str, Room | None] = OrderedDict()
        self._room_cache_size = room_cache_size
        self._room_lock = threading.Lock()
        self._room_lookup_locks = [threading.Lock() for _ in range(64)]
        self._folder_cache: dict[tuple[str, str], str] = {}
        self._folder_locks: dict[tuple[str, str], threading.Lock] = {}
        self._folder_locks_guard = threading.Lock()

    def __repr__(self) -> str:
        return f"DocSpaceClient(base_url={self.shown_url!r})"

    def __enter__(self) -> DocSpaceClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._session.close()

    # --- HTTP ---------------------------------------------------------------------------------------------

    def request(self, method: str, path: str, *, params: dict[str, Any] | None = None, json: Any = None) -> Any:
        """One call through this client's transport (rate limit, 429 handling, typed errors): the envelope's
        ``response``. For the modules that add calls of their own on top of this client (``admin``)."""
        return self._request(method, path, params=params, json=json)

    def _request(self, method: str, path: str, *, params: dict[str, Any] | None = None, json: Any = None) -> Any:
        """One API call, returning the envelope's ``response``; maps failures onto the typed errors."""
        url = self._api + path
        attempt = 0
        while True:
            try:
                if self._limiter is None:
                    resp = self._session.request(method, url, params=params, json=json, timeout=self._timeout)
                else:
                    with self._limiter.slot(method):
                        resp = self._session.request(method, url, params=params, json=json, timeout=self._timeout)
            except requests.Timeout as exc:
                raise DocSpaceUnavailable(f"DocSpace {method} {path} timed out: {self._scrub(exc)}") from None
            except requests.RequestException as exc:
                raise DocSpaceUnavailable(f"DocSpace {method} {path} failed: {self._scrub(exc)}") from None
            status = resp.status_code
            if status == 429 and self._limiter is not None:
                spent = self._limiter.write_quota_spent(method, resp.headers)
                if spent is not None:
                    raise spent  # the day's writes are used up: this invoice waits for the reset; reads go on
            if status == 429:
                wait = retry_after_from(resp.headers, cap=self._max_pause)
                if self._limiter is not None:
                    # Every thread of the process holds off together: one 429 must not become a storm.
                    self._limiter.pause(wait if wait is not None else 1.0)
                if wait is not None and wait <= self._max_retry_after and attempt < self._rate_limit_retries:
                    attempt += 1
                    log.info("docspace_rate_limited", method=method, path=path, sleep=wait, attempt=attempt)
                    time.sleep(wait)
                    continue
            if status >= 400:
                raise self._error(method, path, resp)
            if not resp.content:
                return None
            try:
                body = resp.json()
            except ValueError as exc:
                raise DocSpaceUnavailable(
                    f"DocSpace {method} {path} answered {status} with a body that is not JSON"
                ) from exc
            return body.get("response") if isinstance(body, dict) else body

    def _scrub(self, exc: Exception) -> str:
        # requests names the URL it failed on, query (a file title in filterValue) and all.
        return scrub(f"{type(exc).__name__}: {exc}", self.base_url)

    def _error(self, method: str, path: str, resp: requests.Response) -> Exception:
        status = resp.status_code
        message = ""
        try:
            body = resp.json()
        except ValueError:
            body = None
        if isinstance(body, dict):
            err = body.get("error")
            if isinstance(err, dict) and err.get("message"):
                message = str(err["message"])
            elif isinstance(body.get("response"), dict):  # ProblemDetails on model-validation failures
                problem = body["response"]
                message = str(problem.get("title") or problem.get("detail") or "")
                if problem.get("errors"):
                    message = f"{message} {problem['errors']}".strip()
        if not message:
            message = resp.reason or ""
        text = f"DocSpace {method} {path} -> {status}: {message}".rstrip(": ")
        if status == 404:
            return DocSpaceNotFound(text)
        if status in (401, 403):
            return DocSpaceAccessDenied(text)
        if status == 429:
            retry_after = retry_after_from(resp.headers, cap=self._max_pause)
            return DocSpaceUnavailable(text, reason="docspace_rate_limited", retry_after=retry_after)
        if status == 408 or status >= 500:
            return DocSpaceUnavailable(text, retry_after=retry_after_from(resp.headers, cap=self._max_pause))
        return DocSpaceRejected(text)

    # --- files --------------------------------------------------------------------------------------------

    def get_file(self, file_id: str | int) -> FileInfo:
        """Read a file's facts. Raises ``DocSpaceNotFound`` / ``DocSpaceAccessDenied`` / ``DocSpaceUnavailable``."""
        fid = _path_id(file_id)
        dto = self._request("GET", f"files/file/{quote(fid, safe='')}", params={"fields": FILE_FIELDS})
        if not isinstance(dto, dict):
            raise DocSpaceUnavailable(f"DocSpace GET files/file/{fid} returned no file")
        return _file_info(dto)

    # --- rooms --------------------------------------------------------------------------------------------

    def find_room(self, folder_id: str | int) -> Room | None:
        """The room that holds ``folder_id``, or ``None`` when the folder is not inside a room.

        Uses ``GET files/folder/{id}/path`` (the breadcrumbs from the root down); the room is the first entry
        with a ``roomType``. ``payload.rootId`` is never used: it is the portal-wide "Rooms" section folder,
        the same for every room. Results (``None`` too) go into a bounded LRU per folder id; every folder on
        the path below the room is cached as well, since it sits in the same room.
        """
        key = _path_id(folder_id)
        cached = self._cached_room(key)
        if cached is not _MISSING:
            return cached
        # One lookup per folder at a time: worker threads that miss together wait for the first one's answer
        # instead of each spending an API call on the same path (the portal's rate limit counts them all).
        with self._room_lookup_locks[hash(key) % len(self._room_lookup_locks)]:
            cached = self._cached_room(key)
            if cached is not _MISSING:
                return cached
            return self._look_up_room(key)

    def _cached_room(self, key: str) -> Room | Literal[_Missing.MISSING] | None:
        with self._room_lock:
            if key in self._room_cache:
                self._room_cache.move_to_end(key)
                return self._room_cache[key]
        return _MISSING

    def _look_up_room(self, key: str) -> Room | None:
        path = self._request("GET", f"files/folder/{quote(key, safe='')}/path")
        entries = path if isinstance(path, list) else []
        room: Room | None = None
        below: list[str] = []
        for entry in entries:
            if not isinstance(entry, dict):
                continue
            if room is None and entry.get("roomType") is not None:
                room = Room(id=_sid(entry.get("id")), title=str(entry.get("title") or ""))
            if room is not None and entry.get("id") is not None:
                below.append(_sid(entry["id"]))
        with self._room_lock:
            for fid in {key, *below}:
                self._room_cache[fid] = room
                self._room_cache.move_to_end(fid)
            while len(self._room_cache) > self._room_cache_size:
                self._room_cache.popitem(last=False)
        return room

    # --- folders ------------------------------------------------------------------------------------------

    def find_or_create_folder(self, room_id: str | int, title: str = "Incoming") -> str:
        """The id of the direct subfolder ``title`` of ``room_id``, created when missing.

        DocSpace has no uniqueness check on folder names, so within this process find-or-create is
        serialised by a lock per (room, title) and the answer is cached. Across processes two creators can
        still race; after creating, the folder list is read again and the lowest id among the exact matches
        wins, so every process settles on the same folder (the loser's empty twin is left alone).
        """
        room = _path_id(room_id)
        key = (room, title)
        with self._folder_locks_guard:
            cached = self._folder_cache.get(key)
            if cached is not None:
                return cached
            lock = self._folder_locks.setdefault(key, threading.Lock())
        with lock:
            cached = self._folder_cache.get(key)
            if cached is not None:
                return cached
            found = self._matching_subfolders(room, title)
            if not found:
                created = self._request("POST", f"files/folder/{quote(room, safe='')}", json={"title": title})
                found = self._matching_subfolders(room, title)
                if not found and isinstance(created, dict) and created.get("id") is not None:
                    found = [_sid(created["id"])]  # listing may lag behind the create on a busy portal
                if not found:
                    raise DocSpaceUnavailable(f"created folder {title!r} in room {room} but cannot find it")
                log.info("docspace_folder_created", room_id=room, title=title, folder_id=found[0])
            with self._folder_locks_guard:
                self._folder_cache[key] = found[0]
            return found[0]

    def _matching_subfolders(self, room: str, title: str) -> list[str]:
        """Exact (title, parent) matches among the room's direct subfolders, lowest id first."""
        matches: list[str] = []
        start, page = 0, 100
        while True:
            content = self._request(
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
        return sorted(set(matches), key=_id_sort_key)

    # --- move ---------------------------------------------------------------------------------------------

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
        fid, dest = _path_id(file_id), _path_id(dest_folder_id)
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
            ops = self._request("PUT", "files/fileops/move", json=body)
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
                reports = self._request("GET", "files/fileops", params={"id": op_id})
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
            return MoveResult(file_id=info.id, folder_id=dest, confirmed_by="file_location")
        return None

    def _confirm(self, fid: str, dest: str, *, lost: bool) -> MoveResult:
        info = self.get_file(fid)
        if info.folder_id == dest:
            return MoveResult(file_id=info.id, folder_id=dest, confirmed_by="file_location")
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

    # --- operator calls: webhook management and health checks (used by the invoice-pipeline CLI) -----------
    # Kept apart from the stage calls above: only the CLI uses them, and they need an API key with a global
    # scope (``*:read`` / ``*:write``) because ``settings/`` is not in DocSpace's scope map (contract §2.3).

    def list_webhooks(self) -> list[WebhookConfig]:
        """``GET settings/webhook``: the webhooks this key can see, each with the status of its last delivery."""
        rows = self._request("GET", "settings/webhook")
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
        dto = self._request(
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
        rows = self._request(
            "GET", "settings/webhooks/log", params={"configId": _path_id(config_id), "count": max(1, min(count, 100))}
        )
        return [_webhook_delivery(row) for row in rows if isinstance(row, dict)] if isinstance(rows, list) else []

    def folder_title(self, folder_id: str | int) -> str:
        """``GET files/folder/{id}``: proves the key can read the folder; returns its title."""
        key = _path_id(folder_id)
        dto = self._request("GET", f"files/folder/{quote(key, safe='')}")
        if not isinstance(dto, dict):
            raise DocSpaceUnavailable(f"DocSpace GET files/folder/{key} returned no folder")
        return str(dto.get("title") or "")

    def find_subfolder(self, room_id: str | int, title: str) -> str | None:
        """The id of the direct subfolder ``title`` of ``room_id`` (lowest id on a tie), without creating it."""
        found = self._matching_subfolders(_path_id(room_id), title)
        return found[0] if found else None
