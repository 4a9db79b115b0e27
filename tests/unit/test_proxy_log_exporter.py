"""The proxy's log exporter counts nginx's answers by status and by the limit that refused them, over real UDP."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator

import pytest
from prometheus_client import CollectorRegistry

from ops.proxy_log_exporter import ProxyLogCounter, parse, serve


def _line(status: str, limit_req: str = "", limit_conn: str = "") -> bytes:
    doc = {"client": "203.0.113.7", "status": status, "limit_req": limit_req, "limit_conn": limit_conn, "bytes": 0}
    return b"<190>Dec  6 04:00:00 nginx: " + json.dumps(doc).encode()


@pytest.fixture
def exporter() -> Iterator[tuple[socket.socket, CollectorRegistry]]:
    registry = CollectorRegistry()
    counter = ProxyLogCounter(registry)
    server = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    server.bind(("127.0.0.1", 0))
    server.settimeout(0.1)
    stop = threading.Event()
    thread = threading.Thread(target=serve, args=(server, counter, stop), daemon=True)
    thread.start()
    client = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    client.connect(server.getsockname())
    try:
        yield client, registry
    finally:
        stop.set()
        thread.join(5)
        client.close()
        server.close()


def _value(registry: CollectorRegistry, name: str, labels: dict[str, str] | None = None) -> float:
    return registry.get_sample_value(name, labels) or 0.0


def _wait_for(registry: CollectorRegistry, name: str, labels: dict[str, str] | None, value: float) -> None:
    deadline = time.monotonic() + 5
    while _value(registry, name, labels) != value and time.monotonic() < deadline:
        time.sleep(0.01)
    assert _value(registry, name, labels) == value


def test_refusals_by_the_rate_and_the_connection_limit_are_counted_apart_from_other_answers(exporter) -> None:
    client, registry = exporter
    lines = [_line("429", limit_req="REJECTED")] * 3 + [_line("429", limit_conn="REJECTED"), _line("200", "PASSED")]
    for line in lines:
        client.send(line)
    _wait_for(registry, "proxy_responses_total", {"status": "200", "limited": "no"}, 1)
    assert _value(registry, "proxy_responses_total", {"status": "429", "limited": "rate"}) == 3
    assert _value(registry, "proxy_responses_total", {"status": "429", "limited": "connections"}) == 1


def test_the_refusal_series_exist_at_zero_before_the_first_refusal() -> None:
    registry = CollectorRegistry()
    ProxyLogCounter(registry)
    assert registry.get_sample_value("proxy_responses_total", {"status": "429", "limited": "rate"}) == 0.0
    assert registry.get_sample_value("proxy_responses_total", {"status": "429", "limited": "connections"}) == 0.0


def test_a_datagram_that_is_not_a_log_line_is_counted_as_unparsed_and_adds_no_label(exporter) -> None:
    client, registry = exporter
    for junk in (b"hello", b"<13>x: {not json", b'<13>x: {"status": "<script>"}', b'<13>x: ["429"]', b"[" * 10_000):
        client.send(junk)
    _wait_for(registry, "proxy_log_unparsed_lines_total", None, 5)
    statuses = {s.labels["status"] for m in registry.collect() for s in m.samples if "status" in s.labels}
    assert statuses == {"429"}


def test_parse_reads_the_fields_of_nginx_proxy_json_format() -> None:
    assert parse(_line("413")) == ("413", "no")
    assert parse(_line("429", limit_req="REJECTED")) == ("429", "rate")
    assert parse(_line("503", limit_req="PASSED", limit_conn="PASSED")) == ("503", "no")
