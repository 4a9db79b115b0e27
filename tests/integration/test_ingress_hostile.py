"""The real ingress process against hostile and unlucky input: each way in of issue 11, then the next ordinary
delivery must still reach the broker within a second; and slow clients that hold every connection."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator

import pytest
import requests

from ops.test_event import sample_delivery
from tests.support.ingress_process import IngressProcess, output, spawn_ingress
from tests.support.real_broker import BrokerKit

SECRET = "hostile-Test-Secret!42"


@pytest.fixture
def ingress(broker: BrokerKit) -> Iterator[IngressProcess]:
    running = spawn_ingress(broker, {"DOCSPACE_WEBHOOK_SECRET": SECRET, "CONFIRM_TIMEOUT": "2"})
    yield running
    running.stop()


LONG_CONTENT_TYPE = {"Content-Type": "application/json; charset=utf-8; x=" + "y" * 280}
WAYS_IN: dict[str, tuple[bytes, dict[str, str]]] = {
    "Content-Type of 300 bytes": (sample_delivery(event_id=101), LONG_CONTENT_TYPE),
    "event.id of 5,000 digits": (sample_delivery(event_id="7" * 5000), {}),
    "trigger of 100 multi-byte characters": (sample_delivery(event_id=102, trigger="ж" * 100), {}),
    "retryCount of 2**63": (sample_delivery(event_id=103, webhook={"id": 1, "retryCount": 2**63}), {}),
    "retryCount of 2**64 - 1": (sample_delivery(event_id=104, webhook={"id": 1, "retryCount": 2**64 - 1}), {}),
    **{
        f"webhook.{field} {label}": (sample_delivery(event_id=f"{field}-{label}", webhook={"id": 1, field: value}), {})
        for field in ("id", "retryCount")
        for label, value in (("'²'", "²"), ("'--5'", "--5"), ("of 5,000 digits", "5" * 5000))
    },
}


def test_no_way_in_stops_intake(ingress: IngressProcess, broker: BrokerKit) -> None:
    probe = broker.bind_probe(broker.topology.events_exchange)
    for n, (case, (body, headers)) in enumerate(WAYS_IN.items()):
        response = ingress.post(body, SECRET, headers=headers)
        assert response.status_code == 200, f"{case}: {response.status_code} {response.text}"
        properties, received = broker.get(probe, timeout=2)
        assert received == body, case
        assert properties.content_type == "application/json", case

        ordinary = sample_delivery(event_id=9000 + n)
        started = time.monotonic()
        assert ingress.post(ordinary, SECRET).status_code == 200, case
        assert broker.get(probe, timeout=1.0)[1] == ordinary, case
        assert time.monotonic() - started < 1.0, case
        assert ingress.ready() == 200, case
    # A replay of a signed delivery, with a hostile header this time: answered, not published again.
    body, _ = WAYS_IN["Content-Type of 300 bytes"]
    replay = ingress.post(body, SECRET, headers=LONG_CONTENT_TYPE)
    assert replay.status_code == 200 and replay.json()["status"] == "replayed"
    assert broker.depth(probe) == 0
    assert ingress.metric("ingress_deliveries_total", outcome="replayed") == 1
    assert ingress.metric("ingress_deliveries_total", outcome="accepted") == 2 * len(WAYS_IN)
    assert "Traceback" not in output(ingress.process)


def test_the_webhook_recovers_once_slow_clients_stop(broker: BrokerKit) -> None:
    limit = 4
    ingress = spawn_ingress(
        broker, {"DOCSPACE_WEBHOOK_SECRET": SECRET, "INGRESS_CONNECTION_LIMIT": str(limit), "INGRESS_THREADS": "4"}
    )
    stop = threading.Event()
    port = int(ingress.url.rsplit(":", 1)[1])

    def slow_client() -> None:
        # A request dribbled out one byte every 2 s: waitress keeps the connection, never times it out.
        with socket.create_connection(("127.0.0.1", port)) as sock:
            request = b"POST /docspace/webhook HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n" + b"{" * 1000
            for byte in request:
                if stop.wait(2):
                    return
                sock.sendall(bytes([byte]))

    clients = [threading.Thread(target=slow_client, daemon=True) for _ in range(limit + 1)]
    try:
        for client in clients:
            client.start()
        time.sleep(3)
        body = sample_delivery(event_id=1)
        # While they hold every connection, a delivery waits (the reverse proxy in front is what stops this)...
        with pytest.raises(requests.Timeout):
            ingress.post(body, SECRET, timeout=2)
        # ...but the internal port still answers the orchestrator's probes at once.
        started = time.monotonic()
        assert ingress.ready() == 200 and time.monotonic() - started < 1.0

        stop.set()
        for client in clients:
            client.join(5)
        started = time.monotonic()
        response = ingress.post(sample_delivery(event_id=2), SECRET, timeout=5)
        assert response.status_code == 200 and time.monotonic() - started < 1.0
    finally:
        stop.set()
        ingress.stop()
