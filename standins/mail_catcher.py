"""A mail catcher: a real SMTP server that keeps every message, with a web page and a JSON API that list them.

``python -m standins.mail_catcher --smtp-port 1025 --http-port 8025`` (the compose demo); ``make run``, the
benchmark and the tests use :class:`MailCatcher` in process (the tests script its failures). Never part of the
production image.
"""

from __future__ import annotations

import argparse
import html
import json
import re
import socket
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email import message_from_bytes, policy
from email.message import EmailMessage
from functools import cached_property
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session

from standins.serve import serve_until_stopped

_INVOICE_HEADER = re.compile(rb"^X-Invoice-Id:\s*(\S+)", re.MULTILINE | re.IGNORECASE)
STAGES = ("MAIL", "RCPT", "DATA")


def free_port(host: str = "127.0.0.1") -> int:
    """A port nothing listens on right now (aiosmtpd's controller needs a real port to check it started)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


@dataclass(frozen=True)
class CaughtMail:
    """One message the SMTP server accepted, with its envelope; parsed only when read (a benchmark takes thousands)."""

    mail_from: str
    rcpt_tos: tuple[str, ...]
    raw: bytes
    received_at: datetime
    authenticated_as: str | None = None
    arrived: float = field(default_factory=time.monotonic)  # for durations: never goes back

    @cached_property
    def message(self) -> EmailMessage:
        message = message_from_bytes(self.raw, policy=policy.default)
        assert isinstance(message, EmailMessage)  # the default policy builds EmailMessage
        return message

    @property
    def invoice_id(self) -> str | None:
        """The pipeline's ``X-Invoice-Id`` header, read from the raw bytes."""
        match = _INVOICE_HEADER.search(self.raw)
        return match.group(1).decode("ascii", "replace") if match else None

    def summary(self) -> dict[str, Any]:
        text = self.message.get_body(preferencelist=("plain",))
        return {
            "from": self.mail_from,
            "to": list(self.rcpt_tos),
            "subject": str(self.message.get("Subject", "")),
            "message_id": str(self.message.get("Message-ID", "")),
            "date": str(self.message.get("Date", "")),
            "received_at": self.received_at.isoformat(),
            "text": text.get_content() if text is not None else "",
        }


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
        self._http = _http_server(self, host, http_port) if http_port is not None else None
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
            controller = Controller(_SmtpHandler(self), hostname=self.host, port=self.port, **kwargs)
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
        deadline = time.monotonic() + timeout
        while self.count() < count and time.monotonic() < deadline:
            time.sleep(0.02)
        mails = self.mails
        if len(mails) < count:
            raise AssertionError(f"expected {count} message(s), got {len(mails)}")
        return mails

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


class _SmtpHandler:
    """aiosmtpd's hooks; all state lives on the catcher, so it survives a restart."""

    def __init__(self, catcher: MailCatcher) -> None:
        self._catcher = catcher

    async def handle_MAIL(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, mail_options: list[str]
    ) -> str:
        if failure := self._catcher._take_failure("MAIL"):
            return failure
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 OK"

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, rcpt_options: list[str]
    ) -> str:
        if failure := self._catcher._take_failure("RCPT"):
            return failure
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        if failure := self._catcher._take_failure("DATA"):
            return failure
        auth = session.auth_data
        self._catcher._keep(
            CaughtMail(
                mail_from=str(envelope.mail_from or ""),
                rcpt_tos=tuple(envelope.rcpt_tos),
                raw=envelope.original_content or b"",
                received_at=datetime.now(UTC),
                authenticated_as=auth.login.decode("utf-8", "replace") if isinstance(auth, LoginPassword) else None,
            )
        )
        return "250 Message accepted for delivery"


def _http_server(catcher: MailCatcher, host: str, port: int) -> ThreadingHTTPServer:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path == "/api/messages":
                self._send(200, "application/json", json.dumps([m.summary() for m in catcher.mails]).encode())
            elif self.path == "/":
                self._send(200, "text/html; charset=utf-8", _page(catcher.mails).encode("utf-8"))
            else:
                self._send(404, "text/plain", b"not found\n")

        def do_DELETE(self) -> None:
            if self.path != "/api/messages":
                self._send(404, "text/plain", b"not found\n")
                return
            catcher.clear()
            self._send(204, "text/plain", b"")

        def _send(self, status: int, content_type: str, body: bytes) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            pass  # the page refreshes itself every few seconds

    return ThreadingHTTPServer((host, port), Handler)


def _page(mails: list[CaughtMail]) -> str:
    rows = "".join(
        "<article><h2>{subject}</h2><p class=meta>to {to} · from {sender} · {at}</p><pre>{text}</pre></article>".format(
            subject=html.escape(s["subject"]),
            to=html.escape(", ".join(s["to"])),
            sender=html.escape(s["from"]),
            at=html.escape(s["received_at"][:19].replace("T", " ")),
            text=html.escape(s["text"]),
        )
        for s in (mail.summary() for mail in reversed(mails))
    )
    return (
        "<!doctype html><html><head><meta charset=utf-8><meta http-equiv=refresh content=3>"
        "<title>Mail catcher</title><style>body{font:15px system-ui,sans-serif;max-width:60em;margin:2em auto}"
        "article{border-top:1px solid #ccc;padding:.5em 0}.meta{color:#555}pre{white-space:pre-wrap}</style></head>"
        f"<body><h1>Mail catcher: {len(mails)} message(s)</h1>"
        f"{rows or '<p>No mail yet. This page refreshes itself.</p>'}</body></html>"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m standins.mail_catcher", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--smtp-port", type=int, default=1025)
    parser.add_argument("--http-port", type=int, default=8025)
    args = parser.parse_args(argv)

    def announce(message: EmailMessage, to: list[str]) -> None:
        print(f"mail to {', '.join(to)}: {message['Subject']}", flush=True)

    catcher = MailCatcher(args.smtp_port, announce, host=args.host, http_port=args.http_port).start()
    print(f"mail catcher: SMTP on {args.host}:{args.smtp_port}, web page on {catcher.http_url}", flush=True)
    return serve_until_stopped(catcher.close)


if __name__ == "__main__":
    sys.exit(main())
