"""The folder -> room directory: answers are remembered for their TTL only, so a folder moved between rooms is seen."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from shared.docspace.rooms import RoomDirectory
from shared.docspace.values import Room
from tests.support.clock import FakeClock

ROOMS_ROOT = {"id": 18902, "title": "Rooms", "rootFolderType": 14}
ACME = {"id": 86193, "title": "Acme Ltd", "roomType": 5, "parentId": 18902}
GLOBEX = {"id": 86300, "title": "Globex", "roomType": 5, "parentId": 18902}


class FolderPaths:
    """Answers ``GET files/folder/{id}/path`` from a table the test edits; records every call."""

    def __init__(self) -> None:
        self.paths: dict[str, list[dict[str, Any]]] = {}
        self.calls: list[str] = []

    def request(self, method: str, path: str, *, params: dict[str, Any] | None = None, json: Any = None) -> Any:
        assert method == "GET" and path.startswith("files/folder/") and path.endswith("/path"), (method, path)
        folder = path.removeprefix("files/folder/").removesuffix("/path")
        self.calls.append(folder)
        return self.paths[folder]


def _uploads_in(room: dict[str, Any]) -> list[dict[str, Any]]:
    return [ROOMS_ROOT, room, {"id": 86200, "title": "Uploads", "parentId": room["id"]}]


def test_a_folder_moved_to_another_room_is_found_there_once_the_answer_expires() -> None:
    clock, api = FakeClock(1_790_000_000.0), FolderPaths()
    api.paths["86200"] = _uploads_in(ACME)
    rooms = RoomDirectory(api, ttl=300, clock=clock)

    assert rooms.find_room("86200") == Room("86193", "Acme Ltd")
    api.paths["86200"] = _uploads_in(GLOBEX)  # moved from Acme's room to Globex's: same folder id
    clock.now += 300
    assert rooms.find_room("86200") == Room("86193", "Acme Ltd")  # still within its TTL: no call
    assert api.calls == ["86200"]

    clock.now += 0.001
    assert rooms.find_room("86200") == Room("86300", "Globex")
    assert api.calls == ["86200", "86200"]


def test_an_answer_is_dated_by_the_read_it_came_from() -> None:
    clock, api = FakeClock(1_790_000_000.0), FolderPaths()
    api.paths["86200"] = _uploads_in(ACME)
    rooms = RoomDirectory(api, ttl=300, clock=clock)
    read_at = clock.now

    first = rooms.find_room("86200")
    clock.now += 120
    again = rooms.find_room("86200")

    assert first is not None and again is not None
    assert first.seen_at == again.seen_at == datetime.fromtimestamp(read_at, UTC)


def test_folders_learnt_on_the_way_expire_too() -> None:
    clock, api = FakeClock(1_790_000_000.0), FolderPaths()
    api.paths["86200"] = _uploads_in(ACME)
    rooms = RoomDirectory(api, ttl=60, clock=clock)
    rooms.find_room("86200")  # also learns the room folder itself

    assert rooms.find_room("86193") == Room("86193", "Acme Ltd")
    assert api.calls == ["86200"]
    clock.now += 61
    api.paths["86193"] = [ROOMS_ROOT, ACME]
    assert rooms.find_room("86193") == Room("86193", "Acme Ltd")
    assert api.calls == ["86200", "86193"]


def test_not_in_a_room_is_remembered_for_the_ttl_as_well() -> None:
    clock, api = FakeClock(1_790_000_000.0), FolderPaths()
    api.paths["500"] = [{"id": 400, "title": "My documents", "rootFolderType": 5}, {"id": 500, "title": "Drafts"}]
    rooms = RoomDirectory(api, ttl=60, clock=clock)

    assert rooms.find_room("500") is None
    api.paths["500"] = [ROOMS_ROOT, ACME, {"id": 500, "title": "Drafts", "parentId": 86193}]
    assert rooms.find_room("500") is None
    clock.now += 61
    assert rooms.find_room("500") == Room("86193", "Acme Ltd")
    assert api.calls == ["500", "500"]


class SharedMemo:
    """The replicas' shared answers (Redis in production): a dict whose entries expire on the test's clock."""

    def __init__(self, clock: FakeClock) -> None:
        self.clock = clock
        self.answers: dict[str, tuple[float, str]] = {}

    def recall(self, key: str) -> str | None:
        expires, answer = self.answers.get(key, (0.0, ""))
        return answer if expires > self.clock() else None

    def keep(self, key: str, answer: str, *, seconds: float) -> None:
        self.answers[key] = (self.clock() + seconds, answer)


def test_replicas_share_one_path_read_per_folder_through_the_shared_memo() -> None:
    clock, api = FakeClock(1_790_000_000.0), FolderPaths()
    memo = SharedMemo(clock)
    api.paths["86200"] = _uploads_in(ACME)
    first, second = (RoomDirectory(api, ttl=300, clock=clock, shared=memo) for _ in range(2))

    assert first.find_room("86200") == Room("86193", "Acme Ltd")
    clock.now += 100
    found = second.find_room("86200")

    assert found == Room("86193", "Acme Ltd")
    assert api.calls == ["86200"]  # the second replica asked no one but the memo
    assert found is not None and found.seen_at == datetime.fromtimestamp(clock.now - 100, UTC)  # its true age


def test_a_shared_answer_is_never_used_past_the_ttl_of_the_read_that_made_it() -> None:
    clock, api = FakeClock(1_790_000_000.0), FolderPaths()
    memo = SharedMemo(clock)
    api.paths["86200"] = _uploads_in(ACME)
    first, second = (RoomDirectory(api, ttl=300, clock=clock, shared=memo) for _ in range(2))
    first.find_room("86200")
    clock.now += 250
    second.find_room("86200")  # recalled, 250 s old: the second replica may keep it 50 s more, not 300
    api.paths["86200"] = _uploads_in(GLOBEX)

    clock.now += 51

    assert second.find_room("86200") == Room("86300", "Globex")
    assert api.calls == ["86200", "86200"]
