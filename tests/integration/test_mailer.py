"""SmtpMailer against a real SMTP server (aiosmtpd): delivery, identity, and typed failures."""

from __future__ import annotations

from collections.abc import Callable
from email.message import EmailMessage
from typing import Any

import pytest
from pydantic import SecretStr

from consumers.notifier.handler import Mailer
from consumers.notifier.mailer import SmtpConfig, SmtpMailer
from shared.core.errors import PermanentError, TransientError
from shared.core.events import InvoiceReceived
from standins.mail.catcher import MailCatcher
from tests.support.message_builders import invoice_received
from tests.support.ports import free_port

pytestmark = pytest.mark.timeout(30)

MAIL_FROM = "DocSpace invoices <invoices@notify.example.org>"


# What these tests read back from the delivered mail: non-ASCII title, markup in the client's name.
NOTICE: dict[str, Any] = {
    "invoice_id": "4711:v2",
    "file_id": "4711",
    "title": "Счёт-Invoice №42.pdf",
    "client": "Acme <b>&</b> Sons",
    "manager_email": "manager@example.com",
    "web_url": "https://portal.example.com/doceditor?fileId=4711&version=2",
}


def invoice(**overrides: Any) -> InvoiceReceived:
    return invoice_received(**{**NOTICE, **overrides})


def mailer_for(server: MailCatcher, **overrides: Any) -> SmtpMailer:
    config: dict[str, Any] = {
        "host": server.host,
        "port": server.port,
        "mail_from": MAIL_FROM,
        "timeout": 5.0,
    }
    config.update(overrides)
    return SmtpMailer(SmtpConfig(**config))


def parts(msg: EmailMessage) -> tuple[str, str]:
    plain = msg.get_body(preferencelist=("plain",))
    rich = msg.get_body(preferencelist=("html",))
    assert plain is not None
    assert rich is not None
    return plain.get_content(), rich.get_content()


def test_smtp_mailer_is_a_mailer(smtp_server: MailCatcher) -> None:
    mailer: Mailer = mailer_for(smtp_server)
    assert isinstance(mailer.send_invoice_notice(invoice()), str)


def test_notice_arrives_with_both_alternatives(smtp_server: MailCatcher) -> None:
    message_id = mailer_for(smtp_server).send_invoice_notice(invoice())

    [mail] = smtp_server.wait_for(1)
    msg = mail.message
    assert mail.mail_from == "invoices@notify.example.org"
    assert mail.rcpt_tos == ("manager@example.com",)
    assert msg["To"] == "manager@example.com"
    assert msg["Message-ID"] == message_id
    assert message_id.endswith("@notify.example.org>")
    assert msg["X-Invoice-Id"] == "4711:v2"
    assert msg["Subject"] == "New invoice from Acme <b>&</b> Sons: Счёт-Invoice №42.pdf"
    assert msg["Date"] is not None
    assert msg.get_content_type() == "multipart/alternative"

    plain, rich = parts(msg)
    assert "Счёт-Invoice №42.pdf" in plain
    assert "Счёт-Invoice №42.pdf" in rich
    assert "https://portal.example.com/doceditor?fileId=4711&version=2" in plain
    assert 'href="https://portal.example.com/doceditor?fileId=4711&amp;version=2"' in rich
    assert "Acme <b>&</b> Sons" in plain
    assert "Acme &lt;b&gt;&amp;&lt;/b&gt; Sons" in rich
    assert "<b>" not in rich
    assert "4711:v2" in plain
    assert "4711:v2" in rich


def test_resending_the_same_invoice_repeats_the_message_id(smtp_server: MailCatcher) -> None:
    first = mailer_for(smtp_server).send_invoice_notice(invoice())
    second = mailer_for(smtp_server).send_invoice_notice(invoice())
    other = mailer_for(smtp_server).send_invoice_notice(invoice(invoice_id="4711:v3"))

    received = [mail.message["Message-ID"] for mail in smtp_server.wait_for(3)]
    assert first == second != other
    assert received == [first, first, other]


def test_451_is_transient(smtp_server: MailCatcher) -> None:
    smtp_server.fail_next(1, 451, "4.3.0 Mailbox busy, try later")
    mailer = mailer_for(smtp_server)

    with pytest.raises(TransientError) as caught:
        mailer.send_invoice_notice(invoice())
    assert caught.value.reason == "smtp_temporary"
    assert "451" in str(caught.value)
    assert "Mailbox busy" in str(caught.value)

    mailer.send_invoice_notice(invoice())  # the next attempt goes through
    assert len(smtp_server.wait_for(1)) == 1


def test_550_is_permanent(smtp_server: MailCatcher) -> None:
    smtp_server.fail_next(1, 550, "5.7.1 Content rejected")

    with pytest.raises(PermanentError) as caught:
        mailer_for(smtp_server).send_invoice_notice(invoice())
    assert caught.value.reason == "smtp_rejected"
    assert "5.7.1 Content rejected" in str(caught.value)
    assert smtp_server.mails == []


def test_recipient_refused_with_550_is_permanent(smtp_server: MailCatcher) -> None:
    smtp_server.fail_next(1, 550, "5.1.1 No such user", stage="RCPT")

    with pytest.raises(PermanentError) as caught:
        mailer_for(smtp_server).send_invoice_notice(invoice())
    assert caught.value.reason == "smtp_rejected"
    assert "manager@example.com: 550" in str(caught.value)


def test_recipient_deferred_with_450_is_transient(smtp_server: MailCatcher) -> None:
    smtp_server.fail_next(1, 450, "4.2.1 Greylisted", stage="RCPT")

    with pytest.raises(TransientError) as caught:
        mailer_for(smtp_server).send_invoice_notice(invoice())
    assert caught.value.reason == "smtp_temporary"
    assert "Greylisted" in str(caught.value)


def test_sender_refused_with_421_is_transient(smtp_server: MailCatcher) -> None:
    smtp_server.fail_next(1, 421, "4.7.0 Too many connections", stage="MAIL")

    with pytest.raises(TransientError):
        mailer_for(smtp_server).send_invoice_notice(invoice())


def test_server_down_is_transient() -> None:
    mailer = SmtpMailer(SmtpConfig(host="127.0.0.1", port=free_port(), mail_from=MAIL_FROM, timeout=2.0))

    with pytest.raises(TransientError) as caught:
        mailer.send_invoice_notice(invoice())
    assert caught.value.reason == "smtp_unavailable"


def test_outage_then_recovery_on_the_same_port(smtp_server: MailCatcher) -> None:
    mailer = mailer_for(smtp_server)
    smtp_server.stop()

    with pytest.raises(TransientError):
        mailer.send_invoice_notice(invoice())

    smtp_server.start()
    mailer.send_invoice_notice(invoice())
    assert len(smtp_server.wait_for(1)) == 1


@pytest.mark.parametrize("password", ["s3cr3t", "s3cr3t-pässword"], ids=["ascii", "utf8"])
def test_login_against_an_auth_server(smtp_server_factory: Callable[..., MailCatcher], password: str) -> None:
    server = smtp_server_factory(auth=("notifier", password))
    mailer = mailer_for(server, username="notifier", password=SecretStr(password))

    mailer.send_invoice_notice(invoice())

    [mail] = server.wait_for(1)
    assert mail.authenticated_as == "notifier"


def test_wrong_password_is_permanent_and_not_echoed(
    smtp_server_factory: Callable[..., MailCatcher],
) -> None:
    server = smtp_server_factory(auth=("notifier", "right"))
    mailer = mailer_for(server, username="notifier", password=SecretStr("wrong-horse-battery"))

    with pytest.raises(PermanentError) as caught:
        mailer.send_invoice_notice(invoice())
    assert caught.value.reason == "smtp_auth_failed"
    assert "wrong-horse-battery" not in str(caught.value)
    assert "wrong-horse-battery" not in repr(mailer_for(server, password=SecretStr("wrong-horse-battery")))
    assert server.failed_logins >= 1
    assert server.mails == []


@pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS:UserWarning")
def test_auth_required_but_not_configured_is_permanent(
    smtp_server_factory: Callable[..., MailCatcher],
) -> None:
    server = smtp_server_factory(auth=("notifier", "right"), auth_required=True)

    with pytest.raises(PermanentError) as caught:
        mailer_for(server).send_invoice_notice(invoice())
    assert "530" in str(caught.value)


def test_starttls_configured_but_not_offered_is_permanent(smtp_server: MailCatcher) -> None:
    with pytest.raises(PermanentError) as caught:
        mailer_for(smtp_server, starttls=True).send_invoice_notice(invoice())
    assert caught.value.reason == "smtp_misconfigured"


def test_invalid_manager_address_is_permanent(smtp_server: MailCatcher) -> None:
    with pytest.raises(PermanentError) as caught:
        mailer_for(smtp_server).send_invoice_notice(invoice(manager_email="not an address"))
    assert caught.value.reason == "invalid_message"


def test_config_rejects_contradictions() -> None:
    with pytest.raises(ValueError, match="mutually exclusive"):
        SmtpConfig(host="h", mail_from=MAIL_FROM, ssl=True, starttls=True)
    with pytest.raises(ValueError, match="password"):
        SmtpConfig(host="h", mail_from=MAIL_FROM, username="u")
