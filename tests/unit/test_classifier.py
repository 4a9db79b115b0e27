"""The classifier's decisions on real webhook bodies, against a fake DocSpace and a real SQLite idempotency store."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from consumers.classifier.handler import classify_delivery
from ops.test_event import sample_delivery
from shared.core.errors import BrokerUnavailable
from shared.core.events import IncomingFolder, InvoiceDetected
from shared.core.handling import Handled, Outcome
from shared.core.rules import ClientRule, Rules
from shared.docspace.delivery import InvalidDelivery
from shared.docspace.errors import DocSpaceUnavailable
from shared.docspace.values import Room
from shared.store.sqlite_store import SqliteStore
from tests.support.fakes import FakeDocSpace, RecordingEmitter

TRIGGERS = ("file.created", "file.uploaded")
ROOMS_ROOT = 18902  # the portal-wide "Rooms" folder: every room's payload.rootId


def delivery(
    file_id: int = 3358301,
    *,
    folder_id: int = 6590431,
    title: str = "Invoice-2026-0917.pdf",
    event_id: int = 141022,
    created_on: str = "2026-09-18T08:14:03Z",
    **fields: Any,
) -> bytes:
    """A webhook body in the current FileEntry shape, compact JSON as DocSpace sends it."""
    return sample_delivery(
        file_id=file_id, folder_id=folder_id, title=title, event_id=event_id, created_on=created_on, **fields
    )


def rest_delivery(file_id: int = 3358301, **fields: Any) -> bytes:
    """A delivery that does not name its upload (no ``payload.modifiedOn``): the classifier reads the file."""
    body = json.loads(delivery(file_id, **fields))
    del body["payload"]["modifiedOn"]
    return _compact(body)


def _compact(body: dict[str, Any]) -> bytes:
    return json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


ACME = ClientRule(name="acme", room_id="6590431", manager_email="ann@acme.example", incoming_folder_id="6590500")
GLOBEX = ClientRule(
    name="globex",
    room_id="7700001",
    manager_email="bob@globex.example",
    incoming_folder="Eingang",
    title_patterns=("invoice*", "счёт*"),
    extensions=("pdf",),
)
RULES = Rules(clients=(ACME, GLOBEX))


@pytest.fixture
def docspace() -> FakeDocSpace:
    ds = FakeDocSpace()
    ds.add_room("6590431", "Acme Ltd", "6590500")
    ds.add_room("7700001", "Globex GmbH", "7700002")
    return ds


@pytest.fixture
def emit() -> RecordingEmitter:
    return RecordingEmitter()


def classify(raw: bytes, docspace: FakeDocSpace, emit: RecordingEmitter, store: SqliteStore) -> Handled:
    return classify_delivery(raw, files=docspace, rules=RULES, triggers=TRIGGERS, emit=emit, store=store)


def test_an_invoice_is_decided_from_the_signed_delivery_without_reading_the_file(
    docspace: FakeDocSpace, emit: RecordingEmitter, store: SqliteStore
) -> None:
    # The payload is authentic (HMAC) and names the upload: title, folder and modifiedOn. Only the room lookup
    # (cached per folder) asks DocSpace; the version comes later, from the mover's move report.
    handled = classify(delivery(title="Invoice-2026-0917.pdf"), docspace, emit, store)

    assert (handled.outcome, handled.reason) == ("accepted", None)
    assert handled.details == {"title": "Invoice-2026-0917.pdf", "client": "acme", "room_id": "6590431"}
    [event] = emit.events
    assert isinstance(event, InvoiceDetected)
    assert (event.invoice_id, event.upload_id) == (None, "3358301@2026-09-18T08:14:03Z")
    assert (event.file_id, event.version, event.title, event.extension) == (
        "3358301",
        None,
        "Invoice-2026-0917.pdf",
        ".pdf",
    )
    assert (event.event_id, event.trigger, event.folder_id) == ("141022", "file.uploaded", "6590431")
    assert (event.client, event.room_id, event.room_title) == ("acme", "6590431", "Acme Ltd")
    assert event.manager_email == "ann@acme.example"
    assert event.incoming == IncomingFolder(id="6590500", name="Incoming")
    assert event.already_in_incoming is False
    assert docspace.calls == [("find_room", ("6590431",))]


def test_a_delivery_that_does_not_name_its_upload_is_decided_on_the_rest_facts(
    docspace: FakeDocSpace, emit: RecordingEmitter, store: SqliteStore
) -> None:
    # No payload.modifiedOn (an older or partial shape): the REST FileInfo is the truth, and names the version.
    docspace.add_file("3358301", "Invoice-2026-0917-final.pdf", "6590431", version=3, size=52_113)

    handled = classify(rest_delivery(title="Upload-in-progress.tmp"), docspace, emit, store)

    assert (handled.outcome, handled.reason) == ("accepted", None)
    assert handled.details == {"title": "Invoice-2026-0917-final.pdf", "client": "acme", "room_id": "6590431"}
    [event] = emit.events
    assert isinstance(event, InvoiceDetected)
    assert (event.invoice_id, event.upload_id) == ("3358301:v3", None)
    assert (event.file_id, event.version, event.title) == ("3358301", 3, "Invoice-2026-0917-final.pdf")
    assert (event.extension, event.size) == (".pdf", 52_113)
    assert event.web_url == "https://docspace.example/doceditor?fileid=3358301"
    assert event.uploaded_by == "Ann Uploader"
    assert docspace.calls == [("get_file", ("3358301",)), ("find_room", ("6590431",))]


def test_the_room_comes_from_the_files_folder_not_from_the_payload_root_id(
    docspace: FakeDocSpace, emit: RecordingEmitter, store: SqliteStore
) -> None:
    # Both deliveries carry rootId 18902; only the folder path tells the rooms apart.
    docspace.add_file("1001", "invoice-a.pdf", "6590431")
    docspace.add_file("2002", "invoice-b.pdf", "7700002")

    first = classify(delivery(1001, folder_id=6590431, title="invoice-a.pdf"), docspace, emit, store)
    second = classify(delivery(2002, folder_id=7700002, title="invoice-b.pdf"), docspace, emit, store)

    assert (first.outcome, first.reason) == ("accepted", None)
    assert (second.outcome, second.reason) == ("accepted", None)
    acme, globex = emit.events
    assert (acme.client, acme.room_id, acme.manager_email) == ("acme", "6590431", "ann@acme.example")
    assert (globex.client, globex.room_id, globex.manager_email) == ("globex", "7700001", "bob@globex.example")
    assert globex.incoming == IncomingFolder(id=None, name="Eingang")
    assert ("find_room", ("7700002",)) in docspace.calls
    assert all(args != (str(ROOMS_ROOT),) for _, args in docspace.calls)


def test_the_detection_carries_when_docspace_last_placed_the_folder_in_the_room(
    docspace: FakeDocSpace, emit: RecordingEmitter, store: SqliteStore
) -> None:
    # The mover re-checks a room answer older than its TTL before moving: the answer's date travels with it.
    seen_at = datetime(2026, 9, 18, 8, 10, tzinfo=UTC)
    docspace.folder_room["6590431"] = Room("6590431", "Acme Ltd", seen_at=seen_at)
    docspace.add_file("3358301", "Invoice-1.pdf", "6590431")

    classify(delivery(), docspace, emit, store)

    [event] = emit.events
    assert event.room_seen_at == seen_at


def test_a_trigger_not_subscribed_is_ignored_without_asking_docspace(
    docspace: FakeDocSpace, emit: RecordingEmitter, store: SqliteStore
) -> None:
    docspace.add_file("3358301", "Invoice-1.pdf", "6590431")

    handled = classify(delivery(trigger="file.updated"), docspace, emit, store)

    assert (handled.outcome, handled.reason) == (Outcome.IGNORED, "wrong_trigger")
    assert handled.details["rule"].startswith("triggers: ")
    assert docspace.calls == []
    assert emit.events == []


def test_a_folder_entry_is_ignored(docspace: FakeDocSpace, emit: RecordingEmitter, store: SqliteStore) -> None:
    handled = classify(delivery(entry_type=1, title="Invoices 2026"), docspace, emit, store)

    assert handled == Handled(Outcome.IGNORED, "not_a_file", {"rule": "a folder is never an invoice"})
    assert docspace.calls == []
    assert emit.events == []


def test_a_file_outside_every_watched_room_is_ignored(
    docspace: FakeDocSpace, emit: RecordingEmitter, store: SqliteStore
) -> None:
    docspace.add_room("8800001", "Not a client")
    docspace.add_file("3", "invoice-3.pdf", "8800001")
    docspace.add_file("4", "invoice-4.pdf", "999")  # a folder in no room at all (My documents)

    in_other_room = classify(delivery(3, folder_id=8800001, title="invoice-3.pdf"), docspace, emit, store)
    in_no_room = classify(delivery(4, folder_id=999, title="invoice-4.pdf"), docspace, emit, store)

    assert (in_other_room.outcome, in_other_room.reason) == ("ignored", "no_watched_room")
    assert in_other_room.details == {
        "title": "invoice-3.pdf",
        "room_id": "8800001",
        "rule": in_other_room.details["rule"],
    }
    assert "8800001" in in_other_room.details["rule"] and "no client's rules" in in_other_room.details["rule"]
    assert (in_no_room.outcome, in_no_room.reason) == ("ignored", "no_watched_room")
    assert in_no_room.details == {"title": "invoice-4.pdf", "room_id": None, "rule": "the file's folder is in no room"}
    assert emit.events == []


def test_a_title_that_is_not_an_invoice_is_ignored(
    docspace: FakeDocSpace, emit: RecordingEmitter, store: SqliteStore
) -> None:
    docspace.add_file("3358301", "Contract-2026.pdf", "6590431")

    signed = classify(delivery(title="Contract-2026.pdf"), docspace, emit, store)
    read = classify(rest_delivery(title="Invoice-stale-title.pdf"), docspace, emit, store)

    assert (signed.outcome, signed.reason) == ("ignored", "not_an_invoice")
    # The rule that decided, for `trace`: the client's title patterns.
    assert signed.details == {
        "title": "Contract-2026.pdf",
        "client": "acme",
        "rule": "acme: title must match 'invoice*'",
    }
    assert (read.outcome, read.details) == ("ignored", signed.details)
    assert emit.events == []


def test_an_extension_not_allowed_is_ignored(
    docspace: FakeDocSpace, emit: RecordingEmitter, store: SqliteStore
) -> None:
    docspace.add_file("3358301", "invoice-2026.exe", "6590431")
    docspace.add_file("2002", "invoice-2026.docx", "7700001")  # globex allows only pdf

    exe = classify(delivery(title="invoice-2026.exe"), docspace, emit, store)
    docx = classify(delivery(2002, folder_id=7700001, title="invoice-2026.docx"), docspace, emit, store)

    assert (exe.outcome, exe.reason) == ("ignored", "extension_not_allowed")
    assert {k: exe.details[k] for k in ("title", "extension", "client")} == {
        "title": "invoice-2026.exe",
        "extension": ".exe",
        "client": "acme",
    }
    assert exe.details["rule"].startswith("acme: extension must be one of .pdf")
    assert (docx.outcome, docx.reason) == ("ignored", "extension_not_allowed")
    assert emit.events == []


def test_upper_case_and_non_ascii_titles_match(
    docspace: FakeDocSpace, emit: RecordingEmitter, store: SqliteStore
) -> None:
    docspace.add_file("1", "INVOICE-Müller-№7.PDF", "6590431")
    docspace.add_file("2", "СЧЁТ-42.pdf", "7700002")

    upper = classify(delivery(1, title="INVOICE-Müller-№7.PDF"), docspace, emit, store)
    cyrillic = classify(delivery(2, folder_id=7700002, title="СЧЁТ-42.pdf"), docspace, emit, store)

    assert (upper.outcome, upper.reason) == ("accepted", None)
    assert (cyrillic.outcome, cyrillic.reason) == ("accepted", None)
    assert [(e.title, e.extension, e.client) for e in emit.events] == [
        ("INVOICE-Müller-№7.PDF", ".pdf", "acme"),
        ("СЧЁТ-42.pdf", ".pdf", "globex"),
    ]


def test_created_then_uploaded_for_the_same_version_emits_once(
    docspace: FakeDocSpace, emit: RecordingEmitter, store: SqliteStore
) -> None:
    docspace.add_file("3358301", "Invoice-1.pdf", "6590431")

    first = classify(delivery(trigger="file.created", event_id=1, title="Invoice-1.pdf"), docspace, emit, store)
    second = classify(delivery(trigger="file.uploaded", event_id=2, title="Invoice-1.pdf"), docspace, emit, store)

    assert (first.outcome, first.reason) == ("accepted", None)
    assert (second.outcome, second.reason) == (Outcome.IGNORED, "duplicate")
    assert (second.details["title"], second.details["client"]) == ("Invoice-1.pdf", "acme")
    assert "one invoice per upload" in second.details["rule"]
    assert [e.upload_id for e in emit.events] == ["3358301@2026-09-18T08:14:03Z"]
    assert emit.events[0].trigger == "file.created"


def test_a_new_version_is_a_new_invoice(docspace: FakeDocSpace, emit: RecordingEmitter, store: SqliteStore) -> None:
    # Uploading over an existing file keeps its id and changes payload.modifiedOn: another upload.
    classify(delivery(event_id=1, created_on="2026-09-18T08:14:03Z"), docspace, emit, store)
    handled = classify(delivery(event_id=2, created_on="2026-09-18T09:30:00Z"), docspace, emit, store)
    docspace.add_file("3358301", "Invoice-1.pdf", "6590431", version=1)
    classify(rest_delivery(event_id=3), docspace, emit, store)
    docspace.add_file("3358301", "Invoice-1.pdf", "6590431", version=2)
    read = classify(rest_delivery(event_id=4), docspace, emit, store)

    assert (handled.outcome, handled.reason) == ("accepted", None)
    assert (read.outcome, read.reason) == ("accepted", None)
    assert [e.work_id for e in emit.events] == [
        "upload:3358301@2026-09-18T08:14:03Z",
        "upload:3358301@2026-09-18T09:30:00Z",
        "3358301:v1",
        "3358301:v2",
    ]


def test_a_body_that_is_not_json_is_invalid(docspace: FakeDocSpace, emit: RecordingEmitter, store: SqliteStore) -> None:
    with pytest.raises(InvalidDelivery):
        classify(b"event=file.uploaded&id=3358301", docspace, emit, store)
    assert docspace.calls == []
    assert emit.events == []


def test_a_delivery_without_payload_id_is_invalid(
    docspace: FakeDocSpace, emit: RecordingEmitter, store: SqliteStore
) -> None:
    body = json.loads(delivery())
    del body["payload"]["id"]

    with pytest.raises(InvalidDelivery, match=r"payload\.id"):
        classify(_compact(body), docspace, emit, store)
    assert docspace.calls == []
    assert emit.events == []


def test_a_docspace_outage_propagates_and_a_retry_still_emits(
    docspace: FakeDocSpace, emit: RecordingEmitter, store: SqliteStore
) -> None:
    docspace.add_file("3358301", "Invoice-1.pdf", "6590431")
    outage = DocSpaceUnavailable("502 from DocSpace", retry_after=3)
    docspace.fail_next("find_room", outage)

    with pytest.raises(DocSpaceUnavailable) as raised:
        classify(delivery(), docspace, emit, store)
    assert raised.value is outage
    assert emit.events == []

    retried = classify(delivery(), docspace, emit, store)
    assert (retried.outcome, retried.reason) == ("accepted", None)
    assert [e.upload_id for e in emit.events] == ["3358301@2026-09-18T08:14:03Z"]


def test_a_failed_emit_releases_the_claim_so_a_retry_emits(
    docspace: FakeDocSpace, emit: RecordingEmitter, store: SqliteStore
) -> None:
    docspace.add_file("3358301", "Invoice-1.pdf", "6590431")
    emit.fail_next()

    with pytest.raises(BrokerUnavailable):
        classify(delivery(), docspace, emit, store)
    assert emit.events == []

    retried = classify(delivery(), docspace, emit, store)
    assert (retried.outcome, retried.reason) == ("accepted", None)
    assert [e.upload_id for e in emit.events] == ["3358301@2026-09-18T08:14:03Z"]
    assert emit.attempts == 2


def test_the_newer_rest_like_payload_shape_works(
    docspace: FakeDocSpace, emit: RecordingEmitter, store: SqliteStore
) -> None:
    docspace.add_file("3358301", "Invoice-1.pdf", "7700002")
    body = {
        "event": {"id": "9f1", "createOn": "2026-09-18T08:14:03.1234567+02:00", "trigger": "file.uploaded"},
        "payload": {
            "id": 3358301,
            "parentId": 7700002,
            "rootFolderId": ROOMS_ROOT,
            "title": "Invoice-1.pdf",
            "fileExst": ".pdf",
            "rootFolderType": 14,
            "fileEntryType": 2,
            "createdBy": {"id": "3f1d2c4e", "displayName": "Ann"},
        },
        "webhook": {"id": 1, "name": "x", "url": "https://h/docspace/webhook", "triggers": ["*"]},
    }

    handled = classify(_compact(body), docspace, emit, store)

    assert (handled.outcome, handled.reason) == ("accepted", None)
    [event] = emit.events
    assert (event.event_id, event.invoice_id, event.client) == ("9f1", "3358301:v1", "globex")


def test_already_in_incoming_when_the_file_sits_in_the_clients_incoming_folder(
    docspace: FakeDocSpace, emit: RecordingEmitter, store: SqliteStore
) -> None:
    docspace.add_file("1", "invoice-1.pdf", "6590500")  # acme's incoming_folder_id
    docspace.add_file("2", "invoice-2.pdf", "6590431")  # the room itself

    classify(delivery(1, folder_id=6590500), docspace, emit, store)
    classify(delivery(2, folder_id=6590431), docspace, emit, store)

    assert [(e.file_id, e.already_in_incoming) for e in emit.events] == [("1", True), ("2", False)]


EVENT_AT = datetime(2026, 9, 18, 8, 14, 3, tzinfo=UTC)


def test_a_redelivery_read_after_the_file_changed_again_is_stale(
    docspace: FakeDocSpace, emit: RecordingEmitter, store: SqliteStore
) -> None:
    docspace.add_file("3358301", "Invoice-1.pdf", "6590431", version=1, updated_at=EVENT_AT)
    assert classify(rest_delivery(), docspace, emit, store).outcome == "accepted"
    # Someone saves a new version an hour later; then DocSpace retries (or an operator replays) the first event.
    docspace.add_file("3358301", "Invoice-1.pdf", "6590431", version=2, updated_at=EVENT_AT + timedelta(hours=1))

    handled = classify(rest_delivery(), docspace, emit, store)

    assert (handled.outcome, handled.reason) == (Outcome.IGNORED, "stale_delivery")
    assert (handled.details["title"], handled.details["version"]) == ("Invoice-1.pdf", 2)
    assert "routed already" in handled.details["rule"]
    assert [e.invoice_id for e in emit.events] == ["3358301:v1"]


def test_the_new_versions_own_event_is_not_stale(
    docspace: FakeDocSpace, emit: RecordingEmitter, store: SqliteStore
) -> None:
    docspace.add_file("3358301", "Invoice-1.pdf", "6590431", version=1, updated_at=EVENT_AT)
    classify(rest_delivery(), docspace, emit, store)
    later = EVENT_AT + timedelta(hours=1)
    docspace.add_file("3358301", "Invoice-1.pdf", "6590431", version=2, updated_at=later + timedelta(seconds=1))

    handled = classify(rest_delivery(event_id=2, created_on="2026-09-18T09:14:03Z"), docspace, emit, store)

    assert (handled.outcome, handled.reason) == ("accepted", None)
    assert [e.invoice_id for e in emit.events] == ["3358301:v1", "3358301:v2"]


def test_a_late_delivery_of_a_file_never_routed_is_still_classified(
    docspace: FakeDocSpace, emit: RecordingEmitter, store: SqliteStore
) -> None:
    # Without an earlier routing of this file, a late event is the only news of it: it must not be lost.
    docspace.add_file("3358301", "Invoice-1.pdf", "6590431", version=2, updated_at=EVENT_AT + timedelta(hours=1))

    handled = classify(rest_delivery(), docspace, emit, store)

    assert (handled.outcome, handled.reason) == ("accepted", None)
    assert [e.invoice_id for e in emit.events] == ["3358301:v2"]


def test_a_signed_delivery_without_a_trigger_is_dead_lettered_with_a_reason(tmp_path: Path) -> None:
    docspace, emit, store = FakeDocSpace(), RecordingEmitter(), SqliteStore(tmp_path / "s.sqlite3", ttl_seconds=60)
    with pytest.raises(InvalidDelivery, match="trigger"):
        classify(b'{"event":{"id":5},"payload":{"id":1}}', docspace, emit, store)
    assert emit.events == []
