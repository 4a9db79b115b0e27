"""One delivery encoder: the room scan's announcement and send-test-event's sample are the same wire shape."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import orjson

from consumers.reconciler.scan import delivery_for
from ops.test_event import ROOMS_ROOT_ID, UPLOADER, sample_delivery
from shared.docspace.delivery import parse_delivery
from shared.docspace.delivery_encoder import FileDelivery, encode_delivery, wire_id
from shared.docspace.webhooks import ListedFile

UPLOADED = datetime(2026, 9, 18, 8, 14, 3, tzinfo=UTC)


def listed(**overrides: object) -> ListedFile:
    values: dict[str, object] = {
        "id": "3358301",
        "title": "Invoice-2026-0917.pdf",
        "folder_id": "6590431",
        "version": 1,
        "extension": ".pdf",
        "created": UPLOADED,
        "updated": UPLOADED,
        "created_by": UPLOADER,
        "updated_by": UPLOADER,
        "root_id": str(ROOMS_ROOT_ID),
        "root_folder_type": 14,
    }
    return ListedFile(**(values | overrides))  # type: ignore[arg-type]


def _keys(body: bytes) -> tuple[list[str], list[str], list[str]]:
    doc = orjson.loads(body)
    return list(doc), list(doc["event"]), list(doc["payload"])


def test_the_scan_and_send_test_event_write_the_same_keys_in_the_same_order() -> None:
    scanned = delivery_for(listed())
    sample = sample_delivery(file_id=3358301, folder_id=6590431, created_on="2026-09-18T08:14:03Z")
    top, event, payload = _keys(scanned)
    assert (
        (top, event)
        == _keys(sample)[:2]
        == (["event", "payload", "webhook"], ["id", "createOn", "createBy", "trigger", "triggerId"])
    )
    # The listing knows no room creator (``rootCreateBy``): the scan leaves it out, as DocSpace leaves out a default.
    assert payload == [key for key in _keys(sample)[2] if key != "rootCreateBy"]


def test_the_scan_and_the_sample_read_back_alike() -> None:
    scanned = parse_delivery(delivery_for(listed()))
    sample = parse_delivery(
        sample_delivery(
            file_id=3358301, folder_id=6590431, title="Invoice-2026-0917.pdf", created_on="2026-09-18T08:14:03Z"
        )
    )
    same = ("trigger", "created_on", "created_by", "file_id", "folder_id", "root_id", "title", "entry_type")
    assert {name: getattr(scanned, name) for name in same} == {name: getattr(sample, name) for name in same}
    assert scanned.event_id == "reconciler-scan-3358301-v1"
    assert scanned.webhook_id is None  # no config sent it


def test_a_field_left_none_is_left_out_and_a_trigger_without_a_bit_has_no_trigger_id() -> None:
    body = encode_delivery(
        FileDelivery(event_id=1, event_at="2026-09-18T08:14:03Z", trigger="ж" * 3, file_id=5, folder_id=7, title="t")
    )
    doc = orjson.loads(body)
    assert doc["event"] == {"id": 1, "createOn": "2026-09-18T08:14:03Z", "trigger": "жжж"}
    assert list(doc["payload"]) == ["id", "parentId", "securityByUsers", "folderIdDisplay", "title", "fileEntryType"]
    assert doc["webhook"] == {}


def test_an_id_is_sent_as_docspace_sends_it() -> None:
    assert wire_id("3358301") == 3358301
    assert wire_id("sbox-12ab") == "sbox-12ab"  # a third-party room's id
    assert wire_id("²") == "²"  # a digit to Python, not to int(): stays a string


def test_an_integer_beyond_64_bits_is_written_as_it_is() -> None:
    body = encode_delivery(
        FileDelivery(
            event_id=-(2**70),
            event_at="2026-09-18T08:14:03Z",
            trigger="file.uploaded",
            file_id=5,
            folder_id=7,
            title="t",
            webhook={"id": 2**64, "triggers": [2**65], "retryCount": 2**64 - 1},
        )
    )
    doc = json.loads(body)  # the standard library reads any integer; orjson stops at 64 bits
    assert doc["event"]["id"] == -(2**70)
    assert doc["webhook"] == {"id": 2**64, "triggers": [2**65], "retryCount": 2**64 - 1}
