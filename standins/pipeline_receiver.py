"""A stand-in for your processing pipeline: a real HTTP endpoint that checks each call's signature and records it.

``python -m standins.pipeline_receiver --port 8091`` (secret from ``--secret`` or ``PIPELINE_SECRET``) in the
compose demo; ``make run``, the benchmark and the tests use :class:`PipelineReceiver` in process (the tests script
its answers). ``GET /api/calls`` lists the calls
as JSON, ``GET /`` as a page. Never part of the production image.
"""

from __future__ import annotations

import argparse
import contextlib
import hmac
import html
import json
import os
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from consumers.notifier.pipeline import sign_standard_webhook
from standins.serve import serve_until_stopped
from standins.wait import wait_for

MAX_BODY = 1024 * 1024


@dataclass(frozen=True)
class ReceivedCall:
    """One POST: its headers (lower-case names), the raw body, what was answered, and whether the signature held.

    ``valid`` is None when the receiver has no secret to check against.
    """

    path: str
    headers: Mapping[str, str]
    body: bytes
    valid: bool | None
    received_at: datetime
    status: int = 202
    method: str = "POST"

    def summary(self) -> dict[str, Any]:
        try:
            body: Any = json.loads(self.body)
        except ValueError:
            body = self.body.decode("utf-8", "replace")
        return {
            "path": self.path,
            "webhook_id": self.headers.get("webhook-id"),
            "idempotency_key": self.headers.get("idempotency-key"),
            "valid_signature": self.valid,
            "status": self.status,
            "received_at": self.received_at.isoformat(),
            "body": body,
        }


@dataclass
class _ScriptedResponse:
    status: int
    remaining: int | None  # None: until ``until`` passes
    until: float | None  # time.monotonic() deadline
    retry_after: str | None
    body: bytes
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0


class PipelineReceiver:
    """Answers 202 to each call, 401 when ``secret`` is given and the call is not signed with it; keeps them all.

    Tests script it: ``respond_with(500, count=2)`` answers 500 to the next two calls; ``respond_with(503,
    for_seconds=1.5, retry_after=1)`` answers 503 with ``Retry-After: 1`` for 1.5 s; ``delay=`` holds the answer
    back (to make a client time out). Scripts are used in the order they were added. ``stop`` then ``start``
    is an outage: the same port again.
    """

    def __init__(
        self,
        port: int = 0,
        secret: str | None = None,
        on_call: Callable[[ReceivedCall], None] | None = None,
        *,
        host: str = "127.0.0.1",
        path: str = "/pipeline",
    ) -> None:
        self.host, self.port, self.path = host, port, path
        self._secret = secret
        self._on_call = on_call
        self._calls: list[ReceivedCall] = []
        self._script: list[_ScriptedResponse] = []
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}{self.path}"

    @property
    def calls(self) -> list[ReceivedCall]:
        with self._lock:
            return list(self._calls)

    def count(self) -> int:
        with self._lock:
            return len(self._calls)

    def per_invoice(self) -> Counter[str]:
        """How many accepted (2xx) calls each invoice got (``webhook-id``)."""
        return Counter(c.headers.get("webhook-id") or "?" for c in self.calls if c.status < 300)

    def start(self) -> PipelineReceiver:
        """Listen (after ``stop``: on the same port again)."""
        self._stopping.clear()
        server = ThreadingHTTPServer((self.host, self.port), _handler(self))
        server.daemon_threads = True
        self.port = int(server.server_port)
        self._server = server
        # A short poll interval keeps stop() (every teardown, every simulated outage) fast.
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.05}, name="pipeline-receiver", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def wait_for(self, count: int, timeout: float = 5.0) -> list[ReceivedCall]:
        """The calls once there are ``count``; ``AssertionError`` if they do not come within ``timeout``."""
        return wait_for(self.count, lambda: self.calls, count, timeout, "request(s)")

    def respond_with(
        self,
        status: int,
        *,
        count: int | None = 1,
        for_seconds: float | None = None,
        retry_after: float | str | None = None,
        body: bytes | str = b"",
        headers: Mapping[str, str] | None = None,
        delay: float = 0.0,
    ) -> None:
        """Answer ``status`` to the next ``count`` calls, or to every call for ``for_seconds``."""
        if for_seconds is not None:
            count = None
        elif count is None or count < 1:
            raise ValueError("give count >= 1 or for_seconds")
        if isinstance(body, str):
            body = body.encode("utf-8")
        if isinstance(retry_after, float) and retry_after.is_integer():
            retry_after = int(retry_after)
        with self._lock:
            self._script.append(
                _ScriptedResponse(
                    status=status,
                    remaining=count,
                    until=None if for_seconds is None else time.monotonic() + for_seconds,
                    retry_after=None if retry_after is None else str(retry_after),
                    body=body,
                    headers=dict(headers or {}),
                    delay=delay,
                )
            )

    def verify(self, headers: Mapping[str, str], body: bytes) -> bool | None:
        """Whether the Standard Webhooks signature holds; None without a secret."""
        if self._secret is None:
            return None
        try:
            timestamp = int(headers.get("webhook-timestamp", ""))
        except ValueError:
            return False
        expected = sign_standard_webhook(self._secret, headers.get("webhook-id", ""), timestamp, body)
        return any(hmac.compare_digest(expected, sig) for sig in headers.get("webhook-signature", "").split())

    def _next_response(self) -> _ScriptedResponse | None:
        now = time.monotonic()
        with self._lock:
            while self._script:
                head = self._script[0]
                if head.remaining is not None and head.remaining > 0:
                    head.remaining -= 1
                    return head
                if head.until is not None and now < head.until:
                    return head
                self._script.pop(0)
        return None

    def _record(self, call: ReceivedCall) -> None:
        with self._lock:
            self._calls.append(call)
        if self._on_call is not None:
            self._on_call(call)


def _handler(receiver: PipelineReceiver) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, as the notifier's session uses it

        def do_POST(self) -> None:
            try:
                length = int(self.headers.get("Content-Length") or 0)
            except ValueError:
                length = -1
            if not 0 <= length <= MAX_BODY:
                self.close_connection = True  # the body was not read
                self._send(413 if length > MAX_BODY else 400, "text/plain", b"bad length\n")
                return
            body = self.rfile.read(length) if length else b""
            headers = {k.lower(): v for k, v in self.headers.items()}
            valid = receiver.verify(headers, body)
            scripted = None if valid is False else receiver._next_response()
            status = 401 if valid is False else 202 if scripted is None else scripted.status
            receiver._record(ReceivedCall(self.path, headers, body, valid, datetime.now(UTC), status))
            if scripted is None:
                self._send(status, "application/json", b'{"status":"accepted"}' if status == 202 else b"")
                return
            if scripted.delay and receiver._stopping.wait(scripted.delay):
                return
            extra = dict(scripted.headers)
            if scripted.retry_after is not None:
                extra["Retry-After"] = scripted.retry_after
            self._send(status, "application/json", scripted.body, extra)

        def do_HEAD(self) -> None:
            # `invoice-pipeline doctor` checks the pipeline URL with HEAD.
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def do_GET(self) -> None:
            calls = [call.summary() for call in receiver.calls]
            if self.path == "/api/calls":
                self._send(200, "application/json", json.dumps(calls).encode())
            elif self.path == "/":
                self._send(200, "text/html; charset=utf-8", _page(calls).encode("utf-8"))
            else:
                self._send(404, "text/plain", b"not found\n")

        def _send(self, status: int, content_type: str, body: bytes, headers: Mapping[str, str] | None = None) -> None:
            with contextlib.suppress(OSError):  # the client may have given up already
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                for name, value in (headers or {}).items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            pass  # each call is announced through on_call

    return Handler


def _page(calls: list[dict[str, Any]]) -> str:
    rows = "".join(
        f"<tr><td>{html.escape(c['received_at'][:19].replace('T', ' '))}</td>"
        f"<td>{html.escape(str(c['webhook_id']))}</td><td>{_verdict(c['valid_signature'])}</td>"
        f"<td><pre>{html.escape(json.dumps(c['body'], indent=1))}</pre></td></tr>"
        for c in reversed(calls)
    )
    return (
        "<!doctype html><html><head><meta charset=utf-8><meta http-equiv=refresh content=3>"
        "<title>Pipeline receiver</title><style>body{font:15px system-ui,sans-serif;margin:2em}"
        "td{vertical-align:top;border-top:1px solid #ccc;padding:.3em}</style></head>"
        f"<body><h1>Pipeline receiver: {len(calls)} call(s)</h1><table>"
        "<tr><th>received</th><th>webhook-id</th><th>signature</th><th>body</th></tr>"
        f"{rows}</table></body></html>"
    )


def _verdict(valid: bool | None) -> str:
    return "not checked" if valid is None else "ok" if valid else "BAD"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m standins.pipeline_receiver", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8091)
    parser.add_argument("--secret", default=os.environ.get("PIPELINE_SECRET"), help="default: $PIPELINE_SECRET")
    args = parser.parse_args(argv)
    if not args.secret:
        parser.error("--secret (or PIPELINE_SECRET) is required: the calls are checked against it")

    def announce(call: ReceivedCall) -> None:
        verdict = "signature ok" if call.valid else "BAD signature"
        print(f"pipeline call {call.headers.get('webhook-id')}: {verdict}", flush=True)

    receiver = PipelineReceiver(args.port, args.secret, announce, host=args.host).start()
    print(f"pipeline receiver: POST {receiver.url}, calls listed on http://{args.host}:{receiver.port}/", flush=True)
    return serve_until_stopped(receiver.stop)


if __name__ == "__main__":
    sys.exit(main())
