"""Pytest fixtures for the DocSpace simulator: a started simulator, a client on it, a webhook receiver."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from shared.docspace.client import DocSpaceClient
from shared.docspace.transport import HttpOptions
from simulator import DocSpaceSimulator
from tests.support.loopback_http import LoopbackServer, QuietHandler

# Webhook retries at 1/2/4/8/16 s would make each test half a minute long; same shape, shrunk.
FAST_RETRY_DELAYS = (0.05, 0.1, 0.2, 0.4, 0.8)


@pytest.fixture
def docspace_sim() -> Iterator[DocSpaceSimulator]:
    """A started simulator on a free loopback port (fast moves, fast webhook retries), stopped after the test."""
    sim = DocSpaceSimulator(move_delay=0.03, retry_delays=FAST_RETRY_DELAYS, seed=1234).start()
    try:
        yield sim
    finally:
        sim.stop()


@pytest.fixture
def docspace_client(docspace_sim: DocSpaceSimulator) -> Iterator[DocSpaceClient]:
    """A ``DocSpaceClient`` on the simulator, with quick polling and a short move deadline."""
    client = DocSpaceClient(
        docspace_sim.base_url,
        docspace_sim.api_key,
        http=HttpOptions(timeout=(2.0, 5.0)),
        move_deadline=3.0,
        poll_interval=0.02,
        poll_max_interval=0.2,
    )
    try:
        yield client
    finally:
        client.close()


@dataclass
class ReceivedRequest:
    """One request a ``WebhookReceiver`` got."""

    method: str
    path: str
    headers: dict[str, str]
    body: bytes


class WebhookReceiver(LoopbackServer):
    """A real HTTP endpoint that records what it receives and answers with scripted status codes."""

    def __init__(self) -> None:
        self.requests: list[ReceivedRequest] = []
        self.head_status = 200
        self._script: list[int] = []
        self.default_status = 200
        self._cond = threading.Condition()
        receiver = self

        class Handler(QuietHandler):
            def _record(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                with receiver._cond:
                    receiver.requests.append(
                        ReceivedRequest(self.command, self.path, {k.lower(): v for k, v in self.headers.items()}, body)
                    )
                    receiver._cond.notify_all()

            def do_HEAD(self) -> None:
                self._record()
                self.send_response(receiver.head_status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def do_POST(self) -> None:
                self._record()
                with receiver._cond:
                    status = receiver._script.pop(0) if receiver._script else receiver.default_status
                payload = b"ok" if status < 300 else b"nope"
                self.send_response(status)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

        super().__init__(Handler)
        self.url = f"{self.url}/docspace/webhook"

    def script(self, *statuses: int) -> None:
        """Answer the next POSTs with these statuses, then ``default_status``."""
        with self._cond:
            self._script.extend(statuses)

    def posts(self) -> list[ReceivedRequest]:
        with self._cond:
            return [r for r in self.requests if r.method == "POST"]

    def wait_for_posts(self, n: int, timeout: float = 10.0) -> list[ReceivedRequest]:
        end = time.monotonic() + timeout
        with self._cond:
            while sum(r.method == "POST" for r in self.requests) < n:
                remaining = end - time.monotonic()
                if remaining <= 0:
                    break
                self._cond.wait(remaining)
        return self.posts()


@pytest.fixture
def webhook_receiver() -> Iterator[WebhookReceiver]:
    """A recording webhook endpoint (HEAD answers ``head_status``; POSTs follow ``script(...)``)."""
    receiver = WebhookReceiver()
    try:
        yield receiver
    finally:
        receiver.close()


WATCHED_ROOM_SECRET = "Watched-Room-Secret!1"


@dataclass(frozen=True)
class WatchedRoom:
    """A room in the simulated portal whose new files DocSpace's webhook sends, signed, to a test receiver."""

    sim: DocSpaceSimulator
    receiver: WebhookReceiver
    room: str
    secret: str = WATCHED_ROOM_SECRET


@pytest.fixture
def watched_room(docspace_sim: DocSpaceSimulator, webhook_receiver: WebhookReceiver) -> WatchedRoom:
    room = docspace_sim.create_room("Acme Ltd")
    docspace_sim.register_webhook(webhook_receiver.url, WATCHED_ROOM_SECRET, triggers=["file.created", "file.uploaded"])
    return WatchedRoom(docspace_sim, webhook_receiver, room)
