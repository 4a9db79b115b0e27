"""The mover: where it moves, what it announces, once per invoice, and how failures release the claim."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from consumers.mover.handler import move_invoice
from shared.core.errors import BrokerUnavailable, PermanentError
from shared.core.events import IncomingFolder, InvoiceDetected, InvoiceReceived
from shared.core.handling import Handled, Outcome
from shared.docspace.errors import DocSpaceNotFound, MoveSkipped
from shared.store.idempotency import Claim
from shared.store.sqlite_store import SqliteStore
from tests.support.fakes import FakeDocSpace, RecordingEmitter
from tests.support.message_builders import invoice_detected

ROOM = "6590431"
INCOMING = "6590500"


@pytest.fixture
def docspace() -> FakeDocSpace:
    ds = FakeDocSpace()
    ds.add_room(ROOM, "Acme Ltd", INCOMING)
    ds.add_file("3358301", "Invoice-2026-0917.pdf", ROOM)
    return ds


@pytest.fixture
def emit() -> RecordingEmitter:
    return RecordingEmitter()


def _received(reason: str) -> Handled:
    """What the mover returns once the usual invoice is in Acme's Incoming folder, ``reason`` saying how."""
    return Handled(
        Outcome.RECEIVED,
        reason,
        {
            "title": "Invoice-2026-0917.pdf",
            "folder_id": INCOMING,
            # What `trace` shows: the room and the Incoming folder, by name.
            "folder": "Acme Ltd/Incoming",
            "invoice_id": "3358301:v1",
            "client": "acme",
        },
    )


def test_moves_into_the_configured_incoming_folder(
    docspace: FakeDocSpace, emit: RecordingEmitter, store: SqliteStore
) -> None:
    handled = move_invoice(invoice_detected(), files=docspace, emit=emit, store=store)

    assert handled == _received("moved (operation)")
    assert docspace.calls == [("move_file", ("3358301", INCOMING, "Duplicate"))]
    assert docspace.files["3358301"].folder_id == INCOMING
    assert [e.folder_id for e in emit.events] == [INCOMING]


def test_the_conflict_mode_is_passed_to_the_move(
    docspace: FakeDocSpace, emit: RecordingEmitter, store: SqliteStore
) -> None:
    move_invoice(invoice_detected(), files=docspace, emit=emit, store=store, conflict="Overwrite")

    assert docspace.calls_to("move_file") == [("3358301", INCOMING, "Overwrite")]


def test_finds_or_creates_the_folder_by_name_when_no_id_is_configured(
    docspace: FakeDocSpace, emit: RecordingEmitter, store: SqliteStore
) -> None:
    handled = move_invoice(
        invoice_detected(incoming=IncomingFolder(id=None, name="Eingang")), files=docspace, emit=emit, store=store
    )

    created = docspace.named_folders[(ROOM, "Eingang")]
    assert docspace.calls == [
        ("find_or_create_folder", (ROOM, "Eingang")),
        ("move_file", ("3358301", created, "Duplicate")),
    ]
    assert (handled.outcome, handled.reason) == ("received", "moved (operation)")
    assert handled.details["folder_id"] == created
    assert [e.folder_id for e in emit.events] == [created]


def test_a_file_already_in_incoming_is_not_moved_but_still_announced(
    docspace: FakeDocSpace, emit: RecordingEmitter, store: SqliteStore
) -> None:
    docspace.add_file("3358301", "Invoice-2026-0917.pdf", INCOMING)

    handled = move_invoice(
        invoice_detected(folder_id=INCOMING, already_in_incoming=True), files=docspace, emit=emit, store=store
    )

    assert handled == _received("already_in_incoming")
    assert docspace.calls_to("move_file") == []
    [event] = emit.events
    assert (event.file_id, event.folder_id) == ("3358301", INCOMING)


def test_a_file_in_the_named_incoming_folder_is_not_moved(
    docspace: FakeDocSpace, emit: RecordingEmitter, store: SqliteStore
) -> None:
    # No id configured, so the classifier could not tell; the mover sees the file already sits in the folder.
    folder = docspace.find_or_create_folder(ROOM, "Incoming")
    docspace.calls.clear()

    handled = move_invoice(
        invoice_detected(folder_id=folder, incoming=IncomingFolder(id=None)), files=docspace, emit=emit, store=store
    )

    assert (handled.outcome, handled.reason) == ("received", "already_in_incoming")
    assert docspace.calls_to("move_file") == []
    assert len(emit.events) == 1


def test_the_announcement_carries_the_moved_file_id_and_no_acl_data(
    docspace: FakeDocSpace, emit: RecordingEmitter, store: SqliteStore
) -> None:
    # DocSpace's Overwrite conflict mode can leave the invoice under another file id.
    docspace.new_id_on_move["3358301"] = "3358999"
    before = datetime.now(UTC)

    move_invoice(invoice_detected(), files=docspace, emit=emit, store=store, conflict="Overwrite")

    [event] = emit.events
    assert isinstance(event, InvoiceReceived)
    assert event.file_id == "3358999"
    assert event.folder_id == INCOMING
    assert event.invoice_id == "3358301:v1"
    assert event.event_id == "141022"
    assert (event.title, event.extension, event.size) == ("Invoice-2026-0917.pdf", ".pdf", 52_113)
    assert (event.client, event.room_id, event.room_title) == ("acme", ROOM, "Acme Ltd")
    assert event.manager_email == "ann@acme.example"
    assert event.web_url == "https://docspace.example/doceditor?fileid=3358301"
    assert event.uploaded_by == "Ann Uploader"
    assert event.uploaded_at == datetime(2026, 9, 18, 8, 14, 2, tzinfo=UTC)
    assert before <= event.moved_at <= datetime.now(UTC)
    dumped = event.model_dump()
    assert not any("secur" in key.lower() or "acl" in key.lower() or "share" in key.lower() for key in dumped)


def test_a_duplicate_detection_moves_and_announces_once(
    docspace: FakeDocSpace, emit: RecordingEmitter, store: SqliteStore
) -> None:
    first = move_invoice(invoice_detected(), files=docspace, emit=emit, store=store)
    second = move_invoice(invoice_detected(event_id="141023"), files=docspace, emit=emit, store=store)

    assert (first.outcome, first.reason) == ("received", "moved (operation)")
    assert second == Handled(Outcome.IGNORED, "duplicate", {"title": "Invoice-2026-0917.pdf"})
    assert len(docspace.calls_to("move_file")) == 1
    assert len(emit.events) == 1


def test_a_skipped_move_is_permanent_and_releases_the_claim(
    docspace: FakeDocSpace, emit: RecordingEmitter, store: SqliteStore
) -> None:
    docspace.fail_next("move_file", MoveSkipped("the destination already holds Invoice-2026-0917.pdf"))

    with pytest.raises(MoveSkipped) as raised:
        move_invoice(invoice_detected(), files=docspace, emit=emit, store=store, conflict="Skip")

    assert isinstance(raised.value, PermanentError)
    assert emit.events == []
    assert store.claim("mover:3358301:v1", lease_seconds=5) is Claim.ACQUIRED


def test_a_failed_announcement_releases_the_claim_and_the_retry_announces_once(
    docspace: FakeDocSpace, emit: RecordingEmitter, store: SqliteStore
) -> None:
    emit.fail_next(BrokerUnavailable("publish not confirmed"))

    with pytest.raises(BrokerUnavailable):
        move_invoice(invoice_detected(), files=docspace, emit=emit, store=store)
    assert docspace.files["3358301"].folder_id == INCOMING  # the move happened before the publish failed

    retried = move_invoice(invoice_detected(), files=docspace, emit=emit, store=store)

    # The retry moves again; the file is already there, which the client reports as a move confirmed by location.
    assert retried == _received("moved (file_location)")
    assert len(docspace.calls_to("move_file")) == 2
    assert [(e.file_id, e.folder_id) for e in emit.events] == [("3358301", INCOMING)]


def upload_detected(modified_on: str = "2026-09-18T08:14:02Z", **overrides: Any) -> InvoiceDetected:
    """A detection decided from the signed delivery alone: it names the upload, not yet the version."""
    return invoice_detected(
        invoice_id=None,
        upload_id=f"3358301@{modified_on}",
        version=None,
        size=None,
        web_url=None,
        uploaded_by=None,
        uploaded_at=None,
        **overrides,
    )


def test_an_upload_is_named_from_the_moves_own_report_without_reading_the_file(
    docspace: FakeDocSpace, emit: RecordingEmitter, store: SqliteStore
) -> None:
    docspace.add_file("3358301", "Invoice-2026-0917.pdf", ROOM, version=4, size=52_113)

    handled = move_invoice(upload_detected(), files=docspace, emit=emit, store=store)

    assert (handled.outcome, handled.details["invoice_id"]) == ("received", "3358301:v4")
    [received] = emit.events
    assert (received.invoice_id, received.size, received.uploaded_by) == ("3358301:v4", 52_113, "Ann Uploader")
    assert received.web_url == "https://docspace.example/doceditor?fileid=3358301"
    assert [name for name, _ in docspace.calls] == ["move_file"]  # one DocSpace call: the move (and its poll)


def test_two_uploads_that_reach_the_same_version_announce_it_once(
    docspace: FakeDocSpace, emit: RecordingEmitter, store: SqliteStore
) -> None:
    # A redelivery that outlived its upload's claim names another upload, but the file has one version.
    first = move_invoice(upload_detected("2026-09-18T08:14:02Z"), files=docspace, emit=emit, store=store)
    second = move_invoice(upload_detected("2026-09-18T08:14:09Z"), files=docspace, emit=emit, store=store)

    assert first.outcome == "received"
    assert second == Handled(
        Outcome.IGNORED, "duplicate", {"title": "Invoice-2026-0917.pdf", "invoice_id": "3358301:v1"}
    )
    assert [e.invoice_id for e in emit.events] == ["3358301:v1"]


def test_an_upload_already_in_incoming_reads_its_version_once(
    docspace: FakeDocSpace, emit: RecordingEmitter, store: SqliteStore
) -> None:
    docspace.add_file("3358301", "Invoice-2026-0917.pdf", INCOMING, version=2)

    handled = move_invoice(
        upload_detected(folder_id=INCOMING, already_in_incoming=True), files=docspace, emit=emit, store=store
    )

    assert (handled.reason, handled.details["invoice_id"]) == ("already_in_incoming", "3358301:v2")
    assert [name for name, _ in docspace.calls] == ["get_file"]


def test_an_upload_deleted_before_its_move_fails_like_any_missing_file(
    docspace: FakeDocSpace, emit: RecordingEmitter, store: SqliteStore
) -> None:
    del docspace.files["3358301"]

    with pytest.raises(DocSpaceNotFound):
        move_invoice(upload_detected(), files=docspace, emit=emit, store=store)
    assert emit.events == []
    assert store.claim("mover:upload:3358301@2026-09-18T08:14:02Z", lease_seconds=5) is Claim.ACQUIRED


# --- a room decision older than the room TTL is checked before the move ----------------------------------

UPLOADS = "6590440"  # a folder inside Acme's room, which someone may move to another client's room
ROOM_TTL = 300.0


def _decided(age_seconds: float | None) -> InvoiceDetected:
    seen = None if age_seconds is None else datetime.now(UTC) - timedelta(seconds=age_seconds)
    return invoice_detected(folder_id=UPLOADS, room_seen_at=seen)


def test_a_fresh_room_decision_costs_no_extra_call(
    docspace: FakeDocSpace, emit: RecordingEmitter, store: SqliteStore
) -> None:
    docspace.add_file("3358301", "Invoice-2026-0917.pdf", UPLOADS)
    docspace.folder_room[UPLOADS] = docspace.folder_room[ROOM]

    move_invoice(_decided(age_seconds=5), files=docspace, emit=emit, store=store, room_ttl=ROOM_TTL)

    assert docspace.calls == [("move_file", ("3358301", INCOMING, "Duplicate"))]


def test_a_stale_decision_for_a_folder_moved_to_another_room_moves_nothing_and_dead_letters(
    docspace: FakeDocSpace, emit: RecordingEmitter, store: SqliteStore
) -> None:
    docspace.add_file("3358301", "Invoice-2026-0917.pdf", UPLOADS)
    docspace.add_room("7700001", "Globex", UPLOADS)  # the folder now sits in Globex's room

    with pytest.raises(PermanentError) as raised:
        move_invoice(_decided(age_seconds=ROOM_TTL + 1), files=docspace, emit=emit, store=store, room_ttl=ROOM_TTL)

    assert raised.value.reason == "room_changed"
    assert "7700001" in str(raised.value)
    assert docspace.calls == [("find_room", (UPLOADS,))]
    assert docspace.files["3358301"].folder_id == UPLOADS  # not carried into Acme's Incoming
    assert emit.events == []
    assert store.claim("mover:3358301:v1", lease_seconds=5) is Claim.ACQUIRED


def test_a_stale_decision_still_right_is_moved_after_one_check(
    docspace: FakeDocSpace, emit: RecordingEmitter, store: SqliteStore
) -> None:
    docspace.add_file("3358301", "Invoice-2026-0917.pdf", UPLOADS)
    docspace.folder_room[UPLOADS] = docspace.folder_room[ROOM]

    handled = move_invoice(
        _decided(age_seconds=ROOM_TTL + 1), files=docspace, emit=emit, store=store, room_ttl=ROOM_TTL
    )

    assert handled.outcome is Outcome.RECEIVED
    assert docspace.calls == [("find_room", (UPLOADS,)), ("move_file", ("3358301", INCOMING, "Duplicate"))]


def test_an_undated_decision_is_checked_and_a_folder_left_outside_any_room_moves_nothing(
    docspace: FakeDocSpace, emit: RecordingEmitter, store: SqliteStore
) -> None:
    # A classifier from before decisions were dated sends no room_seen_at: its answer may be of any age.
    docspace.add_file("3358301", "Invoice-2026-0917.pdf", UPLOADS)

    with pytest.raises(PermanentError) as raised:
        move_invoice(_decided(age_seconds=None), files=docspace, emit=emit, store=store, room_ttl=ROOM_TTL)

    assert raised.value.reason == "room_changed"
    assert docspace.calls_to("move_file") == []


def test_an_incoming_folder_deleted_since_it_was_found_is_found_again_and_the_file_moved_there(
    docspace: FakeDocSpace, emit: RecordingEmitter, store: SqliteStore
) -> None:
    by_name = IncomingFolder(id=None, name="Incoming")
    move_invoice(invoice_detected(incoming=by_name), files=docspace, emit=emit, store=store)
    gone = docspace.named_folders[(ROOM, "Incoming")]
    docspace.delete_folder(gone)  # someone tidied the room; the client still remembers the old id
    docspace.add_file("42", "Invoice-42.pdf", ROOM)

    handled = move_invoice(
        invoice_detected(invoice_id="42:v1", file_id="42", title="Invoice-42.pdf", incoming=by_name),
        files=docspace,
        emit=emit,
        store=store,
    )

    fresh = docspace.named_folders[(ROOM, "Incoming")]
    assert fresh != gone
    assert (handled.outcome, handled.details["folder_id"]) == ("received", fresh)
    assert docspace.calls_to("forget_folder") == [(ROOM, "Incoming")]
    assert docspace.files["42"].folder_id == fresh
