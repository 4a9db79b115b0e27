"""Builds the account manager's e-mail for a received invoice (pure: invoice and clock in, e-mail out)."""

from __future__ import annotations

import hashlib
import html
from datetime import datetime
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import format_datetime, parseaddr
from urllib.parse import urlsplit

from shared.core.control_chars import one_line
from shared.core.events import InvoiceReceived

# Everything shown comes from DocSpace users (file titles, room names, user names). In a header a CR/LF would be
# refused by the email package or, worse elsewhere, inject headers; in the plain-text body it would start a line
# of the sender's choosing ("Bank details changed: ..."). So each value is put on one line
# (shared/core/control_chars.py).


def message_id_for(invoice_id: str, domain: str) -> str:
    """The Message-ID of an invoice's notice.

    Derived from the invoice id, so a re-send after a crash repeats it and mail clients and servers can
    recognise the duplicate.
    """
    digest = hashlib.sha256(invoice_id.encode("utf-8")).hexdigest()[:32]
    return f"<invoice-{digest}@{domain}>"


def sender_domain(mail_from: str) -> str:
    """The domain part of ``mail_from`` (``Invoices <invoices@example.com>`` or a bare address)."""
    _, address = parseaddr(mail_from)
    domain = address.rpartition("@")[2].strip().strip(">").lower()
    if not domain or "@" not in address:
        raise ValueError(f"mail_from has no domain: {mail_from!r}")
    return domain


def build_invoice_email(invoice: InvoiceReceived, *, mail_from: str, now: datetime) -> EmailMessage:
    """The notice for ``invoice``: plain text and HTML alternatives, stable Message-ID, ``X-Invoice-Id``."""
    msg = EmailMessage()
    msg["Subject"] = _header_text(f"New invoice from {invoice.client}: {invoice.title}")
    msg["From"] = mail_from
    msg["To"] = Address(addr_spec=invoice.manager_email)
    msg["Date"] = format_datetime(now)
    msg["Message-ID"] = message_id_for(invoice.invoice_id, sender_domain(mail_from))
    msg["X-Invoice-Id"] = _header_text(invoice.invoice_id)
    # Quoted-printable keeps the body 7-bit clean: smtplib does not ask for 8BITMIME, so raw UTF-8 bytes would
    # be a protocol violation on a strict relay.
    msg.set_content(_plain_text(invoice), charset="utf-8", cte="quoted-printable")
    msg.add_alternative(_html(invoice), subtype="html", charset="utf-8", cte="quoted-printable")
    return msg


def _header_text(value: str) -> str:
    return one_line(value)


def _when(value: datetime | None) -> str | None:
    if value is None:
        return None
    return value.isoformat(sep=" ", timespec="minutes")


def _facts(invoice: InvoiceReceived) -> list[tuple[str, str]]:
    """The lines both alternatives show, in order; missing optional facts are left out rather than 'None'."""
    room = invoice.room_title or invoice.room_id
    facts: list[tuple[str, str | None]] = [
        ("File", invoice.title),
        ("Client", invoice.client),
        ("Room", room),
        ("Uploaded by", invoice.uploaded_by),
        ("Uploaded at", _when(invoice.uploaded_at)),
        ("Invoice id", invoice.invoice_id),
    ]
    cleaned = [(label, one_line(value)) for label, value in facts if value]
    return [(label, value) for label, value in cleaned if value]


def _safe_link(url: str | None) -> str | None:
    """Only http(s) links become clickable: a ``javascript:`` URL in an e-mail is an attack, not a link."""
    if not url:
        return None
    return url if urlsplit(url).scheme.lower() in {"http", "https"} else None


def _plain_text(invoice: InvoiceReceived) -> str:
    lines = [f"A new invoice from {one_line(invoice.client)} is in the Incoming folder.", ""]
    lines += [f"{label}: {value}" for label, value in _facts(invoice)]
    if invoice.web_url:
        lines += ["", f"Open the file: {one_line(invoice.web_url)}"]
    return "\n".join(lines) + "\n"


def _html(invoice: InvoiceReceived) -> str:
    def esc(value: str) -> str:
        return html.escape(value, quote=True)

    rows = "\n".join(
        f'      <tr><th align="left">{esc(label)}</th><td>{esc(value)}</td></tr>' for label, value in _facts(invoice)
    )
    link = _safe_link(invoice.web_url)
    if link:
        open_file = f'    <p><a href="{esc(link)}">Open the file</a></p>\n'
    elif invoice.web_url:
        open_file = f"    <p>File address: {esc(invoice.web_url)}</p>\n"
    else:
        open_file = ""
    return (
        "<!DOCTYPE html>\n"
        '<html>\n  <head><meta charset="utf-8"><title>'
        f"{esc(_header_text(f'New invoice from {invoice.client}'))}</title></head>\n"
        "  <body>\n"
        f"    <p>A new invoice from <strong>{esc(one_line(invoice.client))}</strong> is in the Incoming folder.</p>\n"
        f"    <table>\n{rows}\n    </table>\n"
        f"{open_file}"
        "  </body>\n</html>\n"
    )
