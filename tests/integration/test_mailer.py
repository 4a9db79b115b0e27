"""SmtpMailer against a real SMTP server (aiosmtpd): delivery, identity, and typed failures."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from pydantic import SecretStr

from consumers.notifier.handler import Mailer
from consumers.notifier.mailer import SmtpConfig, SmtpMailer
from shared.core.errors import PermanentError, TransientError
from standins.mail.catcher import MailCatcher
from standins.ports import free_port
from tests.support.mail_notice import assert_carries_the_notice, hostile_invoice, plain_and_html

pytestmark = pytest.mark.timeout(30)

MAIL_FROM = "DocSpace invoices <invoices@notify.example.org>"


def mailer_for(server: MailCatcher, **overrides: Any) -> SmtpMailer:
    config: dict[str, Any] = {
        "host": server.host,
        "port": server.port,
        "mail_from": MAIL_FROM,
        "timeout": 5.0,
    }
    config.update(overrides)
    return SmtpMailer(SmtpConfig(**config))


def test_smtp_mailer_is_a_mailer(smtp_server: MailCatcher) -> None:
    mailer: Mailer = mailer_for(smtp_server)
    assert isinstance(mailer.send_invoice_notice(hostile_invoice()), str)


def test_notice_arrives_with_both_alternatives(smtp_server: MailCatcher) -> None:
    message_id = mailer_for(smtp_server).send_invoice_notice(hostile_invoice())

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

    assert_carries_the_notice(*plain_and_html(msg))


def test_resending_the_same_invoice_repeats_the_message_id(smtp_server: MailCatcher) -> None:
    first = mailer_for(smtp_server).send_invoice_notice(hostile_invoice())
    second = mailer_for(smtp_server).send_invoice_notice(hostile_invoice())
    other = mailer_for(smtp_server).send_invoice_notice(hostile_invoice(invoice_id="4711:v3"))

    received = [mail.message["Message-ID"] for mail in smtp_server.wait_for(3)]
    assert first == second != other
    assert received == [first, first, other]


def test_451_is_transient(smtp_server: MailCatcher) -> None:
    smtp_server.fail_next(1, 451, "4.3.0 Mailbox busy, try later")
    mailer = mailer_for(smtp_server)

    with pytest.raises(TransientError) as caught:
        mailer.send_invoice_notice(hostile_invoice())
    assert caught.value.reason == "smtp_temporary"
    assert "451" in str(caught.value)
    assert "Mailbox busy" in str(caught.value)

    mailer.send_invoice_notice(hostile_invoice())  # the next attempt goes through
    assert len(smtp_server.wait_for(1)) == 1


def test_550_is_permanent(smtp_server: MailCatcher) -> None:
    smtp_server.fail_next(1, 550, "5.7.1 Content rejected")

    with pytest.raises(PermanentError) as caught:
        mailer_for(smtp_server).send_invoice_notice(hostile_invoice())
    assert caught.value.reason == "smtp_rejected"
    assert "5.7.1 Content rejected" in str(caught.value)
    assert smtp_server.mails == []


@pytest.mark.parametrize(
    ("code", "text", "error", "reason", "said"),
    [
        (550, "5.1.1 No such user", PermanentError, "smtp_rejected", "manager@example.com: 550"),
        (450, "4.2.1 Greylisted", TransientError, "smtp_temporary", "Greylisted"),
    ],
    ids=["refused-550-permanent", "deferred-450-transient"],
)
def test_a_recipient_answer_decides_permanent_or_transient(
    smtp_server: MailCatcher, code: int, text: str, error: type[Exception], reason: str, said: str
) -> None:
    smtp_server.fail_next(1, code, text, stage="RCPT")

    with pytest.raises(error) as caught:
        mailer_for(smtp_server).send_invoice_notice(hostile_invoice())
    assert getattr(caught.value, "reason", None) == reason
    assert said in str(caught.value)


def test_sender_refused_with_421_is_transient(smtp_server: MailCatcher) -> None:
    smtp_server.fail_next(1, 421, "4.7.0 Too many connections", stage="MAIL")

    with pytest.raises(TransientError):
        mailer_for(smtp_server).send_invoice_notice(hostile_invoice())


def test_server_down_is_transient() -> None:
    mailer = SmtpMailer(SmtpConfig(host="127.0.0.1", port=free_port(), mail_from=MAIL_FROM, timeout=2.0))

    with pytest.raises(TransientError) as caught:
        mailer.send_invoice_notice(hostile_invoice())
    assert caught.value.reason == "smtp_unavailable"


def test_outage_then_recovery_on_the_same_port(smtp_server: MailCatcher) -> None:
    mailer = mailer_for(smtp_server)
    smtp_server.stop()

    with pytest.raises(TransientError):
        mailer.send_invoice_notice(hostile_invoice())

    smtp_server.start()
    mailer.send_invoice_notice(hostile_invoice())
    assert len(smtp_server.wait_for(1)) == 1


@pytest.mark.parametrize("password", ["s3cr3t", "s3cr3t-pässword"], ids=["ascii", "utf8"])
def test_login_against_an_auth_server(smtp_server_factory: Callable[..., MailCatcher], password: str) -> None:
    server = smtp_server_factory(auth=("notifier", password))
    mailer = mailer_for(server, username="notifier", password=SecretStr(password))

    mailer.send_invoice_notice(hostile_invoice())

    [mail] = server.wait_for(1)
    assert mail.authenticated_as == "notifier"


def test_wrong_password_is_permanent_and_not_echoed(
    smtp_server_factory: Callable[..., MailCatcher],
) -> None:
    server = smtp_server_factory(auth=("notifier", "right"))
    mailer = mailer_for(server, username="notifier", password=SecretStr("wrong-horse-battery"))

    with pytest.raises(PermanentError) as caught:
        mailer.send_invoice_notice(hostile_invoice())
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
        mailer_for(server).send_invoice_notice(hostile_invoice())
    assert "530" in str(caught.value)


def test_starttls_configured_but_not_offered_is_permanent(smtp_server: MailCatcher) -> None:
    with pytest.raises(PermanentError) as caught:
        mailer_for(smtp_server, starttls=True).send_invoice_notice(hostile_invoice())
    assert caught.value.reason == "smtp_misconfigured"


def test_invalid_manager_address_is_permanent(smtp_server: MailCatcher) -> None:
    with pytest.raises(PermanentError) as caught:
        mailer_for(smtp_server).send_invoice_notice(hostile_invoice(manager_email="not an address"))
    assert caught.value.reason == "invalid_message"


def test_config_rejects_contradictions() -> None:
    with pytest.raises(ValueError, match="mutually exclusive"):
        SmtpConfig(host="h", mail_from=MAIL_FROM, ssl=True, starttls=True)
    with pytest.raises(ValueError, match="password"):
        SmtpConfig(host="h", mail_from=MAIL_FROM, username="u")
