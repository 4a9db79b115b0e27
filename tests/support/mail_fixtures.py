"""Fixtures for the outside world the notifier talks to: the demo's stand-ins (``standins/``), started per test."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

import pytest

from standins.mail.catcher import MailCatcher
from standins.pipeline_receiver import PipelineReceiver

__all__ = ["MailCatcher", "PipelineReceiver", "wait_until"]

HOST = "127.0.0.1"
PIPELINE_PATH = "/hooks/invoice-received"


def wait_until(predicate: Callable[[], bool], timeout: float = 5.0, interval: float = 0.02) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return predicate()


@pytest.fixture
def smtp_server_factory() -> Iterator[Callable[..., MailCatcher]]:
    """Build SMTP servers (``auth=(user, password)``, ``auth_required=``, ``port=``), stopped at teardown."""
    servers: list[MailCatcher] = []

    def make(
        *, auth: tuple[str, str] | None = None, auth_required: bool = False, port: int | None = None
    ) -> MailCatcher:
        server = MailCatcher(port, host=HOST, auth=auth, auth_required=auth_required).start()
        servers.append(server)
        return server

    yield make
    for server in servers:
        server.close()


@pytest.fixture
def smtp_server(smtp_server_factory: Callable[..., MailCatcher]) -> MailCatcher:
    """A running SMTP server without AUTH or STARTTLS."""
    return smtp_server_factory()


@pytest.fixture
def pipeline_receiver() -> Iterator[PipelineReceiver]:
    """A running pipeline receiver that checks no signature (the tests check them); ``.url`` is where to POST."""
    receiver = PipelineReceiver(host=HOST, path=PIPELINE_PATH).start()
    yield receiver
    receiver.stop()
