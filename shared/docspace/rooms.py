"""Which room a folder belongs to, from its path in DocSpace, remembered per folder."""

from __future__ import annotations

from urllib.parse import quote

from shared.docspace.transport import DocSpaceTransport, path_id
from shared.docspace.values import Room, _sid
from shared.single_flight import SingleFlightCache

ROOMS_ROOT_FOLDER_TYPE = 14


class RoomDirectory:
    """Finds the room that holds a folder; answers (``None`` too) stay in a bounded LRU shared by all threads."""

    def __init__(self, transport: DocSpaceTransport, *, cache_size: int = 4096) -> None:
        self._transport = transport
        self._rooms: SingleFlightCache[str, Room | None] = SingleFlightCache(max_entries=cache_size)

    def find_room(self, folder_id: str | int) -> Room | None:
        """The room that holds ``folder_id``, or ``None`` when the folder is not inside a room.

        Uses ``GET files/folder/{id}/path`` (the breadcrumbs from the root down); the room is the first entry
        with a ``roomType``. ``payload.rootId`` is never used: it is the portal-wide "Rooms" section folder,
        the same for every room. Every folder on the path below the room is remembered as well, since it sits
        in the same room. Worker threads that miss together wait for one lookup instead of each spending an
        API call on the same path (the portal's rate limit counts them all).
        """
        key = path_id(folder_id)
        return self._rooms.get(key, lambda: self._look_up(key))

    def _look_up(self, key: str) -> Room | None:
        path = self._transport.request("GET", f"files/folder/{quote(key, safe='')}/path")
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
        for folder in set(below) - {key}:
            self._rooms.put(folder, room)
        return room
