"""The ingress keeps deliveries while the broker is away longer than DocSpace retries, and loses none on a crash."""

from __future__ import annotations

import json
import resource
import signal
import time
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import requests

from ingress.spool import Spool
from ops.test_event import sample_delivery
from shared.core.outgoing import OutgoingMessage
from tests.support.ingress_process import IngressProcess, output, spawn_ingress
from tests.support.real_broker import BrokerKit
from tests.support.tcp_proxy import TcpProxy

SECRET = "spool-Test-Secret!9"
# Fixed for the run, so every delivery's bytes can be compared; recent, or the ingress would refuse them as stale.
CREATED_ON = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _delivery(n: int) -> bytes:
    return sample_delivery(file_id=5000 + n, folder_id=7, title=f"Invoice-{n}.pdf", event_id=n, created_on=CREATED_ON)


def _spool_env(tmp_path: Path, confirm_timeout: str = "2", **more: str) -> dict[str, str]:
    """A signed ingress spooling to ``tmp_path``, giving up on a confirm after ``confirm_timeout`` seconds."""
    return {
        "DOCSPACE_WEBHOOK_SECRET": SECRET,
        "SPOOL_DIR": str(tmp_path / "spool"),
        "CONFIRM_TIMEOUT": confirm_timeout,
        **more,
    }


def _behind_proxy(broker: BrokerKit, proxy: TcpProxy, env: dict[str, str]) -> IngressProcess:
    """An ingress that reaches the broker only through ``proxy``, so the test can cut it off."""
    return spawn_ingress(broker, env, amqp_url=proxy.proxied(broker.url))


def _post(ingress: IngressProcess, body: bytes) -> requests.Response:
    return ingress.post(body, SECRET)


def test_deliveries_during_an_outage_are_spooled_then_drained_in_order_once(
    broker: BrokerKit, broker_proxy: TcpProxy, tmp_path: Path
) -> None:
    probe = broker.bind_probe(broker.topology.events_exchange)
    ingress = _behind_proxy(broker, broker_proxy, _spool_env(tmp_path))
    try:
        assert _post(ingress, _delivery(0)).status_code == 200
        broker_proxy.down()
        statuses = [_post(ingress, _delivery(n)).status_code for n in range(1, 21)]
        # Every delivery during the outage is on disk before the answer: 202, never a 503, never lost.
        assert statuses == [202] * 20
        assert ingress.ready() == 200
        assert ingress.metric("ingress_spool_depth") == 20
        broker_proxy.up()
        deadline = time.monotonic() + 30
        while ingress.metric("ingress_spool_depth") != 0:
            assert time.monotonic() < deadline, output(ingress.process)
            time.sleep(0.2)
        assert _post(ingress, _delivery(21)).status_code == 200
        time.sleep(0.3)
        bodies = [body for _, body in broker.get_all(probe)]
        assert bodies == [_delivery(n) for n in range(22)]
    finally:
        ingress.stop()


def test_a_crashed_ingress_drains_its_spool_after_restart(
    broker: BrokerKit, broker_proxy: TcpProxy, tmp_path: Path
) -> None:
    probe = broker.bind_probe(broker.topology.events_exchange)
    env = _spool_env(tmp_path)
    ingress = _behind_proxy(broker, broker_proxy, env)
    broker_proxy.down()
    assert [_post(ingress, _delivery(n)).status_code for n in range(5)] == [202] * 5
    ingress.process.send_signal(signal.SIGKILL)
    ingress.process.wait(10)
    broker_proxy.up()

    restarted = spawn_ingress(broker, env)
    try:
        deadline = time.monotonic() + 30
        received: list[bytes] = []
        while len(received) < 5:
            assert time.monotonic() < deadline, output(restarted.process)
            received += [body for _, body in broker.get_all(probe)]
            time.sleep(0.2)
        time.sleep(0.5)
        received += [body for _, body in broker.get_all(probe)]
        assert received == [_delivery(n) for n in range(5)]
    finally:
        restarted.stop()


def test_a_full_spool_answers_503(broker: BrokerKit, broker_proxy: TcpProxy, tmp_path: Path) -> None:
    ingress = _behind_proxy(broker, broker_proxy, _spool_env(tmp_path, "1", SPOOL_MAX_BYTES=str(1024 * 1024)))
    try:
        broker_proxy.down()
        big = b'{"event":{"id":1,"trigger":"file.uploaded"},"pad":"' + b"x" * 700_000 + b'"}'
        assert _post(ingress, big).status_code == 202
        bigger = b'{"event":{"id":2,"trigger":"file.uploaded"},"pad":"' + b"x" * 700_000 + b'"}'
        refused = _post(ingress, bigger)
        assert refused.status_code == 503 and refused.headers["Retry-After"]
    finally:
        ingress.stop()


def _limit_file_size(ingress: IngressProcess, limit: int) -> None:
    """What a full disk does to the spool: a write past ``limit`` bytes fails (EFBIG; Python ignores SIGXFSZ)."""
    resource.prlimit(ingress.process.pid, resource.RLIMIT_FSIZE, (limit, resource.RLIM_INFINITY))


def test_a_full_disk_answers_503_and_never_costs_a_delivery_answered_202(
    broker: BrokerKit, broker_proxy: TcpProxy, tmp_path: Path
) -> None:
    probe = broker.bind_probe(broker.topology.events_exchange)
    spool_file = tmp_path / "spool" / "deliveries.spool"
    ingress = _behind_proxy(broker, broker_proxy, _spool_env(tmp_path, "1"))
    try:
        broker_proxy.down()
        statuses: dict[int, int] = {}
        for n in range(1, 7):
            if n in (2, 4):
                # The disk fills up half-way through this delivery's frame.
                frame = spool_file.stat().st_size // len([s for s in statuses.values() if s == 202])
                _limit_file_size(ingress, spool_file.stat().st_size + frame // 2)
            else:
                _limit_file_size(ingress, resource.RLIM_INFINITY)
            answer = _post(ingress, _delivery(n))
            statuses[n] = answer.status_code
            if answer.status_code == 503:
                assert answer.headers["Retry-After"], answer.headers
        assert statuses == {1: 202, 2: 503, 3: 202, 4: 503, 5: 202, 6: 202}
        broker_proxy.up()
        _wait_drained(ingress, timeout=30)
        time.sleep(0.3)
        received = [body for _, body in broker.get_all(probe)]
        # Each delivery answered 202 is published once, in order (a 503 one DocSpace sends again anyway).
        accepted = [_delivery(n) for n, status in statuses.items() if status == 202]
        assert [body for body in received if body in accepted] == accepted, output(ingress.process)
        assert ingress.metric("ingress_spool_quarantined_total") == 0
        assert ingress.metric("ingress_deliveries_total", outcome="broker_unavailable") == 2
    finally:
        ingress.stop()


def _spooled(n: int, **headers: object) -> OutgoingMessage:
    return OutgoingMessage(
        exchange="docspace.events",
        routing_key="file.uploaded",
        body=_delivery(n),
        message_id=str(n),
        headers={"x-docspace-event-id": str(n), **headers},
    )


def _wait_drained(ingress: IngressProcess, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while ingress.metric("ingress_spool_depth") != 0:
        assert time.monotonic() < deadline, output(ingress.process)
        time.sleep(0.1)


def _next_delivery_arrives_within_a_second(ingress: IngressProcess, broker: BrokerKit, probe: str, n: int) -> None:
    started = time.monotonic()
    assert _post(ingress, _delivery(n)).status_code == 200
    assert broker.get(probe, timeout=1.0)[1] == _delivery(n)
    assert time.monotonic() - started < 1.0


def test_records_that_cannot_be_published_are_quarantined_and_the_rest_drain(broker: BrokerKit, tmp_path: Path) -> None:
    spool_dir = tmp_path / "spool"
    spool = Spool(spool_dir, max_bytes=1024 * 1024)
    # As a spool left by an older version, or written by hand, might hold them.
    spool.append(_spooled(1))
    spool.append(_spooled(2, CC="not-a-list"))  # the broker refuses it (406) every time
    spool.append(_spooled(3, **{"x-count": 2**70}))  # pika cannot encode it
    spool.append(replace(_spooled(4), content_type="application/json; x=" + "y" * 300, message_id="4" * 5000))
    spool.append(_spooled(5))
    spool.close()

    probe = broker.bind_probe(broker.topology.events_exchange)
    ingress = spawn_ingress(broker, {"DOCSPACE_WEBHOOK_SECRET": SECRET, "SPOOL_DIR": str(spool_dir)})
    try:
        _wait_drained(ingress)
        # Record 4's overlong fields are fitted, not a reason to hold back the invoice it announces.
        assert [body for _, body in broker.get_all(probe)] == [_delivery(1), _delivery(4), _delivery(5)]
        assert ingress.metric("ingress_spool_quarantined_total", reason="refused") == 1
        assert ingress.metric("ingress_spool_quarantined_total", reason="unpublishable") == 1
        bodies = sorted(path.read_bytes() for path in (spool_dir / "quarantine").glob("*.delivery"))
        assert bodies == [_delivery(2), _delivery(3)]
        _next_delivery_arrives_within_a_second(ingress, broker, probe, 6)
    finally:
        ingress.stop()
    logged = [json.loads(line) for line in output(ingress.process).splitlines() if line.startswith("{")]
    assert {line["event_id"] for line in logged if line["event"] == "spool_record_quarantined"} == {"2", "3"}


def test_a_damaged_spool_file_and_checkpoint_are_reported_and_the_good_records_published(
    broker: BrokerKit, tmp_path: Path
) -> None:
    spool_dir = tmp_path / "spool"
    spool = Spool(spool_dir, max_bytes=1024 * 1024)
    for n in range(1, 4):
        spool.append(_spooled(n))
    spool.close()
    data = (spool_dir / "deliveries.spool").read_bytes()
    second = data.index(b'{"exchange":', 20) - 12
    # Bits flipped inside record 2, then a checkpoint that points nowhere.
    (spool_dir / "deliveries.spool").write_bytes(data[: second + 40] + b"\xff" * 8 + data[second + 48 :])
    (spool_dir / "deliveries.checkpoint").write_text("garbage")

    probe = broker.bind_probe(broker.topology.events_exchange)
    ingress = spawn_ingress(broker, {"DOCSPACE_WEBHOOK_SECRET": SECRET, "SPOOL_DIR": str(spool_dir)})
    try:
        _wait_drained(ingress)
        assert [body for _, body in broker.get_all(probe)] == [_delivery(1), _delivery(3)]
        assert ingress.metric("ingress_spool_quarantined_total", reason="damaged") == 1
        _next_delivery_arrives_within_a_second(ingress, broker, probe, 4)
    finally:
        ingress.stop()
    events = {json.loads(line)["event"] for line in output(ingress.process).splitlines() if line.startswith("{")}
    assert {"spool_checkpoint_damaged", "spool_damaged"} <= events
