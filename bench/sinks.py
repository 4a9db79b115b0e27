"""What the pipeline delivers to: a counting SMTP server and a counting processing-pipeline receiver."""

from __future__ import annotations

import re
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from aiosmtpd.controller import Controller

_INVOICE_HEADER = re.compile(rb"^X-Invoice-Id:\s*(\S+)", re.MULTILINE | re.IGNORECASE)


class MailSink:
    """A real SMTP server on 127.0.0.1 that counts notices per invoice (``X-Invoice-Id``) and when they came."""

    def __init__(self, port: int) -> None:
        self.host, self.port = "127.0.0.1", port
        self.per_invoice: Counter[str] = Counter()
        self.arrivals: list[float] = []
        self.first_at: dict[str, float] = {}  # invoice id -> wall-clock time its first notice arrived
        self._lock = threading.Lock()
        sink = self

        class Handler:
            async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
                match = _INVOICE_HEADER.search(envelope.original_content or envelope.content or b"")
                invoice = match.group(1).decode() if match else "?"
                with sink._lock:
                    sink.per_invoice[invoice] += 1
                    sink.arrivals.append(time.monotonic())
                    sink.first_at.setdefault(invoice, time.time())
                return "250 OK"

        self._controller = Controller(Handler(), hostname=self.host, port=port, enable_SMTPUTF8=True)
        self._controller.start()

    def count(self) -> int:
        with self._lock:
            return len(self.arrivals)

    def stop(self) -> None:
        self._controller.stop()


class PipelineSink:
    """A real HTTP endpoint that answers 200 and counts calls per invoice (the ``webhook-id`` header)."""

    def __init__(self) -> None:
        self.per_invoice: Counter[str] = Counter()
        self._lock = threading.Lock()
        sink = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                with sink._lock:
                    sink.per_invoice[self.headers.get("webhook-id") or "?"] += 1
                self.send_response(200)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, format: str, *args: object) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}/invoices"
        threading.Thread(target=self._server.serve_forever, args=(0.1,), daemon=True).start()

    def count(self) -> int:
        with self._lock:
            return sum(self.per_invoice.values())

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
