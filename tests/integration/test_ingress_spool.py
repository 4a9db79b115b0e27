"""The ingress keeps deliveries while the broker is away longer than DocSpace retries, and loses none on a crash."""

from __future__ import annotations

import json
import signal
import time
from pathlib import Path

import requests

from ingress.settings import WEBHOOK_PATH
from ingress.signature import sign
from tests.broker import BrokerKit
from tests.ingress_process import output, spawn_ingress
from tests.tcp_proxy import TcpProxy

SECRET = "spool-Test-Secret!9"


def _delivery(n: int) -> bytes:
    document = {
        "event": {"id": n, "createOn": "2026-11-28T10:00:00Z", "trigger": "file.uploaded", "triggerId": 256},
        "payload": {"id": 5000 + n, "parentId": 7, "rootId": 18902, "title": f"Invoice-{n}.pdf", "fileEntryType": 2},
        "webhook": {"id": 1, "name": "x", "url": "https://h/docspace/webhook", "triggers": ["*"]},
    }
    return json.dumps(document, separators=(",", ":")).encode()


def _post(url: str, body: bytes) -> requests.Response:
    return requests.post(
        url + WEBHOOK_PATH, data=body, headers={"x-docspace-signature-256": sign(body, SECRET)}, timeout=15
    )


def test_deliveries_during_an_outage_are_spooled_then_drained_in_order_once(
    broker: BrokerKit, broker_proxy: TcpProxy, tmp_path: Path
) -> None:
    probe = broker.bind_probe(broker.topology.events_exchange)
    env = {"DOCSPACE_WEBHOOK_SECRET": SECRET, "SPOOL_DIR": str(tmp_path / "spool"), "CONFIRM_TIMEOUT": "2"}
    process, url = spawn_ingress(broker, env, amqp_url=broker_proxy.proxied(broker.url))
    try:
        assert _post(url, _delivery(0)).status_code == 200
        broker_proxy.down()
        statuses = [_post(url, _delivery(n)).status_code for n in range(1, 21)]
        # Every delivery during the outage is on disk before the answer: 202, never a 503, never lost.
        assert statuses == [202] * 20
        assert requests.get(url + "/readyz", timeout=5).status_code == 200
        metrics = requests.get(url + "/metrics", timeout=5).text
        assert "ingress_spool_depth 20.0" in metrics
        broker_proxy.up()
        deadline = time.monotonic() + 30
        while "ingress_spool_depth 0.0" not in requests.get(url + "/metrics", timeout=5).text:
            assert time.monotonic() < deadline, output(process)
            time.sleep(0.2)
        assert _post(url, _delivery(21)).status_code == 200
        time.sleep(0.3)
        bodies = [body for _, body in broker.get_all(probe)]
        assert bodies == [_delivery(n) for n in range(22)]
    finally:
        process.terminate()
        process.wait(10)


def test_a_crashed_ingress_drains_its_spool_after_restart(
    broker: BrokerKit, broker_proxy: TcpProxy, tmp_path: Path
) -> None:
    probe = broker.bind_probe(broker.topology.events_exchange)
    env = {"DOCSPACE_WEBHOOK_SECRET": SECRET, "SPOOL_DIR": str(tmp_path / "spool"), "CONFIRM_TIMEOUT": "2"}
    process, url = spawn_ingress(broker, env, amqp_url=broker_proxy.proxied(broker.url))
    broker_proxy.down()
    assert [_post(url, _delivery(n)).status_code for n in range(5)] == [202] * 5
    process.send_signal(signal.SIGKILL)
    process.wait(10)
    broker_proxy.up()

    restarted, _ = spawn_ingress(broker, env)
    try:
        deadline = time.monotonic() + 30
        received: list[bytes] = []
        while len(received) < 5:
            assert time.monotonic() < deadline, output(restarted)
            received += [body for _, body in broker.get_all(probe)]
            time.sleep(0.2)
        time.sleep(0.5)
        received += [body for _, body in broker.get_all(probe)]
        assert received == [_delivery(n) for n in range(5)]
    finally:
        restarted.terminate()
        restarted.wait(10)


def test_a_full_spool_answers_503(broker: BrokerKit, broker_proxy: TcpProxy, tmp_path: Path) -> None:
    env = {
        "DOCSPACE_WEBHOOK_SECRET": SECRET,
        "SPOOL_DIR": str(tmp_path / "spool"),
        "SPOOL_MAX_BYTES": str(1024 * 1024),
        "CONFIRM_TIMEOUT": "1",
    }
    process, url = spawn_ingress(broker, env, amqp_url=broker_proxy.proxied(broker.url))
    try:
        broker_proxy.down()
        big = b'{"event":{"id":1,"trigger":"file.uploaded"},"pad":"' + b"x" * 700_000 + b'"}'
        assert _post(url, big).status_code == 202
        refused = _post(url, big)
        assert refused.status_code == 503 and refused.headers["Retry-After"]
    finally:
        process.terminate()
        process.wait(10)
