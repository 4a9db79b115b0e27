"""Which room a folder belongs to, from its path in DocSpace, remembered per folder for a bounded time."""

from __future__ import annotations

import enum
import json
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, Final, Literal, Protocol
from urllib.parse import quote

from shared.core.single_flight import SingleFlightCache
from shared.docspace.lookups import SharedLookups
from shared.docspace.transport import path_id
from shared.docspace.values import Room, _sid

ROOMS_ROOT_FOLDER_TYPE = 14
# A folder can be moved to another client's room: a remembered answer is asked again after this long.
DEFAULT_ROOM_TTL = 300.0


class ApiCalls(Protocol):
    """The one thing the directory needs of the transport (port; ``DocSpaceTransport`` is the real one)."""

    def request(self, method: str, path: str, *, params: dict[str, Any] | None = None, json: Any = None) -> Any: ...


class RoomDirectory:
    """Finds the room that holds a folder; answers (``None`` too) stay ``ttl`` seconds in a bounded LRU.

    The cache is shared by all threads; ``clock`` (seconds since the epoch) dates each answer, both for its
    expiry and for ``Room.seen_at``, which crosses processes in ``InvoiceDetected`` (hence wall time). With
    ``shared`` (Redis), replicas also leave their answers for each other; an answer found there keeps its date,
    so no answer in use is ever older than ``ttl``, whichever replica asked DocSpace.
    """

    def __init__(
        self,
        transport: ApiCalls,
        *,
        cache_size: int = 4096,
        ttl: float = DEFAULT_ROOM_TTL,
        clock: Callable[[], float] = time.time,
        shared: SharedLookups | None = None,
    ) -> None:
        self._transport = transport
        self._clock = clock
        self._ttl = ttl
        self._shared = shared
        self._rooms: SingleFlightCache[str, Room | None] = SingleFlightCache(
            max_entries=cache_size,
            ttl=ttl,
            clock=clock,
            expires=lambda room: room.seen_at.timestamp() + ttl if room and room.seen_at else None,
        )

    def find_room(self, folder_id: str | int) -> Room | None:
        """The room that holds ``folder_id``, or ``None`` when the folder is not inside a room.

        Uses ``GET files/folder/{id}/path`` (the breadcrumbs from the root down); the room is the first entry
        with a ``roomType``. ``payload.rootId`` is never used: it is the portal-wide "Rooms" section folder,
        the same for every room. Every folder on the path below the room is remembered as well, since it sits
        in the same room. Worker threads that miss together wait for one lookup instead of each spending an
        API call on the same path (the portal's rate limit counts them all). An answer older than ``ttl`` is
        asked again: the folder may have been moved to another room since.
        """
        key = path_id(folder_id)
        return self._rooms.get(key, lambda: self._look_up(key))

    def _look_up(self, key: str) -> Room | None:
        known = self._recall(key)
        if known is not _NOT_SHARED:
            return known
        seen_at = datetime.fromtimestamp(self._clock(), UTC)  # before the read: the answer is at least this fresh
        path = self._transport.request("GET", f"files/folder/{quote(key, safe='')}/path")
        entries = path if isinstance(path, list) else []
        room: Room | None = None
        below: list[str] = []
        for entry in entries:
            if not isinstance(entry, dict):
                continue
            if room is None and entry.get("roomType") is not None:
                room = Room(id=_sid(entry.get("id")), title=str(entry.get("title") or ""), seen_at=seen_at)
            if room is not None and entry.get("id") is not None:
                below.append(_sid(entry["id"]))
        for folder in set(below) - {key}:
            self._rooms.put(folder, room)
        self._share([key, *below], room, seen_at)
        return room

    def _recall(self, key: str) -> Room | Literal[_Shared.NOT_SHARED] | None:
        """Another replica's answer for ``key``, if it is younger than ``ttl``."""
        text = self._shared.recall(f"room:{key}") if self._shared is not None else None
        if text is None:
            return _NOT_SHARED
        try:
            doc = json.loads(text)
            seen_at = datetime.fromtimestamp(float(doc["seen_at"]), UTC)
            room = doc["room"]
            answer = None if room is None else Room(id=str(room["id"]), title=str(room["title"]), seen_at=seen_at)
        except (ValueError, TypeError, KeyError, OverflowError):
            return _NOT_SHARED  # not an answer this version wrote: ask DocSpace
        if self._clock() - seen_at.timestamp() > self._ttl:
            return _NOT_SHARED
        return answer

    def _share(self, folders: list[str], room: Room | None, seen_at: datetime) -> None:
        if self._shared is None:
            return
        doc = {"room": None if room is None else {"id": room.id, "title": room.title}, "seen_at": seen_at.timestamp()}
        left = seen_at.timestamp() + self._ttl - self._clock()
        for folder in dict.fromkeys(folders):
            self._shared.keep(f"room:{folder}", json.dumps(doc), seconds=left)


class _Shared(enum.Enum):
    """No shared answer (as distinct from a shared ``None``: the folder is in no room)."""

    NOT_SHARED = enum.auto()


_NOT_SHARED: Final = _Shared.NOT_SHARED
