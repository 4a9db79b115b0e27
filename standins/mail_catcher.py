"""A mail catcher: a real SMTP server that keeps every message, with a web page and a JSON API that list them.

``python -m standins.mail_catcher --smtp-port 1025 --http-port 8025`` (the compose demo, ``make run``); tests and
the demo also use :class:`MailCatcher` in process. Never part of the production image.
"""

from __future__ import annotations

import argparse
import html
import json
import signal
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from email import message_from_bytes, policy
from email.message import EmailMessage
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from aiosmtpd.controller import Controller


@dataclass(frozen=True)
class CaughtMail:
    """One message the SMTP server accepted, with its envelope."""

    mail_from: str
    rcpt_tos: tuple[str, ...]
    message: EmailMessage
    received_at: datetime

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


class MailCatcher:
    """SMTP on ``smtp_port``; with ``http_port``, a page (``/``) and JSON (``/api/messages``) listing the mails."""

    def __init__(
        self,
        smtp_port: int,
        on_mail: Callable[[EmailMessage, list[str]], None] | None = None,
        *,
        host: str = "127.0.0.1",
        http_port: int | None = None,
    ) -> None:
        self.host, self.port = host, smtp_port
        self._mails: list[CaughtMail] = []
        self._lock = threading.Lock()
        self._on_mail = on_mail
        self._controller = Controller(_SmtpHandler(self), hostname=host, port=smtp_port)
        self._http = _http_server(self, host, http_port) if http_port is not None else None

    @property
    def mails(self) -> list[CaughtMail]:
        with self._lock:
            return list(self._mails)

    @property
    def messages(self) -> list[EmailMessage]:
        return [mail.message for mail in self.mails]

    @property
    def http_url(self) -> str | None:
        if self._http is None:
            return None
        return f"http://{self.host}:{self._http.server_port}"

    def start(self) -> MailCatcher:
        self._controller.start()
        if self._http is not None:
            threading.Thread(target=self._http.serve_forever, name="mail-catcher-http", daemon=True).start()
        return self

    def stop(self) -> None:
        self._controller.stop()
        if self._http is not None:
            self._http.shutdown()
            self._http.server_close()

    def clear(self) -> None:
        with self._lock:
            self._mails.clear()

    def _keep(self, mail_from: str, rcpt_tos: list[str], content: bytes) -> None:
        message = message_from_bytes(content, policy=policy.default)
        assert isinstance(message, EmailMessage)  # the default policy builds EmailMessage
        with self._lock:
            self._mails.append(CaughtMail(mail_from, tuple(rcpt_tos), message, datetime.now(UTC)))
        if self._on_mail is not None:
            self._on_mail(message, rcpt_tos)


class _SmtpHandler:
    def __init__(self, catcher: MailCatcher) -> None:
        self._catcher = catcher

    async def handle_DATA(self, _server: Any, _session: Any, envelope: Any) -> str:
        self._catcher._keep(str(envelope.mail_from), list(envelope.rcpt_tos), bytes(envelope.content))
        return "250 OK"


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
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        stop.wait()
    except KeyboardInterrupt:
        pass
    finally:
        catcher.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
