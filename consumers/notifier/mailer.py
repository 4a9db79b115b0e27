"""The e-mail port of the notifier and its SMTP adapter: the only module that speaks smtplib."""

from __future__ import annotations

import base64
import smtplib
import ssl
from dataclasses import dataclass
from datetime import UTC, datetime
from email.errors import HeaderParseError
from email.message import EmailMessage
from email.utils import parseaddr

from pydantic import SecretStr

from consumers.notifier.email_content import build_invoice_email
from shared.core.errors import PermanentError, TransientError
from shared.core.events import InvoiceReceived


@dataclass(frozen=True, kw_only=True)
class SmtpConfig:
    """Where and how to submit mail: ``ssl`` is implicit TLS (port 465), ``starttls`` upgrades plain SMTP."""

    host: str
    port: int = 25
    starttls: bool = False
    username: str | None = None
    password: SecretStr | None = None
    mail_from: str
    timeout: float = 10.0
    ssl: bool = False

    def __post_init__(self) -> None:
        if self.ssl and self.starttls:
            raise ValueError("SMTP ssl (implicit TLS) and starttls are mutually exclusive")
        if self.username is not None and self.password is None:
            raise ValueError("SMTP username is set but password is not")

    def __repr__(self) -> str:
        # The dataclass repr would be safe with SecretStr, but a plain-str password slipped in by a caller
        # must not end up in a log line either.
        return (
            f"SmtpConfig(host={self.host!r}, port={self.port}, starttls={self.starttls}, ssl={self.ssl}, "
            f"username={self.username!r}, password={'***' if self.password else None}, "
            f"mail_from={self.mail_from!r}, timeout={self.timeout})"
        )


class SmtpMailer:
    """Sends each notice over its own SMTP connection: simple, and nothing stale to recover after outages."""

    def __init__(self, config: SmtpConfig) -> None:
        self._config = config
        self._envelope_from = parseaddr(config.mail_from)[1]
        if "@" not in self._envelope_from:
            raise ValueError(f"mail_from is not an address: {config.mail_from!r}")

    def send_invoice_notice(self, invoice: InvoiceReceived) -> str:
        try:
            msg = build_invoice_email(invoice, mail_from=self._config.mail_from, now=datetime.now(UTC))
        except (ValueError, HeaderParseError) as exc:
            # A malformed manager address will be just as malformed on every retry.
            raise PermanentError(f"cannot build the notice: {exc}", reason="invalid_message") from exc
        message_id = str(msg["Message-ID"])
        where = f"{self._config.host}:{self._config.port}"
        try:
            smtp = self._connect()
        except smtplib.SMTPResponseException as exc:  # a 421/554 greeting
            raise _classify_reply(exc, where) from exc
        except (smtplib.SMTPException, OSError) as exc:
            raise TransientError(f"cannot reach SMTP server {where}: {exc!r}", reason="smtp_unavailable") from exc
        try:
            self._submit(smtp, msg, invoice.manager_email, where)
        finally:
            _close_quietly(smtp)
        return message_id

    def _connect(self) -> smtplib.SMTP:
        cfg = self._config
        if cfg.ssl:
            return smtplib.SMTP_SSL(cfg.host, cfg.port, timeout=cfg.timeout, context=ssl.create_default_context())
        return smtplib.SMTP(cfg.host, cfg.port, timeout=cfg.timeout)

    def _submit(self, smtp: smtplib.SMTP, msg: EmailMessage, recipient: str, where: str) -> None:
        cfg = self._config
        try:
            if cfg.starttls:
                smtp.starttls(context=ssl.create_default_context())
            if cfg.username is not None and cfg.password is not None:
                self._login(smtp, cfg.username, cfg.password, where)
            smtp.send_message(msg, from_addr=self._envelope_from, to_addrs=[recipient])
        except smtplib.SMTPRecipientsRefused as exc:
            raise _classify_refused_recipients(exc, where) from exc
        except smtplib.SMTPNotSupportedError as exc:
            # STARTTLS or AUTH asked for but not offered: configuration, not weather.
            raise PermanentError(
                f"SMTP server {where} does not support what is configured: {exc}", reason="smtp_misconfigured"
            ) from exc
        except smtplib.SMTPResponseException as exc:
            raise _classify_reply(exc, where) from exc
        except smtplib.SMTPServerDisconnected as exc:
            raise TransientError(f"SMTP server {where} disconnected: {exc}", reason="smtp_unavailable") from exc
        except smtplib.SMTPException as exc:
            # What is left ("no suitable authentication method"...) is a mismatch that retrying won't fix.
            raise PermanentError(f"SMTP server {where}: {exc}", reason="smtp_rejected") from exc
        except OSError as exc:  # timeouts, resets, TLS handshake failures mid-session
            raise TransientError(f"SMTP connection to {where} failed: {exc!r}", reason="smtp_unavailable") from exc

    @staticmethod
    def _login(smtp: smtplib.SMTP, username: str, password: SecretStr, where: str) -> None:
        secret = password.get_secret_value()
        try:
            if username.isascii() and secret.isascii():
                smtp.login(username, secret)
            else:
                _login_plain_utf8(smtp, username, secret)
        except smtplib.SMTPAuthenticationError as exc:
            if 400 <= exc.smtp_code < 500:  # 454: temporary authentication failure
                raise TransientError(
                    f"SMTP login to {where} failed temporarily: {exc.smtp_code} {_text(exc.smtp_error)}",
                    reason="smtp_temporary",
                ) from exc
            raise PermanentError(
                f"SMTP login to {where} as {username!r} refused: {exc.smtp_code} {_text(exc.smtp_error)}",
                reason="smtp_auth_failed",
            ) from exc


def _login_plain_utf8(smtp: smtplib.SMTP, username: str, password: str) -> None:
    """AUTH PLAIN with UTF-8 credentials (RFC 4616): smtplib.login insists on ASCII and would crash."""
    smtp.ehlo_or_helo_if_needed()
    mechanisms = smtp.esmtp_features.get("auth", "").upper().split()
    if "PLAIN" not in mechanisms:
        raise smtplib.SMTPNotSupportedError("non-ASCII credentials need AUTH PLAIN, which the server lacks")
    token = base64.b64encode(f"\0{username}\0{password}".encode()).decode("ascii")
    code, reply = smtp.docmd("AUTH", f"PLAIN {token}")
    if code != 235:  # 235: authentication succeeded
        raise smtplib.SMTPAuthenticationError(code, reply)


def _text(reply: bytes | str) -> str:
    return reply.decode("utf-8", "replace") if isinstance(reply, bytes) else reply


def _classify_reply(exc: smtplib.SMTPResponseException, where: str) -> TransientError | PermanentError:
    code, reply = exc.smtp_code, _text(exc.smtp_error)
    if 500 <= code < 600:
        return PermanentError(f"SMTP server {where} rejected the notice: {code} {reply}", reason="smtp_rejected")
    if 400 <= code < 500:
        return TransientError(f"SMTP server {where} deferred the notice: {code} {reply}", reason="smtp_temporary")
    # smtplib reports a broken reply as code -1: the link, not the server's verdict.
    return TransientError(f"SMTP server {where} answered oddly: {code} {reply}", reason="smtp_unavailable")


def _classify_refused_recipients(exc: smtplib.SMTPRecipientsRefused, where: str) -> TransientError | PermanentError:
    replies = "; ".join(f"{rcpt}: {code} {_text(text)}" for rcpt, (code, text) in exc.recipients.items())
    if any(400 <= code < 500 for code, _ in exc.recipients.values()):
        return TransientError(f"SMTP server {where} deferred the recipient: {replies}", reason="smtp_temporary")
    return PermanentError(f"SMTP server {where} refused the recipient: {replies}", reason="smtp_rejected")


def _close_quietly(smtp: smtplib.SMTP) -> None:
    """QUIT politely; once the message is accepted, a failing goodbye must not turn success into a retry."""
    try:
        smtp.quit()
    except (smtplib.SMTPException, OSError):
        smtp.close()
