"""The mail catcher's web side: a page and a JSON API that list the caught mails."""

from __future__ import annotations

import html
import json
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from standins.mail.caught import CaughtMail


def http_server(
    mails: Callable[[], list[CaughtMail]], clear: Callable[[], None], host: str, port: int
) -> ThreadingHTTPServer:
    """``/`` the page, ``/api/messages`` the JSON list (DELETE empties it)."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path == "/api/messages":
                self._send(200, "application/json", json.dumps([m.summary() for m in mails()]).encode())
            elif self.path == "/":
                self._send(200, "text/html; charset=utf-8", _page(mails()).encode("utf-8"))
            else:
                self._send(404, "text/plain", b"not found\n")

        def do_DELETE(self) -> None:
            if self.path != "/api/messages":
                self._send(404, "text/plain", b"not found\n")
                return
            clear()
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
