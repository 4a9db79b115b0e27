"""Property tests for every parser of attacker-controlled bytes: each input parses, or is refused with a typed error.

Inputs are hypothesis's arbitrary bytes and text, and structured documents whose every slot may hold a hostile
value. Each test asserts the contract (what a parsed value guarantees, which error type a refusal has), so a new
kind of crash or a value that slips through unchecked fails the suite. Budget: the ``suite`` profile
(tests/conftest.py).
"""

from __future__ import annotations

import email
import email.policy
import hashlib
import hmac
import json
import math
import tempfile
import unicodedata
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pika
import pika.spec
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from consumers.classifier.handler import classify_delivery
from consumers.notifier.email_content import build_invoice_email
from ingress.facts import read_facts
from ingress.signature import SignatureVerifier, sign
from shared.broker.publisher import properties
from shared.config.redact import safe_url, scrub
from shared.core.errors import StageError
from shared.core.ids import MAX_ID_LENGTH, MAX_NUMERIC_ID, InvalidId, parse_id
from shared.core.rules import ClientRule, Rules, RulesError, load_rules
from shared.docspace.delivery import Delivery, InvalidDelivery, parse_datetime, parse_delivery, peek_delivery
from shared.limits.retry_after import parse_retry_after, retry_after_from
from shared.store.sqlite_store import SqliteStore
from tests.support.fakes import FakeDocSpace, RecordingEmitter
from tests.support.message_builders import invoice_received

# --- strategies -----------------------------------------------------------------------------------------------

HOSTILE_TEXT = st.sampled_from(
    [".", "..", "../x", "a/b", "a\\b", "a?b", "a#b", "%2e", "²", "--5", "-5", "٣", "9" * 4300, "9" * 19, "9" * 20,
     "x" * 513, "a\r\nb", "a\u2028b", "a\x00", "\ud7ff", " 7 ", "", "   ", "sbox-1-|a|b", "0", "007"]
)  # fmt: skip
JSON_SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=30)
    | HOSTILE_TEXT
)
JSON_VALUES = st.recursive(
    JSON_SCALARS, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3)
)
DATES = st.one_of(
    JSON_VALUES,
    st.from_regex(r"\A\d{4}-\d{2}-\d{2}([T ]\d{2}:\d{2}(:\d{2}(\.\d{1,9})?)?)?(Z|[+-]\d{2}(:?\d{2})?)?\Z"),
)


@st.composite
def deliveries(draw: st.DrawFn) -> bytes:
    """A delivery-shaped JSON document with any value in any slot, sometimes a whole slot missing."""

    def slot() -> Any:
        return draw(JSON_VALUES)

    event = {"id": slot(), "trigger": draw(st.sampled_from(["file.created", "file.uploaded"]) | JSON_VALUES)}
    event["createOn"] = draw(DATES)
    payload = {key: slot() for key in draw(st.sets(st.sampled_from(
        ["id", "parentId", "folderIdDisplay", "folderId", "rootId", "rootFolderId", "title", "fileEntryType",
         "modifiedOn", "createBy", "createdBy"])))}  # fmt: skip
    webhook = {key: slot() for key in draw(st.sets(st.sampled_from(["id", "name", "retryCount"])))}
    doc: dict[str, Any] = {"event": event, "payload": payload}
    if draw(st.booleans()):
        doc["webhook"] = webhook
    return json.dumps(doc, ensure_ascii=draw(st.booleans())).encode("utf-8", "surrogatepass")


def assert_is_docspace_id(value: str | None) -> None:
    if value is None:
        return
    assert parse_id(value) == value  # canonical: checking it again changes nothing
    assert 0 < len(value) <= MAX_ID_LENGTH
    assert value not in (".", "..") and not set(value) & set("/\\?#%")
    assert not any(unicodedata.category(ch) in {"Cc", "Cs", "Zl", "Zp"} for ch in value)
    assert "/" not in quote(value, safe="")
    if value.isdigit():
        assert value.isascii() and int(value) <= MAX_NUMERIC_ID


def assert_usable_date(value: datetime | None) -> None:
    if value is None:
        return
    assert value.tzinfo is not None
    # What the pipeline does with dates must not overflow: compare, shift by a margin, convert to UTC.
    assert (value + timedelta(days=1)).astimezone(UTC) > value - timedelta(days=1)


# --- the delivery: peek (ingress) and parse (classifier) --------------------------------------------------------


@given(st.binary(max_size=300) | deliveries())
def test_peek_and_parse_return_a_value_or_invalid_delivery(raw: bytes) -> None:
    try:
        delivery = parse_delivery(raw)
    except InvalidDelivery as exc:
        assert exc.reason == "invalid_delivery"
        delivery = None
    try:
        peek = peek_delivery(raw)
    except InvalidDelivery:
        assert delivery is None  # the peek reads a subset of what the parse reads
        return
    assert 0 <= peek.retry_count < 2**63
    for value in (peek.event_id, peek.file_id, peek.webhook_id):
        assert_is_docspace_id(value)
    if delivery is not None:
        assert isinstance(delivery, Delivery)
        assert (peek.event_id, peek.trigger, peek.file_id, peek.webhook_id, peek.retry_count) == (
            delivery.event_id, delivery.trigger, delivery.file_id, delivery.webhook_id, delivery.retry_count
        )  # fmt: skip
        for value in (delivery.folder_id, delivery.root_id):
            assert_is_docspace_id(value)
        assert_usable_date(delivery.created_on)
        assert delivery.entry_type is None or -(2**63) <= delivery.entry_type < 2**63


@given(DATES)
def test_dates_parse_to_a_usable_datetime_or_none(value: Any) -> None:
    assert_usable_date(parse_datetime(value))


@given(st.integers() | st.floats() | st.text(max_size=600) | HOSTILE_TEXT | st.booleans() | st.none())
def test_an_id_is_canonical_and_url_safe_or_invalid_id(value: Any) -> None:
    try:
        parsed = parse_id(value)
    except InvalidId:
        return
    assert_is_docspace_id(parsed)
    if isinstance(value, int | float) and not isinstance(value, bool):
        assert math.isfinite(value) and int(parsed) == value


@pytest.fixture(scope="module")
def folder() -> Iterator[Path]:
    """One directory for a whole property test's examples (a fresh one per example costs more than the example)."""
    with tempfile.TemporaryDirectory() as name:
        yield Path(name)


@pytest.fixture(scope="module")
def store(folder: Path) -> Iterator[SqliteStore]:
    sqlite = SqliteStore(folder / "idempotency.sqlite3", ttl_seconds=60)
    yield sqlite
    sqlite.close()


@given(raw=deliveries())
def test_the_classifier_decides_or_dead_letters_with_a_reason_never_a_bug(raw: bytes, store: SqliteStore) -> None:
    docspace = FakeDocSpace()
    docspace.add_room("3", "Acme Ltd", "4")
    docspace.add_file("2", "Invoice.pdf", "3")
    rules = Rules(clients=(ClientRule(name="acme", room_id="3", manager_email="ann@acme.example"),))
    try:
        handled = classify_delivery(
            raw, files=docspace, rules=rules, triggers={"file.uploaded"}, emit=RecordingEmitter(), store=store
        )
        assert handled.outcome in {"accepted", "ignored"}
    except StageError as exc:  # dead-lettered or retried with its reason; anything else would be "bug"
        assert exc.reason
    for _, args in docspace.calls:
        assert_is_docspace_id(args[0])  # nothing unchecked reached DocSpace


# --- the ingress's signature header -----------------------------------------------------------------------------


SECRETS = st.text(min_size=1, max_size=60).filter(lambda s: s.strip() != "")


@given(st.binary(max_size=200), SECRETS, st.data())
def test_any_signature_header_is_a_yes_or_a_no(body: bytes, secret: str, data: st.DataObject) -> None:
    # The expected verdict, worked out without the verifier or sign().
    true_hex = hmac.new(secret.encode("utf-8"), body, hashlib.sha256).hexdigest()
    near_misses = st.tuples(
        st.sampled_from(["sha256=", "SHA256=", "Sha256=", " sha256=", "sha256 =", "sha1=", "\u017fha256=", ""]),
        st.sampled_from(["", " ", "\t", "\u00a0"]),
        st.sampled_from([true_hex, true_hex.upper(), true_hex[:-1], true_hex + "0", true_hex[::-1], ""]),
        st.sampled_from(["", " ", "\r\n", "\u2028", "x"]),
    ).map("".join)
    header = data.draw(
        st.text(max_size=120) | st.from_regex(r"\A(?i:sha256=)[0-9a-fA-F]{0,70}\Z") | near_misses, label="header"
    )
    # Yes exactly when the header starts with "sha256=" in any ASCII case and, whitespace around it aside, the
    # rest is the body's HMAC-SHA256 in hex, in any case.
    prefix, rest = header[:7], header[7:]
    expected = prefix.lower() == "sha256=" and rest.strip().lower() == true_hex
    assert SignatureVerifier([secret]).verify(body, header) is expected


@given(st.binary(max_size=200), SECRETS, st.lists(SECRETS, max_size=3), st.booleans(), st.binary(min_size=1))
def test_a_true_signature_verifies_in_any_case_and_a_changed_body_does_not(
    body: bytes, secret: str, others: list[str], lower: bool, extra: bytes
) -> None:
    verifier = SignatureVerifier([*others, secret])
    header = sign(body, secret)
    assert verifier.verify(body, header.lower() if lower else header)
    assert verifier.verify(body, "SHA256=" + header[len("sha256=") :])
    assume(all(sign(body + extra, other) != sign(body + extra, secret) for other in others))
    assert not verifier.verify(body + extra, header)


# --- the ingress's message: every AMQP field fits ---------------------------------------------------------------

OVERLONG = st.sampled_from(
    ["ж" * 100, "€" * 86, "x" * 256, "9" * 5000, "9" * 19, 2**63, 2**64 + 1, -(2**63) - 1, "²", "\ud800"]
)


@st.composite
def overlong_deliveries(draw: st.DrawFn) -> bytes:
    """A readable delivery whose trigger, ids or retry count are as long, wide or large as an attacker likes."""
    doc = {
        "event": {"id": draw(OVERLONG | st.integers(0, 99)), "trigger": draw(OVERLONG | st.just("file.uploaded"))},
        "payload": {"id": draw(OVERLONG | st.integers(0, 99)), "folderId": 7},
        "webhook": {"id": draw(OVERLONG | st.integers(0, 99)), "retryCount": draw(OVERLONG | st.integers(0, 9))},
    }
    return json.dumps(doc, ensure_ascii=draw(st.booleans())).encode("utf-8", "surrogatepass")


def assert_short_string(value: str | None) -> None:
    assert value is None or len(value.encode("utf-8")) <= 255


@given(st.binary(max_size=300) | deliveries() | overlong_deliveries(), st.booleans())
def test_the_ingress_message_of_any_signed_body_fits_amqp_and_pika_encodes_it(body: bytes, verified: bool) -> None:
    message = read_facts(body).message(body, exchange="docspace.events", verified=verified)
    assert message.body == body  # byte for byte, never re-serialised
    assert message.content_type == "application/json"  # its own, never the request's
    for short in (message.exchange, message.routing_key, message.message_id, message.content_type, message.type):
        assert_short_string(short)
    for name, value in message.headers.items():
        assert_short_string(name)
        if isinstance(value, int) and not isinstance(value, bool):
            assert -(2**63) <= value < 2**63
        elif isinstance(value, str):
            value.encode("utf-8")  # a long string: any length, but it must be encodable
        else:
            assert isinstance(value, bool)
    # What the publisher hands pika: the method frame's short strings and the content header's properties.
    pika.spec.Basic.Publish(exchange=message.exchange, routing_key=message.routing_key, mandatory=True).encode()
    properties(message, seq=2**31).encode()


# --- Retry-After and X-RateLimit-Reset ---------------------------------------------------------------------------

NUMBERS = st.floats().map(repr) | st.integers().map(str) | st.sampled_from(["inf", "-inf", "nan", "1e309", "-0"])
HTTP_DATES = st.datetimes(min_value=datetime(1, 1, 1), max_value=datetime(9999, 12, 31)).map(
    lambda d: d.strftime("%a, %d %b %Y %H:%M:%S GMT")
)


@given(st.none() | st.text(max_size=80) | NUMBERS | HTTP_DATES, st.floats(min_value=0.001, max_value=86400))
def test_retry_after_is_none_or_finite_within_the_cap(value: str | None, cap: float) -> None:
    seconds = parse_retry_after(value, cap=cap)
    assert seconds is None or (math.isfinite(seconds) and 0 <= seconds <= cap)


@given(
    st.dictionaries(st.sampled_from(["Retry-After", "X-RateLimit-Reset"]), st.text(max_size=40) | NUMBERS | HTTP_DATES),
    st.floats(min_value=0.001, max_value=86400),
)
def test_a_pause_from_any_headers_is_none_or_finite_within_the_cap(headers: dict[str, str], cap: float) -> None:
    seconds = retry_after_from(headers, cap=cap)
    assert seconds is None or (math.isfinite(seconds) and 0 <= seconds <= cap)


# --- the rules loader -------------------------------------------------------------------------------------------


def toml_string(value: str) -> str:
    return json.dumps(value, ensure_ascii=False)  # a JSON string is a TOML basic string, escapes included


@st.composite
def rules_files(draw: st.DrawFn) -> str:
    clients = []
    for _ in range(draw(st.integers(0, 3))):
        room = draw(st.integers(-5, 2**64) | HOSTILE_TEXT | st.text(max_size=20))
        fields = {
            "name": toml_string(draw(st.text(max_size=20))),
            "room_id": str(room) if isinstance(room, int) else toml_string(room),
            "manager_email": toml_string(draw(st.emails() | st.text(max_size=20))),
        }
        if draw(st.booleans()):
            fields["incoming_folder_id"] = toml_string(draw(HOSTILE_TEXT | st.text(max_size=10)))
        if draw(st.booleans()):
            fields["title_patterns"] = (
                "[" + ", ".join(toml_string(p) for p in draw(st.lists(st.text(max_size=8)))) + "]"
            )
        clients.append("[[clients]]\n" + "".join(f"{key} = {value}\n" for key, value in fields.items()))
    return "\n".join(clients)


@given(text=st.binary(max_size=300).map(lambda b: b.decode("latin-1")) | st.text(max_size=300) | rules_files())
def test_a_rules_file_loads_or_is_a_rules_error(text: str, folder: Path) -> None:
    path = folder / "rules.toml"
    path.write_bytes(text.encode("utf-8", "surrogatepass"))
    try:
        rules = load_rules(rules_file=path)
    except RulesError as exc:
        assert str(exc)
        return
    assert rules.clients
    for client in rules.clients:
        assert_is_docspace_id(client.room_id)
        assert_is_docspace_id(client.incoming_folder_id)
        assert client.name and "@" in client.manager_email


@given(raw=st.binary(max_size=200))
def test_a_rules_file_that_is_no_utf8_is_a_rules_error(raw: bytes, folder: Path) -> None:
    path = folder / "rules.toml"
    path.write_bytes(b"\xff" + raw)
    with pytest.raises(RulesError, match="not UTF-8"):
        load_rules(rules_file=path)


# --- the e-mail built from DocSpace's titles and names ----------------------------------------------------------

NAMES = st.text(min_size=1, max_size=60) | st.sampled_from(
    ["a\r\nBcc: victim@example.com", "x\nSubject: spoof", "a\u2028Bcc: b@c.d", "a\x85Bcc: b@c.d", "\x00\x1b[31m"]
)
EXPECTED_HEADERS = {"subject", "from", "to", "date", "message-id", "x-invoice-id", "mime-version", "content-type"}


@given(title=NAMES, client=NAMES, room=NAMES, uploader=NAMES, invoice=NAMES)
def test_an_invoice_email_is_a_clean_message_whatever_the_names(
    title: str, client: str, room: str, uploader: str, invoice: str
) -> None:
    invoice_model = invoice_received(
        title=title, client=client, room_title=room, uploaded_by=uploader, invoice_id=invoice
    )
    message = build_invoice_email(invoice_model, mail_from="Invoices <invoices@example.com>", now=datetime.now(UTC))
    wire = message.as_bytes()
    parsed = email.message_from_bytes(wire, policy=email.policy.default)
    # No header was injected, none lost: exactly the headers the notice has, each once.
    assert sorted(k.lower() for k in parsed) == sorted(EXPECTED_HEADERS)
    assert parsed["To"].addresses[0].addr_spec == "ann@acme.example"
    assert parsed["Message-ID"] == message["Message-ID"]
    for name in ("Subject", "X-Invoice-Id"):
        value = str(parsed[name])
        assert not any(unicodedata.category(ch) in {"Cc", "Zl", "Zp"} for ch in value), (name, value)
    text, html = (part.get_content() for part in parsed.iter_parts())
    assert "<script" not in html.lower() or "&lt;script" in html.lower()
    assert "A new invoice from" in text


TOKENS = st.text(alphabet="ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz0123456789", min_size=8, max_size=16)


@given(user=TOKENS, password=TOKENS, path=TOKENS, query=TOKENS, port=st.integers(1, 65535))
def test_a_url_is_shown_without_any_of_its_secrets(user: str, password: str, path: str, query: str, port: int) -> None:
    url = f"https://{user}:{password}@pipeline.example:{port}/hooks/{path}?api_key={query}#{query}"
    shown = safe_url(url)
    assert shown == f"https://pipeline.example:{port}"
    text = scrub(f"failed: Max retries exceeded with url: /hooks/{path}?api_key={query} ({url})", url)
    for secret in (password, path, query):
        assert secret not in text and secret not in shown
