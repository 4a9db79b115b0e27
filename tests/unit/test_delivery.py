"""Delivery parsing: both payload shapes, the real fixture, lenient ids and dates, and what is invalid."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest

from shared.core.errors import PermanentError
from shared.docspace.delivery import (
    Delivery,
    DeliveryPeek,
    InvalidDelivery,
    parse_datetime,
    parse_delivery,
    peek_delivery,
)

FIXTURES = [
    Path(__file__).resolve().parents[1] / "fixtures" / "docspace",
    Path("/work/shared/fixtures/docspace"),
]

# The contract's realistic file.uploaded body (current FileEntry shape), byte for byte.
FILE_UPLOADED = (
    b'{"event":{"id":141022,"createOn":"2026-09-18T08:14:03Z","createBy":"3f1d2c4e-8b7a-4c21-9e55-0a6b7c8d9e10",'
    b'"trigger":"file.uploaded","triggerId":256},"payload":{"id":3358301,"parentId":6590431,"securityByUsers":{},'
    b'"folderIdDisplay":6590431,"rootId":18902,"title":"Invoice-2026-0917.pdf",'
    b'"createBy":"3f1d2c4e-8b7a-4c21-9e55-0a6b7c8d9e10","modifiedBy":"3f1d2c4e-8b7a-4c21-9e55-0a6b7c8d9e10",'
    b'"createOn":"2026-09-18T08:14:02Z","modifiedOn":"2026-09-18T08:14:02Z","rootFolderType":14,'
    b'"rootCreateBy":"514c7ed5-3141-4448-af92-008bcb707042","fileEntryType":2},"webhook":{"id":2622,'
    b'"name":"invoice-router","url":"https://hooks.example.com/docspace/webhook",'
    b'"triggers":["file.created","file.uploaded"]}}'
)


def fixture_bytes(name: str) -> bytes:
    for folder in FIXTURES:
        if (folder / name).exists():
            return (folder / name).read_bytes()
    pytest.fail(f"fixture {name} not found")


def test_the_real_docspace_fixture_parses() -> None:
    d = parse_delivery(fixture_bytes("file.created.json"))
    assert d == Delivery(
        event_id="138769",
        trigger="file.created",
        created_on=datetime(2026, 9, 17, 10, 22, 56, tzinfo=UTC),
        created_by="514c7ed5-3141-4448-af92-008bcb707042",
        file_id="3358285",
        folder_id="6590430",
        root_id="18902",
        title="321.xlsx",
        entry_type=2,
        webhook_id="2621",
        webhook_name="testsdk",
        retry_count=0,
        modified_on="2026-09-17T10:22:56Z",
    )


def test_current_file_entry_shape() -> None:
    d = parse_delivery(FILE_UPLOADED)
    assert (d.event_id, d.trigger, d.file_id, d.folder_id, d.root_id) == (
        "141022",
        "file.uploaded",
        "3358301",
        "6590431",
        "18902",
    )
    assert d.title == "Invoice-2026-0917.pdf"
    assert d.webhook_name == "invoice-router"


def test_newer_rest_like_shape_with_string_ids_and_unknown_keys() -> None:
    body = {
        "event": {"id": "9001", "createOn": "2026-09-18T08:14:03.1234567Z", "trigger": "file.uploaded"},
        "payload": {
            "id": "sbox-f-77",
            "parentId": "sbox-d-12",
            "rootFolderId": 18902,
            "title": "Rechnung.PDF",
            "fileEntryType": 2,
            "fileExst": ".pdf",
            "contentLength": 86234,
            "version": 3,
            "created": "2026-09-18T08:14:02.0000000+00:00",
            "updated": "2026-09-18T08:14:02.0000000+00:00",
            "createdBy": {"id": "3f1d2c4e-8b7a-4c21-9e55-0a6b7c8d9e10", "displayName": "Anna"},
            "somethingNew": {"nested": [1, 2]},
        },
        "webhook": {"id": 2622, "name": "invoice-router", "retryCount": 2, "lastSuccessOn": "2026-09-18T08:00:00"},
        "extra": True,
    }
    d = parse_delivery(json.dumps(body).encode())
    assert d.file_id == "sbox-f-77"
    assert d.folder_id == "sbox-d-12"
    assert d.root_id == "18902"
    assert d.created_by == "3f1d2c4e-8b7a-4c21-9e55-0a6b7c8d9e10"
    assert d.created_on == datetime(2026, 9, 18, 8, 14, 3, 123456, tzinfo=UTC)
    assert d.retry_count == 2
    # Its "updated" names the upload as FileEntry's modifiedOn does: the classifier need not read the file.
    assert d.modified_on == "2026-09-18T08:14:02.0000000+00:00"


def test_omitted_keys_are_none_and_missing_file_id_is_not_an_error() -> None:
    d = parse_delivery(b'{"event":{"trigger":"form.submit"},"payload":{"originalForm":{},"submittedForm":{}}}')
    assert d.trigger == "form.submit"
    assert d.file_id is None
    assert d.folder_id is None
    assert d.event_id is None
    assert d.entry_type is None
    assert d.webhook_id is None
    assert d.retry_count == 0


def test_folder_id_falls_back_to_folder_id_display() -> None:
    d = parse_delivery(b'{"event":{"id":1},"payload":{"id":5,"folderIdDisplay":7}}')
    assert d.folder_id == "7"


@pytest.mark.parametrize("absent", [None, "", "   "])
def test_absent_ids_are_none(absent: object) -> None:
    d = parse_delivery(json.dumps({"event": {"id": absent}, "payload": {"id": absent}}).encode())
    assert d.event_id is None
    assert d.file_id is None


HOSTILE_IDS = [
    True,
    False,
    [],
    {},
    "²",  # str.isdigit() says yes, int() says no
    "--5",
    "-5",
    -5,
    "9" * 4300,  # Python's int/str conversion limit
    "9" * 20,
    2**63,
    1.5,
    ".",
    "..",
    "../../settings",
    "sbox-1-a/b",
    "sbox-1-a\\b",
    "a?fields=secret",
    "a#x",
    "a%2e%2e",
    "a\r\nX-Injected: 1",
    "a\u2028b",
    "a" * 513,
]


@pytest.mark.parametrize("bad_id", HOSTILE_IDS)
@pytest.mark.parametrize(("section", "key"), [("event", "id"), ("payload", "id"), ("webhook", "id")])
def test_an_id_that_is_no_docspace_id_makes_the_delivery_invalid(bad_id: object, section: str, key: str) -> None:
    body: dict[str, dict[str, object]] = {"event": {"id": 1, "trigger": "file.created"}, "payload": {"id": 2}}
    body.setdefault(section, {})[key] = bad_id
    raw = json.dumps(body).encode()
    for parse in (parse_delivery, peek_delivery):
        with pytest.raises(InvalidDelivery) as info:
            parse(raw)
        assert info.value.reason == "invalid_delivery"
        assert f"{section}.{key}" in str(info.value)


@pytest.mark.parametrize("bad_id", ["..", "x/y", "9" * 4300])
@pytest.mark.parametrize("key", ["parentId", "folderIdDisplay", "rootId", "rootFolderId"])
def test_folder_ids_are_checked_too(bad_id: str, key: str) -> None:
    with pytest.raises(InvalidDelivery, match=rf"payload\.{key}"):
        parse_delivery(json.dumps({"event": {"id": 1}, "payload": {"id": 2, key: bad_id}}).encode())


@pytest.mark.parametrize(
    ("value", "expected"),
    [(0, "0"), (7, "7"), (7.0, "7"), (" 42 ", "42"), (2**63 - 1, str(2**63 - 1)), ("sbox-3-|Invoices|2026", None)],
)
def test_ids_that_are_kept(value: object, expected: str | None) -> None:
    d = parse_delivery(json.dumps({"event": {"id": 1}, "payload": {"id": value}}).encode())
    assert d.file_id == (expected if expected is not None else value)


@pytest.mark.parametrize("count", ["²", "--5", "9" * 4300, 2**63, "1e3", [], "two"])
def test_a_retry_count_that_is_no_integer_makes_the_delivery_invalid(count: object) -> None:
    raw = json.dumps({"event": {"id": 1}, "payload": {"id": 2}, "webhook": {"id": 3, "retryCount": count}}).encode()
    for parse in (parse_delivery, peek_delivery):
        with pytest.raises(InvalidDelivery, match=r"webhook\.retryCount"):
            parse(raw)


@pytest.mark.parametrize(
    ("count", "expected"), [(3, 3), ("4", 4), (-2, 0), ("-2", 0), (None, 0), (2**63 - 1, 2**63 - 1)]
)
def test_retry_counts_that_are_read(count: object, expected: int) -> None:
    raw = json.dumps({"event": {"id": 1}, "payload": {"id": 2}, "webhook": {"retryCount": count}}).encode()
    assert peek_delivery(raw).retry_count == expected
    assert parse_delivery(raw).retry_count == expected


def test_a_numeric_created_by_is_kept_and_a_nonsense_one_left_out() -> None:
    d = parse_delivery(b'{"event":{"id":1,"createBy":12},"payload":{"id":2}}')
    assert d.created_by == "12"
    d = parse_delivery(b'{"event":{"id":1,"createBy":[1]},"payload":{"id":2,"createdBy":{"id":{"x":1}}}}')
    assert d.created_by is None


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-09-17T10:22:56Z", datetime(2026, 9, 17, 10, 22, 56, tzinfo=UTC)),
        ("2026-09-17T10:22:56", datetime(2026, 9, 17, 10, 22, 56, tzinfo=UTC)),
        ("2026-09-17T10:22:56.1234567Z", datetime(2026, 9, 17, 10, 22, 56, 123456, tzinfo=UTC)),
        ("2026-09-18T08:14:02.0000000+00:00", datetime(2026, 9, 18, 8, 14, 2, tzinfo=UTC)),
        ("2026-09-18T10:14:02+02:00", datetime(2026, 9, 18, 8, 14, 2, tzinfo=UTC)),
        ("2026-09-18T03:14:02.5-0500", datetime(2026, 9, 18, 8, 14, 2, 500000, tzinfo=UTC)),
        ("2026-09-18 08:14", datetime(2026, 9, 18, 8, 14, tzinfo=UTC)),
        ({"utcTime": "2026-09-18T08:14:02Z", "timeZoneOffset": "00:00"}, datetime(2026, 9, 18, 8, 14, 2, tzinfo=UTC)),
    ],
)
def test_dates_are_parsed_leniently(text: object, expected: datetime) -> None:
    got = parse_datetime(text)
    assert got == expected
    assert got is not None and got.tzinfo is not None


def test_offsets_are_kept() -> None:
    got = parse_datetime("2026-09-18T10:14:02+02:00")
    assert got is not None and got.utcoffset() == timedelta(hours=2)
    assert got.tzinfo == timezone(timedelta(hours=2))


@pytest.mark.parametrize(
    "text",
    [
        "yesterday",
        "",
        "2026-13-45T10:00:00Z",
        12345,
        None,
        "2026-09-18T10:14:02+24:00",  # timezone() refuses a day or more
        "2026-09-18T10:14:02-99:99",
        "2026-09-18T10:14:02+23:60",
        "٢٠٢٦-09-18T10:14:02Z",  # Arabic-Indic digits: \d would take them
        "9999-12-31T23:59:59-01:00",  # past datetime.max once taken to UTC: arithmetic on it would overflow
        "0001-01-01T00:00:00",  # .NET's default DateTime: "unknown", not a date
    ],
)
def test_unreadable_dates_are_none(text: object) -> None:
    assert parse_datetime(text) is None


def test_unreadable_event_date_does_not_fail_the_delivery() -> None:
    d = parse_delivery(b'{"event":{"id":1,"createOn":"soon"},"payload":{"id":2}}')
    assert d.created_on is None
    assert d.file_id == "2"


@pytest.mark.parametrize(
    "raw",
    [
        b"not json",
        b"",
        b"\xff\xfe\x00garbage",
        b"[1,2,3]",
        b'"a string"',
        b'{"payload":{"id":1}}',
        b'{"event":{"id":1}}',
        b'{"event":[],"payload":{}}',
        b'{"event":{},"payload":"x"}',
        b'{"id":3358285,"title":"legacy raw entity"}',
    ],
)
def test_invalid_deliveries_raise_a_permanent_error(raw: bytes) -> None:
    with pytest.raises(InvalidDelivery) as info:
        parse_delivery(raw)
    assert isinstance(info.value, PermanentError)
    assert info.value.reason == "invalid_delivery"


def test_a_utf8_bom_is_tolerated() -> None:
    assert parse_delivery(b"\xef\xbb\xbf" + FILE_UPLOADED).file_id == "3358301"


@pytest.mark.parametrize(
    "raw",
    [
        FILE_UPLOADED,
        b"\xef\xbb\xbf" + FILE_UPLOADED,
        b'{"event":{"id":"7","trigger":"file.created"},"payload":{"id":5},"webhook":{"id":3,"retryCount":"2"}}',
        b'{"event":{"trigger":"form.submit"},"payload":{"originalForm":{},"submittedForm":{}}}',
    ],
)
def test_the_ingress_peek_reads_the_same_facts_as_the_full_parse(raw: bytes) -> None:
    full = parse_delivery(raw)
    assert peek_delivery(raw) == DeliveryPeek(
        full.event_id, full.trigger, full.file_id, full.webhook_id, full.retry_count, full.created_on
    )


@pytest.mark.parametrize("raw", [b"", b"[1]", b'{"event":1}', b"\xff\xfe", b"[" * 5000 + b"]" * 5000])
def test_the_ingress_peek_refuses_what_is_not_a_delivery(raw: bytes) -> None:
    with pytest.raises(InvalidDelivery):
        peek_delivery(raw)
