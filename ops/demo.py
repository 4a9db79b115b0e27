"""The local stand-ins ``make run`` uses when no portal is configured: a mail catcher and a pipeline receiver.

They are real servers (SMTP on loopback, HTTP on loopback) so the pipeline runs exactly as in production;
they only print what they receive instead of passing it on.
"""

from __future__ import annotations

import hmac
import threading
from collections.abc import Callable
from email import message_from_bytes, policy
from email.message import EmailMessage
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from aiosmtpd.controller import Controller

from consumers.notifier.pipeline import sign_standard_webhook


class MailCatcher:
    """An SMTP server on 127.0.0.1 that keeps every message it accepts."""

    def __init__(self, port: int, on_mail: Callable[[EmailMessage, list[str]], None]) -> None:
        self.messages: list[EmailMessage] = []
        catcher = self

        class Handler:
            async def handle_DATA(self, _server: Any, _session: Any, envelope: Any) -> str:
                message = message_from_bytes(envelope.content, policy=policy.default)
                assert isinstance(message, EmailMessage)
                catcher.messages.append(message)
                on_mail(message, list(envelope.rcpt_tos))
                return "250 OK"

        self._controller = Controller(Handler(), hostname="127.0.0.1", port=port)
        self.host, self.port = "127.0.0.1", port

    def start(self) -> MailCatcher:
        self._controller.start()
        return self

    def stop(self) -> None:
        self._controller.stop()


class PipelineReceiver:
    """An HTTP endpoint that checks the Standard Webhooks signature of each pipeline call and keeps the call."""

    def __init__(self, port: int, secret: str, on_call: Callable[[dict[str, str], bytes, bool], None]) -> None:
        self.calls: list[tuple[dict[str, str], bytes]] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                headers = {k.lower(): v for k, v in self.headers.items()}
                expected = sign_standard_webhook(
                    secret, headers.get("webhook-id", ""), int(headers.get("webhook-timestamp", "0") or 0), body
                )
                valid = any(hmac.compare_digest(expected, sig) for sig in headers.get("webhook-signature", "").split())
                receiver.calls.append((headers, body))
                on_call(headers, body, valid)
                self.send_response(202 if valid else 401)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: object) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.url = f"http://127.0.0.1:{port}/pipeline"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def start(self) -> PipelineReceiver:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
