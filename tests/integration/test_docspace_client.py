"""Contract tests of ``DocSpaceClient`` against the DocSpace simulator over real HTTP."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from typing import Any

import pytest
from pydantic import SecretStr

from shared.core.errors import PermanentError, TransientError
from shared.docspace import errors
from shared.docspace.client import DocSpaceClient, LookupCaching
from shared.docspace.transport import HttpOptions
from shared.docspace.values import Room
from shared.limits.retry_after import retry_after_from
from simulator import DocSpaceSimulator
from standins.ports import free_port

PATH_CALL = "/api/2.0/files/folder/*/path"


@pytest.fixture
def client_room(docspace_sim: DocSpaceSimulator) -> dict[str, str]:
    room = docspace_sim.create_room("Client A")
    uploads = docspace_sim.create_folder(room, "Uploads")
    incoming = docspace_sim.create_folder(room, "Incoming")
    return {"room": room, "uploads": uploads, "incoming": incoming}


def make_client(sim: DocSpaceSimulator, **kw: Any) -> DocSpaceClient:
    opts: dict[str, Any] = {"move_deadline": 3.0, "poll_interval": 0.02, "poll_max_interval": 0.2}
    opts.update(kw)
    return DocSpaceClient(sim.base_url, sim.api_key, **opts)


# --- get_file ---------------------------------------------------------------------------------------------


def test_get_file_maps_the_file_dto(docspace_sim: DocSpaceSimulator, docspace_client: DocSpaceClient) -> None:
    room = docspace_sim.create_room("Client A")
    fid = docspace_sim.upload_file(room, "SCAN-0042.PDF", size=86_234)
    before = datetime.now(UTC) - timedelta(seconds=5)

    info = docspace_client.get_file(int(fid))

    assert info.id == fid
    assert info.title == "SCAN-0042.PDF"
    assert info.folder_id == room
    assert info.version == 1
    assert info.extension == ".pdf"
    assert info.size == 86_234  # pureContentLength, not the "84.21 KB" text
    assert info.web_url and f"fileid={fid}" in info.web_url
    assert info.uploaded_by == "Simulated Admin"
    assert info.uploaded_at is not None and info.uploaded_at > before
    assert info.root_folder_type == 14
    assert docspace_client.get_file(fid) == info  # str ids work the same


def test_a_new_version_keeps_the_id(docspace_sim: DocSpaceSimulator, docspace_client: DocSpaceClient) -> None:
    room = docspace_sim.create_room("Client A")
    first = docspace_sim.upload_file(room, "invoice")
    again = docspace_sim.upload_file(room, "invoice", size=10)
    info = docspace_client.get_file(first)
    assert again == first
    assert (info.version, info.extension, info.size) == (2, "", 10)


def test_404_is_docspace_not_found(docspace_client: DocSpaceClient) -> None:
    with pytest.raises(errors.DocSpaceNotFound) as info:
        docspace_client.get_file(999_999)
    assert info.value.reason == "docspace_not_found"
    assert isinstance(info.value, PermanentError)
    assert "The required file was not found" in str(info.value)


def test_403_is_access_denied_with_the_envelope_message(
    docspace_sim: DocSpaceSimulator, docspace_client: DocSpaceClient
) -> None:
    fid = docspace_sim.upload_file(docspace_sim.create_room("R"), "a.pdf")
    docspace_sim.faults.add(
        method="GET",
        path="/api/2.0/files/file/*",
        error_rate=1.0,
        error_status=403,
        error_message="You don't have enough permission to view the file",
    )
    with pytest.raises(errors.DocSpaceAccessDenied) as info:
        docspace_client.get_file(fid)
    assert info.value.reason == "docspace_access_denied"
    assert "You don't have enough permission to view the file" in str(info.value)


def test_a_wrong_key_is_access_denied(docspace_sim: DocSpaceSimulator) -> None:
    with (
        DocSpaceClient(docspace_sim.base_url, "sk-wrong") as client,
        pytest.raises(errors.DocSpaceAccessDenied) as info,
    ):
        client.get_file(1)
    assert "401" in str(info.value)


def test_other_4xx_is_rejected(docspace_sim: DocSpaceSimulator, docspace_client: DocSpaceClient) -> None:
    docspace_sim.faults.add(path="/api/2.0/files/file/*", error_rate=1.0, error_status=400, error_message="Bad id")
    with pytest.raises(errors.DocSpaceRejected) as info:
        docspace_client.get_file(1)
    assert info.value.reason == "docspace_rejected"
    assert "Bad id" in str(info.value)


@pytest.mark.parametrize("status", [500, 502, 503, 504, 408])
def test_5xx_and_408_are_unavailable(
    docspace_sim: DocSpaceSimulator, docspace_client: DocSpaceClient, status: int
) -> None:
    docspace_sim.faults.add(path="/api/2.0/files/file/*", error_rate=1.0, error_status=status)
    with pytest.raises(errors.DocSpaceUnavailable) as info:
        docspace_client.get_file(1)
    assert info.value.reason == "docspace_unavailable"
    assert isinstance(info.value, TransientError)
    assert str(status) in str(info.value)


def test_an_outage_is_unavailable(docspace_sim: DocSpaceSimulator, docspace_client: DocSpaceClient) -> None:
    docspace_sim.faults.outage(5)
    with pytest.raises(errors.DocSpaceUnavailable, match="503"):
        docspace_client.find_room(docspace_sim.rooms_root_id)


def test_a_read_timeout_is_unavailable(docspace_sim: DocSpaceSimulator) -> None:
    docspace_sim.faults.add(path="/api/2.0/files/file/*", latency=1.0)
    with (
        make_client(docspace_sim, http=HttpOptions(timeout=(1.0, 0.2))) as client,
        pytest.raises(errors.DocSpaceUnavailable) as info,
    ):
        client.get_file(1)
    assert "timed out" in str(info.value)


def test_a_refused_connection_is_unavailable() -> None:
    with (
        DocSpaceClient(f"http://127.0.0.1:{free_port()}", "k", http=HttpOptions(timeout=(0.5, 0.5))) as client,
        pytest.raises(errors.DocSpaceUnavailable),
    ):
        client.get_file(1)


def test_a_429_is_retried_after_itsretry_after_from(
    docspace_sim: DocSpaceSimulator, docspace_client: DocSpaceClient
) -> None:
    fid = docspace_sim.upload_file(docspace_sim.create_room("R"), "a.pdf")
    docspace_sim.faults.add(method="GET", path="/api/2.0/files/file/*", burst_429=1, retry_after=1)
    started = time.monotonic()

    info = docspace_client.get_file(fid)

    elapsed = time.monotonic() - started
    assert info.id == fid
    assert 1.0 <= elapsed < 2.5
    assert docspace_sim.call_count("GET", "/api/2.0/files/file/*") == 2


def _rate_limited_get(sim: DocSpaceSimulator, http: HttpOptions) -> errors.DocSpaceUnavailable:
    """``get_file`` by a client with ``http``, which must give up as ``docspace_rate_limited``: the error."""
    with make_client(sim, http=http) as client, pytest.raises(errors.DocSpaceUnavailable) as info:
        client.get_file(1)
    assert info.value.reason == "docspace_rate_limited"
    return info.value


def test_a_429_beyond_max_retry_after_is_raised_at_once(docspace_sim: DocSpaceSimulator) -> None:
    docspace_sim.faults.add(path="/api/2.0/files/file/*", burst_429=1, retry_after=30)
    assert _rate_limited_get(docspace_sim, HttpOptions(max_retry_after=10)).retry_after == 30
    assert docspace_sim.call_count("GET") == 1


def test_429_retries_are_bounded(docspace_sim: DocSpaceSimulator) -> None:
    docspace_sim.faults.add(path="/api/2.0/files/file/*", burst_429=5, retry_after=0)
    _rate_limited_get(docspace_sim, HttpOptions(rate_limit_retries=2))
    assert docspace_sim.call_count("GET") == 3


def test_the_rate_limiter_is_honoured(docspace_sim: DocSpaceSimulator, docspace_client: DocSpaceClient) -> None:
    room = docspace_sim.create_room("R")
    fid = docspace_sim.upload_file(room, "a.pdf")
    docspace_sim.faults.set_rate_limit(requests_per_minute=2, retry_after=30)
    docspace_client.get_file(fid)
    docspace_client.get_file(fid)
    with pytest.raises(errors.DocSpaceUnavailable) as info:
        docspace_client.get_file(fid)
    assert info.value.reason == "docspace_rate_limited"
    assert info.value.retry_after is not None and info.value.retry_after >= 30


def test_retry_after_forms() -> None:
    assert retry_after_from({"Retry-After": "7"}) == 7
    future = format_datetime(datetime.now(UTC) + timedelta(seconds=20), usegmt=True)
    assert 15 < (retry_after_from({"Retry-After": future}) or 0) <= 20
    assert retry_after_from({"X-RateLimit-Reset": "12"}) == 12
    assert retry_after_from({"X-RateLimit-Reset": str(int(time.time()) + 9)}) == pytest.approx(9, abs=1.5)
    assert retry_after_from({}) is None


# --- secrets --------------------------------------------------------------------------------------------


def test_the_key_never_shows(docspace_sim: DocSpaceSimulator) -> None:
    for key in (docspace_sim.api_key, SecretStr(docspace_sim.api_key)):
        with DocSpaceClient(docspace_sim.base_url, key) as client:
            assert docspace_sim.api_key not in repr(client)
            assert docspace_sim.api_key not in repr(client.__dict__)
            assert docspace_sim.api_key not in repr(client.transport.__dict__)
            assert docspace_sim.api_key not in str(client.transport._session.headers)
            assert client.find_room(docspace_sim.rooms_root_id) is None  # and it still authenticates


# --- find_room --------------------------------------------------------------------------------------------


def test_the_room_of_a_file_three_folders_deep_is_found_and_cached(
    docspace_sim: DocSpaceSimulator, docspace_client: DocSpaceClient
) -> None:
    room = docspace_sim.create_room("Client B")
    a = docspace_sim.create_folder(room, "2026")
    b = docspace_sim.create_folder(a, "09")
    c = docspace_sim.create_folder(b, "scans")
    fid = docspace_sim.upload_file(c, "invoice.pdf")
    folder = docspace_client.get_file(fid).folder_id
    docspace_sim.reset_calls()

    found = docspace_client.find_room(int(folder))
    assert found == Room(id=room, title="Client B")
    assert docspace_sim.call_count("GET", PATH_CALL) == 1

    assert docspace_client.find_room(folder) == found
    assert docspace_client.find_room(b) == found  # folders on the same path were cached too
    assert docspace_sim.call_count("GET", PATH_CALL) == 1


def test_threads_that_miss_the_cache_together_make_one_path_call(
    docspace_sim: DocSpaceSimulator, docspace_client: DocSpaceClient
) -> None:
    room = docspace_sim.create_room("Busy client")
    folder = docspace_sim.create_folder(room, "Uploads")
    docspace_sim.faults.add(method="GET", path=PATH_CALL, latency=0.2)  # long enough for all to miss at once
    docspace_sim.reset_calls()
    with ThreadPoolExecutor(16) as pool:
        rooms = list(pool.map(lambda _: docspace_client.find_room(folder), range(16)))
    assert rooms == [Room(room, "Busy client")] * 16
    assert docspace_sim.call_count("GET", PATH_CALL) == 1


def test_the_rooms_root_is_never_taken_for_the_room(
    docspace_sim: DocSpaceSimulator, docspace_client: DocSpaceClient
) -> None:
    room_a = docspace_sim.create_room("A")
    room_b = docspace_sim.create_room("B")
    assert docspace_client.find_room(room_a) == Room(room_a, "A")
    assert docspace_client.find_room(room_b) == Room(room_b, "B")
    assert docspace_client.find_room(docspace_sim.rooms_root_id) is None


def test_a_folder_outside_rooms_has_no_room(docspace_sim: DocSpaceSimulator, docspace_client: DocSpaceClient) -> None:
    mine = docspace_sim.create_folder(docspace_sim.my_documents_id, "Private")
    assert docspace_client.find_room(mine) is None


def test_the_room_cache_is_bounded(docspace_sim: DocSpaceSimulator) -> None:
    rooms = [docspace_sim.create_room(f"R{i}") for i in range(3)]
    with make_client(docspace_sim, lookups=LookupCaching(size=2)) as client:
        for r in rooms:
            client.find_room(r)
        client.find_room(rooms[2])
        assert docspace_sim.call_count("GET", PATH_CALL) == 3
        client.find_room(rooms[0])  # evicted: asks again
        assert docspace_sim.call_count("GET", PATH_CALL) == 4


def test_find_room_of_a_missing_folder(docspace_client: DocSpaceClient) -> None:
    with pytest.raises(errors.DocSpaceNotFound):
        docspace_client.find_room(424242)


# --- find_or_create_folder --------------------------------------------------------------------------------


def test_find_or_create_is_safe_with_eight_threads(docspace_sim: DocSpaceSimulator) -> None:
    room = docspace_sim.create_room("Client C")
    docspace_sim.faults.add(method="POST", path="/api/2.0/files/folder/*", latency=0.1)  # widen the race window
    results: list[str] = []
    failures: list[BaseException] = []
    barrier = threading.Barrier(8)
    with make_client(docspace_sim) as client:

        def work() -> None:
            try:
                barrier.wait()
                results.append(client.find_or_create_folder(int(room), "Incoming"))
            except BaseException as exc:
                failures.append(exc)

        threads = [threading.Thread(target=work) for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(10)
        assert not failures
        assert len(results) == 8 and len(set(results)) == 1
        assert [f["title"] for f in docspace_sim.subfolders(room)] == ["Incoming"]
        assert docspace_sim.call_count("POST", "/api/2.0/files/folder/*") == 1
        assert client.find_or_create_folder(room) == results[0]  # cached
        assert docspace_sim.call_count("POST", "/api/2.0/files/folder/*") == 1


def test_find_or_create_matches_exactly(docspace_sim: DocSpaceSimulator, docspace_client: DocSpaceClient) -> None:
    room = docspace_sim.create_room("Client D")
    docspace_sim.create_folder(room, "Incoming old")
    docspace_sim.create_folder(room, "incoming")
    nested = docspace_sim.create_folder(docspace_sim.create_folder(room, "Archive"), "Incoming")

    got = docspace_client.find_or_create_folder(room)

    assert got != nested
    assert sorted(f["title"] for f in docspace_sim.subfolders(room)) == [
        "Archive",
        "Incoming",
        "Incoming old",
        "incoming",
    ]
    assert {f["id"] for f in docspace_sim.subfolders(room) if f["title"] == "Incoming"} == {int(got)}


def test_find_or_create_picks_the_lowest_id_after_a_cross_process_race(
    docspace_sim: DocSpaceSimulator,
) -> None:
    room = docspace_sim.create_room("Client E")
    first = docspace_sim.create_folder(room, "Incoming")
    docspace_sim.create_folder(room, "Incoming")  # what a second process racing us would leave behind
    with make_client(docspace_sim) as one, make_client(docspace_sim) as two:
        assert one.find_or_create_folder(room) == first
        assert two.find_or_create_folder(room) == first


def test_find_or_create_finds_an_existing_folder_without_creating(
    docspace_sim: DocSpaceSimulator, docspace_client: DocSpaceClient, client_room: dict[str, str]
) -> None:
    assert docspace_client.find_or_create_folder(client_room["room"]) == client_room["incoming"]
    assert docspace_sim.call_count("POST") == 0


def test_find_or_create_in_a_missing_room(docspace_client: DocSpaceClient) -> None:
    with pytest.raises(errors.DocSpaceNotFound):
        docspace_client.find_or_create_folder(777_777)


# --- move_file ------------------------------------------------------------------------------------------


def test_a_move_is_polled_and_confirmed(
    docspace_sim: DocSpaceSimulator, docspace_client: DocSpaceClient, client_room: dict[str, str]
) -> None:
    fid = docspace_sim.upload_file(client_room["uploads"], "Invoice-1.pdf")
    result = docspace_client.move_file(int(fid), int(client_room["incoming"]))
    assert (result.file_id, result.folder_id, result.confirmed_by) == (fid, client_room["incoming"], "operation")
    assert docspace_sim.file(fid)["folderId"] == int(client_room["incoming"])
    assert docspace_sim.call_count("GET", "/api/2.0/files/fileops") >= 1


def test_duplicate_moves_next_to_a_same_titled_file(
    docspace_sim: DocSpaceSimulator, docspace_client: DocSpaceClient, client_room: dict[str, str]
) -> None:
    old = docspace_sim.upload_file(client_room["incoming"], "Invoice-1.pdf")
    fid = docspace_sim.upload_file(client_room["uploads"], "Invoice-1.pdf")

    result = docspace_client.move_file(fid, client_room["incoming"])  # Duplicate is the default

    assert result.file_id == fid and result.confirmed_by == "operation"
    assert sorted(f["id"] for f in docspace_sim.files_in(client_room["incoming"])) == sorted([int(old), int(fid)])


def test_skip_in_the_destination_is_detected_not_reported_as_moved(
    docspace_sim: DocSpaceSimulator, docspace_client: DocSpaceClient, client_room: dict[str, str]
) -> None:
    docspace_sim.upload_file(client_room["incoming"], "Invoice-1.pdf")
    fid = docspace_sim.upload_file(client_room["uploads"], "Invoice-1.pdf")

    with pytest.raises(errors.MoveSkipped) as info:
        docspace_client.move_file(fid, client_room["incoming"], conflict="Skip")

    assert info.value.reason == "docspace_move_skipped"
    assert isinstance(info.value, PermanentError)
    assert docspace_sim.file(fid)["folderId"] == int(client_room["uploads"])


def test_overwrite_returns_the_destination_files_id(
    docspace_sim: DocSpaceSimulator, docspace_client: DocSpaceClient, client_room: dict[str, str]
) -> None:
    target = docspace_sim.upload_file(client_room["incoming"], "Invoice-1.pdf")
    fid = docspace_sim.upload_file(client_room["uploads"], "Invoice-1.pdf", size=5)

    result = docspace_client.move_file(fid, client_room["incoming"], conflict="Overwrite")

    assert result.file_id == target
    assert result.confirmed_by == "operation"
    assert docspace_sim.file(target)["version"] == 2
    with pytest.raises(errors.DocSpaceNotFound):
        docspace_client.get_file(fid)


def test_a_move_whose_report_was_consumed_still_ends_confirmed(
    docspace_sim: DocSpaceSimulator, docspace_client: DocSpaceClient, client_room: dict[str, str]
) -> None:
    fid = docspace_sim.upload_file(client_room["uploads"], "Invoice-2.pdf")
    # Hold every status read long enough for "another reader" to take the finished report first.
    docspace_sim.faults.add(method="GET", path="/api/2.0/files/fileops", latency=0.4)
    stealer = threading.Timer(0.2, docspace_sim.consume_operation_reports)
    stealer.start()
    try:
        result = docspace_client.move_file(fid, client_room["incoming"])
    finally:
        stealer.join()
    assert result.confirmed_by == "file_location"
    assert (result.file_id, result.folder_id) == (fid, client_room["incoming"])


def test_a_consumed_report_of_a_skipped_move_is_report_lost(
    docspace_sim: DocSpaceSimulator, docspace_client: DocSpaceClient, client_room: dict[str, str]
) -> None:
    docspace_sim.upload_file(client_room["incoming"], "Invoice-3.pdf")
    fid = docspace_sim.upload_file(client_room["uploads"], "Invoice-3.pdf")
    docspace_sim.faults.add(method="GET", path="/api/2.0/files/fileops", latency=0.4)
    stealer = threading.Timer(0.2, docspace_sim.consume_operation_reports)
    stealer.start()
    try:
        with pytest.raises(errors.MoveReportLost) as info:
            docspace_client.move_file(fid, client_room["incoming"], conflict="Skip")
    finally:
        stealer.join()
    assert isinstance(info.value, TransientError)


def test_a_failed_operation_keeps_its_message(
    docspace_sim: DocSpaceSimulator, docspace_client: DocSpaceClient, client_room: dict[str, str]
) -> None:
    target = docspace_sim.upload_file(client_room["incoming"], "Invoice-4.pdf")
    docspace_sim.lock_file(target)
    fid = docspace_sim.upload_file(client_room["uploads"], "Invoice-4.pdf")
    with pytest.raises(errors.MoveFailed) as info:
        docspace_client.move_file(fid, client_room["incoming"], conflict="Overwrite")
    assert info.value.reason == "docspace_move_failed"
    assert "locked" in str(info.value)

    docspace_sim.fail_next_move("Quota exceeded in room")
    with pytest.raises(errors.MoveFailed, match="Quota exceeded in room"):
        docspace_client.move_file(fid, client_room["incoming"])


def test_a_move_past_its_deadline_is_unconfirmed(docspace_sim: DocSpaceSimulator, client_room: dict[str, str]) -> None:
    fid = docspace_sim.upload_file(client_room["uploads"], "Invoice-5.pdf")
    docspace_sim.set_move_delay(2.0)
    with make_client(docspace_sim, move_deadline=0.3) as client, pytest.raises(errors.MoveUnconfirmed) as info:
        client.move_file(fid, client_room["incoming"])
    assert info.value.reason == "docspace_move_unconfirmed"
    assert isinstance(info.value, TransientError)


def test_a_file_already_in_the_destination_is_success(
    docspace_sim: DocSpaceSimulator, docspace_client: DocSpaceClient, client_room: dict[str, str]
) -> None:
    fid = docspace_sim.upload_file(client_room["incoming"], "Invoice-6.pdf")
    for conflict in ("Duplicate", "Skip", "Overwrite"):
        result = docspace_client.move_file(fid, client_room["incoming"], conflict=conflict)
        assert (result.file_id, result.folder_id) == (fid, client_room["incoming"])
    assert [f["id"] for f in docspace_sim.files_in(client_room["incoming"])] == [int(fid)]


def test_a_redelivered_move_after_a_crash_is_success(
    docspace_sim: DocSpaceSimulator, docspace_client: DocSpaceClient, client_room: dict[str, str]
) -> None:
    fid = docspace_sim.upload_file(client_room["uploads"], "Invoice-7.pdf")
    docspace_client.move_file(fid, client_room["incoming"])
    again = docspace_client.move_file(fid, client_room["incoming"], conflict="Skip")
    assert again.folder_id == client_room["incoming"]
    assert again.confirmed_by == "file_location"


def test_moving_a_missing_file_or_to_a_missing_folder_is_not_found(
    docspace_sim: DocSpaceSimulator, docspace_client: DocSpaceClient, client_room: dict[str, str]
) -> None:
    fid = docspace_sim.upload_file(client_room["uploads"], "Invoice-8.pdf")
    with pytest.raises(errors.DocSpaceNotFound):
        docspace_client.move_file(555_555, client_room["incoming"])
    with pytest.raises(errors.DocSpaceNotFound):
        docspace_client.move_file(fid, 555_555)


def test_moving_into_the_rooms_root_is_access_denied(
    docspace_sim: DocSpaceSimulator, docspace_client: DocSpaceClient, client_room: dict[str, str]
) -> None:
    fid = docspace_sim.upload_file(client_room["uploads"], "Invoice-9.pdf")
    with pytest.raises(errors.DocSpaceAccessDenied, match="Access denied"):
        docspace_client.move_file(fid, docspace_sim.rooms_root_id)


def test_a_5xx_while_polling_does_not_lose_the_move(
    docspace_sim: DocSpaceSimulator, docspace_client: DocSpaceClient, client_room: dict[str, str]
) -> None:
    fid = docspace_sim.upload_file(client_room["uploads"], "Invoice-10.pdf")
    docspace_sim.faults.add(method="GET", path="/api/2.0/files/fileops", error_rate=0.5, error_status=502)
    result = docspace_client.move_file(fid, client_room["incoming"])
    assert result.folder_id == client_room["incoming"]
