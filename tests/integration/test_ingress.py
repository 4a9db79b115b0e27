"""The ingress over real HTTP against the real broker: what DocSpace sends arrives byte for byte, or gets a non-2xx."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator

import pika
import pytest
import requests

from ingress.app import EndpointLimits, IngressMetrics, create_app
from ingress.replay import RecentEvents
from ingress.settings import WEBHOOK_PATH
from ingress.signature import SignatureVerifier, resend_headers, sign
from shared.broker.connection import connection_parameters
from shared.broker.publisher import Publisher
from shared.runtime.health import HealthServer
from standins.ports import free_port
from tests.fixtures import DOCSPACE_FIXTURES
from tests.support.ingress_process import output, spawn_ingress
from tests.support.real_broker import BrokerKit
from tests.support.tcp_proxy import TcpProxy
from tests.support.wsgi_server import WsgiServer

BODY = (DOCSPACE_FIXTURES / "file.created.json").read_bytes()
SECRET = (DOCSPACE_FIXTURES / "file.created.secret").read_text().strip()
SIGNATURE = (DOCSPACE_FIXTURES / "file.created.sig").read_text().strip()


class RunningIngress:
    """A running ingress: its webhook and internal URLs, its publisher and the probe queue for what it publishes."""

    def __init__(self, url: str, internal: str, publisher: Publisher, probe: str) -> None:
        self.url = url + WEBHOOK_PATH
        self.internal = internal
        self.publisher = publisher
        self.probe = probe

    def post(self, body: bytes, signature: str | None, **headers: str) -> requests.Response:
        if signature is not None:
            headers["x-docspace-signature-256"] = signature
        headers.setdefault("Content-Type", "application/json; charset=utf-8")
        return requests.post(self.url, data=body, headers=headers, timeout=15)


def _start_ingress(broker: BrokerKit, amqp_url: str) -> Iterator[RunningIngress]:
    params = connection_parameters(amqp_url, name="test-ingress", heartbeat=5)
    publisher = Publisher(params, topology=broker.topology, confirm_timeout=3).start()
    assert publisher.wait_connected(10)
    probe = broker.bind_probe(broker.topology.events_exchange)
    metrics = IngressMetrics()
    app = create_app(
        verifier=SignatureVerifier([SECRET]),
        publish=publisher.publish,
        exchange=broker.topology.events_exchange,
        limits=EndpointLimits(confirm_timeout=3, retry_after_seconds=7),
        metrics=metrics,
        # Several tests post the same delivery on purpose: this ingress remembers nothing.
        recent=RecentEvents(0),
    )
    health = HealthServer(0, lambda: publisher.is_connected, host="127.0.0.1", registry=metrics.registry).start()
    try:
        with WsgiServer(app) as server:
            yield RunningIngress(server.url, f"http://127.0.0.1:{health.port}", publisher, probe)
    finally:
        health.stop()
        publisher.stop()


@pytest.fixture
def ingress(broker: BrokerKit) -> Iterator[RunningIngress]:
    yield from _start_ingress(broker, broker.url)


@pytest.fixture
def ingress_behind_proxy(broker: BrokerKit, broker_proxy: TcpProxy) -> Iterator[RunningIngress]:
    yield from _start_ingress(broker, broker_proxy.proxied(broker.url))


def test_real_docspace_delivery_arrives_byte_for_byte(ingress: RunningIngress, broker: BrokerKit) -> None:
    response = ingress.post(BODY, SIGNATURE)
    assert response.status_code == 200, response.text
    properties, body = broker.get(ingress.probe)
    assert body == BODY
    assert properties.delivery_mode == 2
    assert properties.message_id == "138769"
    # The ingress's own content type: the request's header is not covered by the signature.
    assert properties.content_type == "application/json"
    assert properties.timestamp and abs(properties.timestamp - time.time()) < 60
    assert properties.headers["x-docspace-event-id"] == "138769"
    assert properties.headers["x-docspace-trigger"] == "file.created"
    assert properties.headers["x-signature-verified"] is True


def test_it_is_routed_by_its_trigger(ingress: RunningIngress, broker: BrokerKit) -> None:
    only_created = broker.bind_probe(broker.topology.events_exchange, "file.created")
    assert ingress.post(BODY, SIGNATURE).status_code == 200
    assert broker.get(only_created)[1] == BODY


def test_one_changed_byte_is_refused_and_not_published(ingress: RunningIngress, broker: BrokerKit) -> None:
    tampered = BODY.replace(b'"321.xlsx"', b'"322.xlsx"')
    response = ingress.post(tampered, SIGNATURE)
    assert response.status_code == 401
    assert broker.depth(ingress.probe) == 0


def test_lower_case_signature_is_accepted(ingress: RunningIngress, broker: BrokerKit) -> None:
    assert ingress.post(BODY, SIGNATURE.lower()).status_code == 200
    assert broker.get(ingress.probe)[1] == BODY


def test_missing_signature_is_refused(ingress: RunningIngress, broker: BrokerKit) -> None:
    assert ingress.post(BODY, None).status_code == 401
    assert broker.depth(ingress.probe) == 0


def test_two_mebibytes_are_too_large(ingress: RunningIngress, broker: BrokerKit) -> None:
    big = b"{" + b" " * (2 * 1024 * 1024) + b"}"
    response = ingress.post(big, sign(big, SECRET))
    assert response.status_code == 413
    assert broker.depth(ingress.probe) == 0


def test_head_and_get_answer_200(ingress: RunningIngress) -> None:
    assert requests.head(ingress.url, timeout=5).status_code == 200
    assert requests.get(ingress.url, timeout=5).status_code == 200


def test_signed_but_not_json_is_published_as_unknown(ingress: RunningIngress, broker: BrokerKit) -> None:
    unknown = broker.bind_probe(broker.topology.events_exchange, "unknown")
    garbage = b"this is not json \xff"
    assert ingress.post(garbage, sign(garbage, SECRET)).status_code == 200
    assert broker.get(unknown)[1] == garbage


def test_signed_without_trigger_is_published_as_unknown(ingress: RunningIngress, broker: BrokerKit) -> None:
    unknown = broker.bind_probe(broker.topology.events_exchange, "unknown")
    body = b'{"event":{"id":5},"payload":{"id":1}}'
    assert ingress.post(body, sign(body, SECRET)).status_code == 200
    properties, received = broker.get(unknown)
    assert received == body and properties.message_id == "5"


def test_bad_signatures_are_counted(ingress: RunningIngress) -> None:
    ingress.post(BODY, "sha256=00")
    metrics = requests.get(ingress.internal + "/metrics", timeout=5).text
    assert 'ingress_deliveries_total{outcome="bad_signature"} 1.0' in metrics
    assert SECRET not in metrics


def test_broker_down_gives_503_then_recovers_without_restart(
    ingress_behind_proxy: RunningIngress, broker_proxy: TcpProxy, broker: BrokerKit
) -> None:
    ingress = ingress_behind_proxy
    assert ingress.post(BODY, SIGNATURE).status_code == 200

    broker_proxy.down()
    response = ingress.post(BODY, SIGNATURE)
    assert response.status_code == 503
    assert response.headers["Retry-After"] == "7"
    assert requests.get(ingress.internal + "/readyz", timeout=5).status_code == 503

    broker_proxy.up()
    deadline = time.monotonic() + 30
    while ingress.post(BODY, SIGNATURE).status_code != 200:
        assert time.monotonic() < deadline, "the ingress did not reconnect by itself"
        time.sleep(0.5)
    assert requests.get(ingress.internal + "/readyz", timeout=5).status_code == 200
    # Only the deliveries that got a 2xx are in the queue.
    assert [body for _, body in broker.get_all(ingress.probe)] == [BODY, BODY]


def test_cut_connection_is_never_answered_2xx(
    ingress_behind_proxy: RunningIngress, broker_proxy: TcpProxy, broker: BrokerKit
) -> None:
    ingress = ingress_behind_proxy
    statuses = []
    for i in range(40):
        if i == 10:
            broker_proxy.cut()
        statuses.append(ingress.post(BODY, SIGNATURE).status_code)
    assert set(statuses) <= {200, 503}
    assert 503 in statuses or statuses.count(200) == 40
    time.sleep(0.5)
    assert len(broker.get_all(ingress.probe)) >= statuses.count(200)


def test_unroutable_publish_is_not_accepted(broker: BrokerKit) -> None:
    params = connection_parameters(broker.url, name="test-unroutable")
    publisher = Publisher(params, topology=broker.topology).start()
    try:
        assert publisher.wait_connected(10)
        connection = pika.BlockingConnection(pika.URLParameters(broker.url))
        channel = connection.channel()
        lonely = broker.topology.prefix + "lonely"
        channel.exchange_declare(lonely, "topic", auto_delete=True)
        # The fixture is older than any replay window: this ingress does not look at its age.
        app = create_app(
            verifier=SignatureVerifier([SECRET]), publish=publisher.publish, exchange=lonely, recent=RecentEvents(0)
        )
        with WsgiServer(app) as server:
            response = requests.post(
                server.url + WEBHOOK_PATH,
                data=BODY,
                headers={"x-docspace-signature-256": SIGNATURE},
                timeout=10,
            )
        channel.exchange_delete(lonely)
        connection.close()
        assert response.status_code == 503
    finally:
        publisher.stop()


def _run_ingress(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if k != "DOCSPACE_WEBHOOK_SECRET"}
    return subprocess.run(
        [sys.executable, "-m", "ingress", *args],
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=30,
    )


def test_starting_without_a_secret_fails_clearly() -> None:
    result = _run_ingress({"PORT": str(free_port())})
    assert result.returncode == 2
    assert "DOCSPACE_WEBHOOK_SECRET is not set" in result.stderr
    assert "--insecure-skip-signature" in result.stderr


def test_starting_with_a_short_secret_names_it_by_position_never_by_value() -> None:
    result = _run_ingress(
        {"PORT": str(free_port()), "DOCSPACE_WEBHOOK_SECRET": "Long-Enough-Secret-1,abcde,Another-Long-One!"}
    )
    assert result.returncode == 2
    assert "secret #2 of 3 is 5 characters" in result.stderr
    assert "abcde" not in result.stderr and "Long-Enough" not in result.stderr


def test_the_ingress_process_accepts_a_delivery_signed_like_docspace_signs(broker: BrokerKit) -> None:
    # The fixture's own secret (14 characters, from DocSpace's SDK samples) is below the ingress's floor, so the
    # process gets longer ones; the signature is computed exactly as DocSpace does (tests/unit/test_signature.py).
    secret = "Rotated-Webhook-Secret-2027"
    probe = broker.bind_probe(broker.topology.events_exchange)
    # The fixture was created in 2026-09, longer ago than any replay window: this ingress does not look at its age.
    env = {"DOCSPACE_WEBHOOK_SECRET": f"next-Secret-2028-xyz,{secret}", "REPLAY_WINDOW_SECONDS": "0"}
    ingress = spawn_ingress(broker, env)
    try:
        response = requests.post(
            ingress.webhook, data=BODY, headers={"x-docspace-signature-256": sign(BODY, secret)}, timeout=10
        )
        assert response.status_code == 200
        assert broker.get(probe)[1] == BODY
        # The public port serves the webhook only; probes and metrics are on the internal one.
        for path in ("/metrics", "/readyz", "/healthz"):
            assert requests.get(ingress.url + path, timeout=5).status_code == 404
            assert requests.get(ingress.internal + path, timeout=5).status_code == 200
    finally:
        ingress.stop()
    stderr = output(ingress.process)
    assert secret not in stderr and "next-Secret" not in stderr


def test_the_ingress_process_refuses_a_delivery_older_than_its_window_unless_an_operator_resends_it(
    broker: BrokerKit,
) -> None:
    secret = "Rotated-Webhook-Secret-2027"
    probe = broker.bind_probe(broker.topology.events_exchange)
    ingress = spawn_ingress(broker, {"DOCSPACE_WEBHOOK_SECRET": secret})
    try:
        # The fixture's createOn is months old: a replay that a restarted ingress no longer remembers.
        stale = ingress.post(BODY, secret)
        assert stale.status_code == 422 and "stale" in stale.json()["error"]
        assert ingress.metric("ingress_deliveries_total", outcome="stale") == 1
        # A resend stamp with a wrong secret, or an old one, changes nothing.
        forged = resend_headers(BODY, "Not-The-Secret-At-All", time.time())
        assert ingress.post(BODY, secret, headers=forged).status_code == 422
        old_stamp = resend_headers(BODY, secret, time.time() - 7200)
        assert ingress.post(BODY, secret, headers=old_stamp).status_code == 422
        assert broker.get_all(probe) == []
        # The operator's resend (invoice-pipeline send-test-event --file) goes through, byte for byte.
        resent = ingress.post(BODY, secret, headers=resend_headers(BODY, secret, time.time()))
        assert resent.status_code == 200
        assert broker.get(probe)[1] == BODY
        assert ingress.metric("ingress_deliveries_total", outcome="stale") == 3
    finally:
        ingress.stop()
    events = [json.loads(line) for line in output(ingress.process).splitlines() if line.startswith("{")]
    assert [e["reason"] for e in events if e["event"] == "delivery_rejected"] == ["stale"] * 3


def test_insecure_flag_starts_without_a_secret_and_says_so_loudly(broker: BrokerKit) -> None:
    ingress = spawn_ingress(broker, {"REPLAY_WINDOW_SECONDS": "0"}, "--insecure-skip-signature")
    try:
        assert requests.post(ingress.webhook, data=BODY, timeout=10).status_code == 200
    finally:
        ingress.stop()
    lines = [json.loads(line) for line in output(ingress.process).splitlines() if line.startswith("{")]
    assert {"event": "signature_check_disabled", "level": "critical"}.items() <= next(
        line for line in lines if line["event"] == "signature_check_disabled"
    ).items()
