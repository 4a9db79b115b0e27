"""A thread the ingress cannot work without dies: /readyz turns 503 at once and the process exits non-zero."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import requests
from prometheus_client import CollectorRegistry

from ingress.__main__ import EXIT_THREAD_DIED, EXIT_TOPOLOGY, Lifeline, readiness
from ingress.spool import Spool
from ingress.spool_drainer import SpoolStuck
from shared.broker.connection import connection_parameters
from shared.broker.publisher import Publisher
from shared.core.outgoing import OutgoingMessage
from shared.runtime.health import HealthServer
from tests.support.ingress_process import IngressProcess, output, spawn_ingress
from tests.support.real_broker import BrokerKit
from tests.support.tcp_proxy import TcpProxy

SECRET = "lifeline-Test-Secret!4"


def _swap_a_queue_for_one_with_other_arguments(broker: BrokerKit) -> None:
    with broker.connect() as connection:
        channel = connection.channel()
        clash = broker.topology.stage("classifier").work
        channel.queue_delete(clash)
        channel.queue_declare(clash, durable=True)  # a classic queue where a quorum queue belongs


def _until(condition: Callable[[], bool], timeout: float, explain: Callable[[], str] = str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, explain()
        time.sleep(0.02)


@pytest.fixture
def lifeline_publisher(broker: BrokerKit, broker_proxy: TcpProxy) -> Iterator[tuple[Lifeline, list[str], Publisher]]:
    stops: list[str] = []
    lifeline = Lifeline(lambda: stops.append("stop"))
    publisher = Publisher(
        connection_parameters(broker_proxy.proxied(broker.url), name="test-lifeline"),
        topology=broker.topology,
        on_death=lambda exc: lifeline.thread_died("publisher", exc),
    ).start()
    assert publisher.wait_connected(10)
    yield lifeline, stops, publisher
    publisher.stop()


Readyz = Callable[[Lifeline, Publisher, Spool | None], Callable[[], int]]


@pytest.fixture
def readyz() -> Iterator[Readyz]:
    """Serve the ingress's readiness on a real health server; return how to ask its /readyz."""
    servers: list[HealthServer] = []

    def serve(lifeline: Lifeline, publisher: Publisher, spool: Spool | None) -> Callable[[], int]:
        health = HealthServer(0, readiness(lifeline, publisher, spool), host="127.0.0.1", registry=CollectorRegistry())
        servers.append(health.start())
        return lambda: requests.get(f"http://127.0.0.1:{health.port}/readyz", timeout=5).status_code

    yield serve
    for health in servers:
        health.stop()


def test_a_publisher_that_dies_on_reconnect_turns_readyz_503_at_once_and_asks_for_exit_3(
    broker: BrokerKit,
    broker_proxy: TcpProxy,
    lifeline_publisher: tuple[Lifeline, list[str], Publisher],
    readyz: Readyz,
    tmp_path: Path,
) -> None:
    lifeline, stops, publisher = lifeline_publisher
    spool = Spool(tmp_path, max_bytes=1024 * 1024)  # room to spare: the spool alone must not make it ready
    ready = readyz(lifeline, publisher, spool)
    assert ready() == 200

    _swap_a_queue_for_one_with_other_arguments(broker)
    broker_proxy.cut()  # the reconnect declares the topology again, and the broker refuses it
    _until(lambda: bool(stops), timeout=10, explain=lambda: "the publisher's death went unheard")
    assert ready() == 503
    assert lifeline.exit_code == EXIT_TOPOLOGY
    lifeline.thread_died("spool drainer", SpoolStuck("later"))  # a second death changes nothing
    assert stops == ["stop"] and lifeline.exit_code == EXIT_TOPOLOGY


def test_a_drainer_that_dies_turns_readyz_503_at_once_and_asks_for_exit_1(
    lifeline_publisher: tuple[Lifeline, list[str], Publisher], readyz: Readyz, tmp_path: Path
) -> None:
    lifeline, stops, publisher = lifeline_publisher
    ready = readyz(lifeline, publisher, Spool(tmp_path, max_bytes=1024 * 1024))
    assert ready() == 200
    lifeline.thread_died("spool drainer", SpoolStuck("the quarantine cannot be written"))
    assert ready() == 503 and publisher.is_connected  # not ready, though the broker is fine
    assert stops == ["stop"] and lifeline.exit_code == EXIT_THREAD_DIED


def _exit_events(ingress: IngressProcess, code: int, *, timeout: float) -> list[str]:
    """Wait for the ingress to exit with ``code`` (killed if it does not); the events it logged."""
    try:
        assert ingress.process.wait(timeout) == code, output(ingress.process)
    finally:
        if ingress.process.poll() is None:
            ingress.process.kill()
    return [json.loads(line)["event"] for line in output(ingress.process).splitlines() if line.startswith("{")]


def test_the_ingress_exits_3_when_its_publisher_meets_a_changed_topology_on_reconnect(
    broker: BrokerKit, broker_proxy: TcpProxy
) -> None:
    ingress = spawn_ingress(broker, {"DOCSPACE_WEBHOOK_SECRET": SECRET}, amqp_url=broker_proxy.proxied(broker.url))
    _swap_a_queue_for_one_with_other_arguments(broker)
    broker_proxy.cut()
    events = _exit_events(ingress, EXIT_TOPOLOGY, timeout=15)
    assert "topology_mismatch" in events and "ingress_stopping" in events


def test_the_ingress_exits_1_when_its_spool_drainer_dies(broker: BrokerKit, tmp_path: Path) -> None:
    spool_dir = tmp_path / "spool"
    spool = Spool(spool_dir, max_bytes=1024 * 1024)
    # pika cannot encode it, so it must be quarantined; the quarantine cannot be written.
    spool.append(OutgoingMessage(exchange="docspace.events", routing_key="k", body=b"{}", headers={"x": 2**70}))
    spool.close()
    spool.quarantine_dir.write_text("a file where the quarantine folder belongs")

    ingress = spawn_ingress(broker, {"DOCSPACE_WEBHOOK_SECRET": SECRET, "SPOOL_DIR": str(spool_dir)})
    events = _exit_events(ingress, EXIT_THREAD_DIED, timeout=20)
    assert "spool_drainer_died" in events and "ingress_stopping" in events
    kept = Spool(spool_dir, max_bytes=1024 * 1024).peek()
    assert kept is not None and kept.message.body == b"{}"  # the record is still there, for the restart
