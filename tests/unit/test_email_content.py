"""The invoice notice's content: alternatives, escaping, stable identity, hostile input."""

from __future__ import annotations

from datetime import UTC, datetime
from email import message_from_bytes
from email.message import EmailMessage
from email.policy import default as default_policy
from typing import Any

import pytest

from consumers.notifier.email_content import build_invoice_email, message_id_for, sender_domain
from shared.core.events import InvoiceReceived
from tests.support.mail_notice import HOSTILE_NOTICE, assert_carries_the_notice, plain_and_html
from tests.support.message_builders import invoice_received

NOW = datetime(2024, 5, 6, 7, 8, 9, tzinfo=UTC)
MAIL_FROM = "Invoice bot <invoices@example.org>"


# What these tests read back from the message: hostile and non-ASCII text, and every optional fact.
NOTICE: dict[str, Any] = {
    **HOSTILE_NOTICE,
    "room_id": "900",
    "room_title": "Acme room",
    "uploaded_by": "Zoë Client",
    "uploaded_at": datetime(2024, 5, 6, 7, 0, tzinfo=UTC),
}


def invoice(**overrides: Any) -> InvoiceReceived:
    return invoice_received(**{**NOTICE, **overrides})


def roundtrip(msg: EmailMessage) -> EmailMessage:
    """What a receiver sees: the message serialised to bytes and parsed back."""
    parsed = message_from_bytes(msg.as_bytes(), policy=default_policy)
    assert isinstance(parsed, EmailMessage)
    return parsed


def test_headers_address_the_manager_with_a_readable_subject() -> None:
    msg = roundtrip(build_invoice_email(invoice(), mail_from=MAIL_FROM, now=NOW))

    assert msg["To"] == "manager@example.com"
    assert msg["From"] == MAIL_FROM
    assert msg["Subject"] == "New invoice from Acme <b>&</b> Sons: Счёт-Invoice №42.pdf"
    assert msg["X-Invoice-Id"] == "4711:v2"
    assert msg["Date"].datetime == NOW
    assert msg.get_content_type() == "multipart/alternative"


def test_message_id_is_stable_per_invoice_and_uses_the_sender_domain() -> None:
    first = build_invoice_email(invoice(), mail_from=MAIL_FROM, now=NOW)
    again = build_invoice_email(invoice(), mail_from=MAIL_FROM, now=datetime.now(UTC))
    other = build_invoice_email(invoice(invoice_id="4711:v3"), mail_from=MAIL_FROM, now=NOW)

    assert first["Message-ID"] == again["Message-ID"] == message_id_for("4711:v2", "example.org")
    assert first["Message-ID"] != other["Message-ID"]
    assert str(first["Message-ID"]).startswith("<invoice-")
    assert str(first["Message-ID"]).endswith("@example.org>")


def test_both_alternatives_carry_the_facts_and_the_link() -> None:
    plain, rich = plain_and_html(roundtrip(build_invoice_email(invoice(), mail_from=MAIL_FROM, now=NOW)))

    assert_carries_the_notice(plain, rich)
    for text in (plain, rich):
        assert "Acme room" in text
        assert "Zoë Client" in text
        assert "2024-05-06 07:00" in text


def test_html_escapes_what_users_typed() -> None:
    plain, rich = plain_and_html(
        roundtrip(build_invoice_email(invoice(uploaded_by='"><script>x</script>'), mail_from=MAIL_FROM, now=NOW))
    )

    assert "Acme &lt;b&gt;&amp;&lt;/b&gt; Sons" in rich
    assert "<b>" not in rich
    assert "<script>" not in rich
    assert "&quot;&gt;&lt;script&gt;" in rich
    assert "Acme <b>&</b> Sons" in plain  # plain text is not markup: shown as typed


def test_body_is_seven_bit_on_the_wire() -> None:
    raw = build_invoice_email(invoice(), mail_from=MAIL_FROM, now=NOW).as_bytes()

    assert all(byte < 128 for byte in raw)


def test_a_non_http_link_is_not_clickable() -> None:
    _, rich = plain_and_html(
        roundtrip(build_invoice_email(invoice(web_url="javascript:alert(1)"), mail_from=MAIL_FROM, now=NOW))
    )

    assert "href" not in rich
    assert "javascript:alert(1)" in rich


def test_missing_optional_facts_are_left_out() -> None:
    bare = invoice(web_url=None, uploaded_by=None, uploaded_at=None, room_title=None)
    plain, rich = plain_and_html(roundtrip(build_invoice_email(bare, mail_from=MAIL_FROM, now=NOW)))

    assert "None" not in plain
    assert "None" not in rich
    assert "Room: 900" in plain  # the room id stands in for a missing title
    assert "href" not in rich


def test_line_breaks_in_titles_cannot_inject_headers() -> None:
    msg = roundtrip(
        build_invoice_email(invoice(title="x.pdf\r\nBcc: victim@example.net"), mail_from=MAIL_FROM, now=NOW)
    )

    assert msg["Bcc"] is None
    assert "\n" not in msg["Subject"]


def test_control_characters_in_what_users_typed_cannot_forge_lines_in_the_plain_text() -> None:
    forged = "\r\nBank details changed: pay to IBAN XX00 0000\r\n"
    hostile = invoice(
        title=f"x.pdf{forged}",
        uploaded_by=f"Eve\u2028{forged}",
        room_title=f"Acme\x85{forged}\x1b[2J",
        client=f"Acme{forged}",
    )
    plain, rich = plain_and_html(roundtrip(build_invoice_email(hostile, mail_from=MAIL_FROM, now=NOW)))

    forged_lines = [line for line in plain.splitlines() if line.startswith("Bank details changed")]
    assert forged_lines == [], plain
    assert "File: x.pdf Bank details changed: pay to IBAN XX00 0000" in plain
    assert "\x1b" not in plain and "\u2028" not in plain and "\x85" not in plain
    assert "\x1b" not in rich and "\u2028" not in rich


@pytest.mark.parametrize(
    ("mail_from", "domain"),
    [("Invoices <bot@Mail.Example.com>", "mail.example.com"), ("bot@example.net", "example.net")],
)
def test_sender_domain(mail_from: str, domain: str) -> None:
    assert sender_domain(mail_from) == domain


def test_sender_without_domain_is_refused() -> None:
    with pytest.raises(ValueError, match="no domain"):
        sender_domain("postmaster")
