"""A stand-in for your processing pipeline: a real HTTP endpoint that checks each call's signature and records it.

``python -m standins.pipeline_receiver --port 8091`` (secret from ``--secret`` or ``PIPELINE_SECRET``) in the
compose demo; ``make run`` and tests use :class:`PipelineReceiver` in process. ``GET /api/calls`` lists the calls
as JSON, ``GET /`` as a page. Never part of the production image.
"""

from __future__ import annotations

import argparse
import hmac
import html
import json
import os
import signal
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from consumers.notifier.pipeline import sign_standard_webhook

MAX_BODY = 1024 * 1024


@dataclass(frozen=True)
class ReceivedCall:
    """One POST: its headers (lower-case names), the raw body, and whether the signature held."""

    path: str
    headers: dict[str, str]
    body: bytes
    valid: bool
    received_at: datetime

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
            "received_at": self.received_at.isoformat(),
            "body": body,
        }


class PipelineReceiver:
    """Answers 202 to a call signed with ``secret`` (Standard Webhooks) and 401 to any other; keeps them all."""

    def __init__(
        self,
        port: int,
        secret: str,
        on_call: Callable[[ReceivedCall], None] | None = None,
        *,
        host: str = "127.0.0.1",
    ) -> None:
        self._secret = secret
        self._on_call = on_call
        self._calls: list[ReceivedCall] = []
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer((host, port), _handler(self))
        self.host, self.port = host, int(self._server.server_port)
        self._thread = threading.Thread(target=self._server.serve_forever, name="pipeline-receiver", daemon=True)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}/pipeline"

    @property
    def calls(self) -> list[ReceivedCall]:
        with self._lock:
            return list(self._calls)

    def start(self) -> PipelineReceiver:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def verify(self, headers: dict[str, str], body: bytes) -> bool:
        try:
            timestamp = int(headers.get("webhook-timestamp", ""))
        except ValueError:
            return False
        expected = sign_standard_webhook(self._secret, headers.get("webhook-id", ""), timestamp, body)
        return any(hmac.compare_digest(expected, sig) for sig in headers.get("webhook-signature", "").split())

    def _record(self, call: ReceivedCall) -> None:
        with self._lock:
            self._calls.append(call)
        if self._on_call is not None:
            self._on_call(call)


def _handler(receiver: PipelineReceiver) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            try:
                length = int(self.headers.get("Content-Length") or 0)
            except ValueError:
                length = -1
            if not 0 <= length <= MAX_BODY:
                self._send(413 if length > MAX_BODY else 400, "text/plain", b"bad length\n")
                return
            body = self.rfile.read(length)
            headers = {k.lower(): v for k, v in self.headers.items()}
            valid = receiver.verify(headers, body)
            receiver._record(ReceivedCall(self.path, headers, body, valid, datetime.now(UTC)))
            self._send(202 if valid else 401, "text/plain", b"")

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

        def _send(self, status: int, content_type: str, body: bytes) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            pass  # each call is announced through on_call

    return Handler


def _page(calls: list[dict[str, Any]]) -> str:
    rows = "".join(
        f"<tr><td>{html.escape(c['received_at'][:19].replace('T', ' '))}</td>"
        f"<td>{html.escape(str(c['webhook_id']))}</td><td>{'ok' if c['valid_signature'] else 'BAD'}</td>"
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
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        stop.wait()
    except KeyboardInterrupt:
        pass
    finally:
        receiver.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
