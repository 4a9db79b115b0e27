"""Real SMTP (aiosmtpd) and HTTP (http.server) servers in the test process: recording, scriptable to fail."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from email import message_from_bytes
from email.message import EmailMessage
from email.policy import default as default_policy
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session

HOST = "127.0.0.1"


def free_port() -> int:
    """A port nothing listens on right now (for "connection refused" tests and fixed-port servers)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


def wait_until(predicate: Callable[[], bool], timeout: float = 5.0, interval: float = 0.02) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return predicate()


# ----------------------------------------------------------------------------------------------------
# SMTP


@dataclass(frozen=True)
class ReceivedMail:
    """One message the SMTP server accepted."""

    mail_from: str
    rcpt_tos: tuple[str, ...]
    message: EmailMessage
    raw: bytes
    authenticated_as: str | None


@dataclass
class _ScriptedFailure:
    remaining: int
    code: int
    text: str
    stage: str


class _RecordingHandler:
    """aiosmtpd handler hooks; all state lives on the owning server so it survives a restart."""

    def __init__(self, server: SmtpTestServer) -> None:
        self._server = server

    async def handle_MAIL(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, mail_options: list[str]
    ) -> str:
        if failure := self._server._take_failure("MAIL"):
            return failure
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 OK"

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, rcpt_options: list[str]
    ) -> str:
        if failure := self._server._take_failure("RCPT"):
            return failure
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        if failure := self._server._take_failure("DATA"):
            return failure
        raw = envelope.original_content or b""
        parsed = message_from_bytes(raw, policy=default_policy)
        assert isinstance(parsed, EmailMessage)
        auth = session.auth_data
        who = auth.login.decode("utf-8", "replace") if isinstance(auth, LoginPassword) else None
        self._server._record(
            ReceivedMail(
                mail_from=envelope.mail_from or "",
                rcpt_tos=tuple(envelope.rcpt_tos),
                message=parsed,
                raw=raw,
                authenticated_as=who,
            )
        )
        return "250 Message accepted for delivery"


class SmtpTestServer:
    """A real SMTP server on 127.0.0.1 that records what it accepts.

    Script it with ``fail_next(n, code, text, stage=...)``; simulate an outage with ``stop()`` / ``start()``
    (same port). With ``auth=(user, password)`` it offers AUTH LOGIN/PLAIN without TLS and records who logged
    in (``ReceivedMail.authenticated_as``); ``auth_required=True`` also refuses mail without AUTH (530), at
    the price of aiosmtpd's "AUTH without TLS" UserWarning.
    """

    def __init__(
        self, *, auth: tuple[str, str] | None = None, auth_required: bool = False, port: int | None = None
    ) -> None:
        self.host = HOST
        self.port = port or free_port()
        self.auth = auth
        self.auth_required = auth_required
        self._lock = threading.Lock()
        self._messages: list[ReceivedMail] = []
        self._failures: list[_ScriptedFailure] = []
        self._failed_logins = 0
        self._controller: Controller | None = None

    # -- lifecycle
    def start(self) -> None:
        if self._controller is not None:
            return
        kwargs: dict[str, Any] = {"enable_SMTPUTF8": True}
        if self.auth is not None:
            # Plain AUTH without TLS is only acceptable because this server never leaves 127.0.0.1.
            kwargs.update(authenticator=self._authenticate, auth_required=self.auth_required, auth_require_tls=False)
        controller = Controller(_RecordingHandler(self), hostname=self.host, port=self.port, **kwargs)
        controller.start()
        self._controller = controller

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None

    def restart(self) -> None:
        self.stop()
        self.start()

    @property
    def running(self) -> bool:
        return self._controller is not None

    # -- scripting
    def fail_next(self, count: int = 1, code: int = 451, text: str | None = None, *, stage: str = "DATA") -> None:
        """Answer ``code text`` at ``stage`` (``MAIL``, ``RCPT``, ``DATA``) to the next ``count`` messages."""
        if stage not in {"MAIL", "RCPT", "DATA"}:
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

    # -- recording
    def _record(self, mail: ReceivedMail) -> None:
        with self._lock:
            self._messages.append(mail)

    @property
    def messages(self) -> list[ReceivedMail]:
        with self._lock:
            return list(self._messages)

    @property
    def failed_logins(self) -> int:
        with self._lock:
            return self._failed_logins

    def wait_for(self, count: int, timeout: float = 5.0) -> list[ReceivedMail]:
        if not wait_until(lambda: len(self.messages) >= count, timeout):
            raise AssertionError(f"expected {count} message(s), got {len(self.messages)}")
        return self.messages

    def clear(self) -> None:
        with self._lock:
            self._messages.clear()
            self._failures.clear()

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


@pytest.fixture
def smtp_server_factory() -> Iterator[Callable[..., SmtpTestServer]]:
    """Build SMTP servers (``auth=(user, password)``, ``auth_required=``, ``port=``), stopped at teardown."""
    servers: list[SmtpTestServer] = []

    def make(
        *, auth: tuple[str, str] | None = None, auth_required: bool = False, port: int | None = None
    ) -> SmtpTestServer:
        server = SmtpTestServer(auth=auth, auth_required=auth_required, port=port)
        server.start()
        servers.append(server)
        return server

    yield make
    for server in servers:
        server.stop()


@pytest.fixture
def smtp_server(smtp_server_factory: Callable[..., SmtpTestServer]) -> SmtpTestServer:
    """A running SMTP server without AUTH or STARTTLS."""
    return smtp_server_factory()


# ----------------------------------------------------------------------------------------------------
# HTTP pipeline receiver


@dataclass(frozen=True)
class RecordedRequest:
    """One request the pipeline receiver got; ``headers`` keys are lower-case."""

    method: str
    path: str
    headers: Mapping[str, str]
    body: bytes
    received_at: float
    status: int = 202  # what the receiver answered


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
    """A real HTTP server on 127.0.0.1 that records every request and answers 202 unless scripted otherwise.

    ``respond_with(500, count=2)`` answers 500 to the next two requests; ``respond_with(503, for_seconds=1.5,
    retry_after=1)`` answers 503 with ``Retry-After: 1`` for 1.5 s; ``delay=`` holds the answer back (to make
    a client time out). Scripts are used in the order they were added.
    """

    path = "/hooks/invoice-received"

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._requests: list[RecordedRequest] = []
        self._script: list[_ScriptedResponse] = []
        self._stopping = threading.Event()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self.port = 0

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}{self.path}"

    def start(self) -> None:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                scripted = receiver._next_response()
                receiver._record(
                    RecordedRequest(
                        method="POST",
                        path=self.path,
                        headers={k.lower(): v for k, v in self.headers.items()},
                        body=body,
                        received_at=time.time(),
                        status=202 if scripted is None else scripted.status,
                    )
                )
                self._answer(scripted)

            def _answer(self, scripted: _ScriptedResponse | None) -> None:
                if scripted is None:
                    status, body, headers = 202, b'{"status":"accepted"}', {}
                else:
                    if scripted.delay and receiver._stopping.wait(scripted.delay):
                        return
                    status, body, headers = scripted.status, scripted.body, dict(scripted.headers)
                    if scripted.retry_after is not None:
                        headers["Retry-After"] = scripted.retry_after
                with contextlib.suppress(OSError):  # the client may have given up already
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(body)))
                    for name, value in headers.items():
                        self.send_header(name, value)
                    self.end_headers()
                    self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass  # keep pytest output for the assertions

        self._stopping.clear()
        server = ThreadingHTTPServer((HOST, self.port), Handler)
        server.daemon_threads = True
        self.port = int(server.server_address[1])
        self._server = server
        # A short poll interval keeps stop() (every teardown, every simulated outage) fast.
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.05}, name="pipeline-receiver", daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        self._stopping.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

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
        """Answer ``status`` to the next ``count`` requests, or to every request for ``for_seconds``."""
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

    def _record(self, request: RecordedRequest) -> None:
        with self._lock:
            self._requests.append(request)

    @property
    def requests(self) -> list[RecordedRequest]:
        with self._lock:
            return list(self._requests)

    def wait_for(self, count: int, timeout: float = 5.0) -> list[RecordedRequest]:
        if not wait_until(lambda: len(self.requests) >= count, timeout):
            raise AssertionError(f"expected {count} request(s), got {len(self.requests)}")
        return self.requests


@pytest.fixture
def pipeline_receiver() -> Iterator[PipelineReceiver]:
    """A running pipeline receiver; ``.url`` is where to POST."""
    receiver = PipelineReceiver()
    receiver.start()
    yield receiver
    receiver.stop()
