"""The DocSpace client under hostile input: ids that would change a URL, and pauses that would never end.

Against real HTTP servers: the simulator (which counts every call it receives) and, for answers the simulator
cannot give (``X-RateLimit-Reset: inf``), a small endpoint scripted here.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from consumers.mover.handler import move_invoice
from shared.docspace.admin import PortalAdmin
from shared.docspace.client import DocSpaceClient
from shared.docspace.errors import DocSpaceUnavailable, InvalidDocSpaceId
from shared.docspace.transport import HttpOptions
from shared.limits.rate_limit import KeyLimits, RateLimiter
from shared.store.sqlite_store import SqliteStore
from simulator import DocSpaceSimulator
from tests.support.fakes import RecordingEmitter
from tests.support.message_builders import invoice_detected

HOSTILE_IDS = [".", "..", "../settings", "a/b", "a\\b", "a?x=1", "a#b", "%2e%2e", "a\r\nb", "a\x00b", "x" * 513, "²"]

CALLS: dict[str, Callable[[DocSpaceClient, str], Any]] = {
    "get_file": lambda c, i: c.get_file(i),
    "find_room": lambda c, i: c.find_room(i),
    "find_or_create_folder": lambda c, i: c.find_or_create_folder(i, "Incoming"),
    "move_file (file)": lambda c, i: c.move_file(i, "7"),
    "move_file (folder)": lambda c, i: c.move_file("7", i),
    "folder_title": lambda c, i: c.folder_title(i),
    "find_subfolder": lambda c, i: c.find_subfolder(i, "Incoming"),
    "webhook_deliveries": lambda c, i: PortalAdmin(c.transport).webhook_deliveries(i),
}


@pytest.mark.parametrize("bad_id", HOSTILE_IDS)
@pytest.mark.parametrize("call", CALLS)
def test_an_id_that_would_change_the_url_is_refused_before_any_request(
    docspace_sim: DocSpaceSimulator, docspace_client: DocSpaceClient, call: str, bad_id: str
) -> None:
    docspace_sim.reset_calls()
    with pytest.raises(InvalidDocSpaceId) as info:
        CALLS[call](docspace_client, bad_id)
    assert info.value.reason == "invalid_message"
    assert docspace_sim.call_counts() == {}


def test_the_mover_dead_letters_an_invoice_whose_file_id_is_no_id(
    docspace_sim: DocSpaceSimulator, docspace_client: DocSpaceClient, tmp_path: Any
) -> None:
    store = SqliteStore(str(tmp_path / "idempotency.sqlite3"), ttl_seconds=60)
    docspace_sim.reset_calls()
    try:
        with pytest.raises(InvalidDocSpaceId) as info:
            move_invoice(invoice_detected(file_id=".."), files=docspace_client, emit=RecordingEmitter(), store=store)
    finally:
        store.close()
    assert info.value.reason == "invalid_message"  # a PermanentError: the consumer dead-letters it at once
    assert docspace_sim.call_counts() == {}


class RateLimitedEndpoint:
    """Answers the first request 429 with ``headers``, then a file: what a portal behind a hostile proxy might do."""

    def __init__(self, headers: dict[str, str]) -> None:
        self.requests = 0
        endpoint = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: object) -> None:
                pass

            def do_GET(self) -> None:
                endpoint.requests += 1
                if endpoint.requests == 1:
                    self.send_response(429)
                    for name, value in headers.items():
                        self.send_header(name, value)
                    body = b""
                else:
                    self.send_response(200)
                    body = json.dumps({"response": {"id": 5, "title": "Invoice.pdf", "folderId": 7}}).encode()
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        threading.Thread(target=self._server.serve_forever, args=(0.05,), daemon=True).start()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


@pytest.fixture
def endpoint(request: pytest.FixtureRequest) -> Iterator[RateLimitedEndpoint]:
    server = RateLimitedEndpoint(request.param)
    yield server
    server.close()


@pytest.mark.parametrize(
    "endpoint",
    [
        {"X-RateLimit-Reset": "inf"},
        {"X-RateLimit-Reset": "nan"},
        {"X-RateLimit-Reset": "-5"},
        {"X-RateLimit-Reset": "1e308"},
        {"X-RateLimit-Reset": str(10**12)},  # an epoch time 30,000 years ahead
        {"Retry-After": "Fri, 31 Dec 9999 23:59:59 GMT"},
        {"Retry-After": "99999999999999999999"},
        {"Retry-After": "inf", "X-RateLimit-Reset": "inf"},
    ],
    indirect=True,
    ids=lambda headers: ",".join(f"{k}={v[:20]}" for k, v in headers.items()),
)
def test_a_429_with_an_endless_or_junk_pause_holds_the_process_back_at_most_the_cap(
    endpoint: RateLimitedEndpoint,
) -> None:
    limiter = RateLimiter(KeyLimits(600, 4, max_wait=5.0, max_pause=0.5))
    client = DocSpaceClient(endpoint.url, "sk-test", http=HttpOptions(timeout=(2, 2), max_pause=0.5), limiter=limiter)
    started = time.monotonic()
    try:
        try:
            info = client.get_file(5)  # 429 waited out here (at most the cap), then the file ...
        except DocSpaceUnavailable as exc:  # ... or junk, taken as a 429 without a hint: the ladder decides
            assert exc.retry_after is None or exc.retry_after <= 0.5
            info = client.get_file(5)  # the whole process held back one second, not forever
    finally:
        client.close()
    assert info.title == "Invoice.pdf" and endpoint.requests == 2
    assert time.monotonic() - started < 3.0


def test_a_429_pause_beyond_the_client_retry_budget_is_capped_for_the_retry_ladder() -> None:
    server = RateLimitedEndpoint({"X-RateLimit-Reset": str(10**12)})
    client = DocSpaceClient(
        server.url, "sk-test", http=HttpOptions(timeout=(2, 2), max_pause=300, rate_limit_retries=0)
    )
    try:
        with pytest.raises(DocSpaceUnavailable) as info:
            client.get_file(5)
    finally:
        client.close()
        server.close()
    assert info.value.retry_after == 300
