"""The invoice notice the mail tests read back: hostile and non-ASCII text, and the two parts of a sent mail."""

from __future__ import annotations

from email.message import EmailMessage
from typing import Any

from shared.core.events import InvoiceReceived
from tests.support.message_builders import invoice_received

# A non-ASCII title and markup in the client's name: what escaping and encoding must carry through unharmed.
HOSTILE_NOTICE: dict[str, Any] = {
    "invoice_id": "4711:v2",
    "file_id": "4711",
    "title": "Счёт-Invoice №42.pdf",
    "client": "Acme <b>&</b> Sons",
    "manager_email": "manager@example.com",
    "web_url": "https://portal.example.com/doceditor?fileId=4711&version=2",
}


def hostile_invoice(**overrides: Any) -> InvoiceReceived:
    return invoice_received(**{**HOSTILE_NOTICE, **overrides})


def plain_and_html(msg: EmailMessage) -> tuple[str, str]:
    """The text of the plain and the HTML alternative (both must be there)."""
    plain = msg.get_body(preferencelist=("plain",))
    rich = msg.get_body(preferencelist=("html",))
    assert plain is not None
    assert rich is not None
    return plain.get_content(), rich.get_content()


def assert_carries_the_notice(plain: str, rich: str) -> None:
    """Both parts carry the hostile notice's facts and link; only the HTML one escapes what users typed."""
    for text in (plain, rich):
        assert "Счёт-Invoice №42.pdf" in text
        assert "4711:v2" in text
    assert "https://portal.example.com/doceditor?fileId=4711&version=2" in plain
    assert 'href="https://portal.example.com/doceditor?fileId=4711&amp;version=2"' in rich
    assert "Acme <b>&</b> Sons" in plain  # plain text is not markup: shown as typed
    assert "Acme &lt;b&gt;&amp;&lt;/b&gt; Sons" in rich
    assert "<b>" not in rich
