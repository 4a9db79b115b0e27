"""``MailCatcher``: the mail catcher's SMTP server and web page in process, with scripted failures for the tests."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from email.message import EmailMessage
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session

from standins.mail.caught import CaughtMail
from standins.mail.smtp_server import SmtpHandler
from standins.mail.viewer import http_server
from standins.ports import free_port
from standins.wait import wait_for

STAGES = ("MAIL", "RCPT", "DATA")


@dataclass
class _ScriptedFailure:
    remaining: int
    code: int
    text: str
    stage: str


class MailCatcher:
    """SMTP on ``smtp_port``; with ``http_port``, a page (``/``) and JSON (``/api/messages``) listing the mails.

    For tests it can be scripted to fail (``fail_next``), stopped and started again on the same port (an outage),
    and with ``auth=(user, password)`` it offers AUTH LOGIN/PLAIN without TLS (loopback only) and records who
    logged in; ``auth_required=True`` also refuses mail without AUTH (530).
    """

    def __init__(
        self,
        smtp_port: int | None = None,
        on_mail: Callable[[EmailMessage, list[str]], None] | None = None,
        *,
        host: str = "127.0.0.1",
        http_port: int | None = None,
        auth: tuple[str, str] | None = None,
        auth_required: bool = False,
    ) -> None:
        self.host = host
        self.port = smtp_port or free_port(host)
        self.auth = auth
        self.auth_required = auth_required
        self._mails: list[CaughtMail] = []
        self._failures: list[_ScriptedFailure] = []
        self._failed_logins = 0
        self._lock = threading.Lock()
        self._on_mail = on_mail
        self._controller: Controller | None = None
        self._http = http_server(lambda: self.mails, self.clear, host, http_port) if http_port is not None else None
        self._http_started = False

    @property
    def mails(self) -> list[CaughtMail]:
        with self._lock:
            return list(self._mails)

    @property
    def messages(self) -> list[EmailMessage]:
        return [mail.message for mail in self.mails]

    def count(self) -> int:
        with self._lock:
            return len(self._mails)

    def per_invoice(self) -> Counter[str]:
        """How many mails each invoice got (``X-Invoice-Id``; ``?`` for a mail without one)."""
        return Counter(mail.invoice_id or "?" for mail in self.mails)

    @property
    def failed_logins(self) -> int:
        with self._lock:
            return self._failed_logins

    @property
    def running(self) -> bool:
        return self._controller is not None

    @property
    def http_url(self) -> str | None:
        if self._http is None:
            return None
        return f"http://{self.host}:{self._http.server_port}"

    def start(self) -> MailCatcher:
        """Start (or, after ``stop``, start again on the same port)."""
        if self._controller is None:
            kwargs: dict[str, Any] = {"enable_SMTPUTF8": True}
            if self.auth is not None:
                # Plain AUTH without TLS is only acceptable because a test server never leaves 127.0.0.1.
                kwargs.update(
                    authenticator=self._authenticate, auth_required=self.auth_required, auth_require_tls=False
                )
            controller = Controller(
                SmtpHandler(self._take_failure, self._keep), hostname=self.host, port=self.port, **kwargs
            )
            controller.start()
            self._controller = controller
        if self._http is not None and not self._http_started:
            self._http_started = True
            threading.Thread(target=self._http.serve_forever, name="mail-catcher-http", daemon=True).start()
        return self

    def stop(self) -> None:
        """Stop SMTP (the web page, if any, stays until ``close``): mail is refused until ``start``."""
        if self._controller is not None:
            self._controller.stop()
            self._controller = None

    def close(self) -> None:
        self.stop()
        if self._http is not None and self._http_started:
            self._http.shutdown()
            self._http.server_close()
            self._http_started = False

    def restart(self) -> None:
        self.stop()
        self.start()

    def clear(self) -> None:
        with self._lock:
            self._mails.clear()
            self._failures.clear()

    def wait_for(self, count: int, timeout: float = 5.0) -> list[CaughtMail]:
        """The mails once there are ``count``; ``AssertionError`` if they do not come within ``timeout``."""
        return wait_for(self.count, lambda: self.mails, count, timeout, "message(s)")

    def fail_next(self, count: int = 1, code: int = 451, text: str | None = None, *, stage: str = "DATA") -> None:
        """Answer ``code text`` at ``stage`` (``MAIL``, ``RCPT``, ``DATA``) to the next ``count`` messages."""
        if stage not in STAGES:
            raise ValueError(f"unknown SMTP stage {stage!r}")
        if text is None:
            text = "4.3.0 Try again later" if 400 <= code < 500 else "5.7.1 Message rejected"
        with self._lock:
            self._failures.append(_ScriptedFailure(count, code, text, stage))

    def _take_failure(self, stage: str) -> str | None:
        with self._lock:
            for failure in self._failures:
                if failure.stage == stage and failure.remaining > 0:
                    failure.remaining -= 1
                    return f"{failure.code} {failure.text}"
        return None

    def _keep(self, mail: CaughtMail) -> None:
        with self._lock:
            self._mails.append(mail)
        if self._on_mail is not None:
            self._on_mail(mail.message, list(mail.rcpt_tos))

    def _authenticate(
        self, server: SMTP, session: Session, envelope: Envelope, mechanism: str, auth_data: Any
    ) -> AuthResult:
        assert self.auth is not None
        user, password = self.auth
        ok = (
            mechanism in {"LOGIN", "PLAIN"}
            and isinstance(auth_data, LoginPassword)
            and auth_data.login == user.encode()
            and auth_data.password == password.encode()
        )
        if not ok:
            with self._lock:
                self._failed_logins += 1
            return AuthResult(success=False, handled=False)
        return AuthResult(success=True, auth_data=auth_data)
