"""Counts the reverse proxy's answers, read from its JSON access log over syslog (UDP), for Prometheus to scrape.

nginx answers some requests itself (429 from its per-client limits, 413, 408) and the ingress never sees them;
this process turns each log line into ``proxy_responses_total{status, limited}`` so an alert can see them.
It keeps no state but the counters: a lost datagram is a line not counted, never a request lost.

    python -m ops.proxy_log_exporter --udp-port 5140 --metrics-port 9113
"""

from __future__ import annotations

import argparse
import json
import logging
import signal
import socket
import threading

from prometheus_client import CollectorRegistry, Counter, start_http_server

log = logging.getLogger("proxy_log_exporter")

# nginx's $limit_req_status / $limit_conn_status say which limit refused a request.
LIMITED = (("limit_req", "rate"), ("limit_conn", "connections"))
MAX_DATAGRAM = 65_535


class ProxyLogCounter:
    """The counters, and the parsing of one syslog datagram of nginx's ``proxy_json`` log format."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.responses = Counter(
            "proxy_responses",
            "Answers of the reverse proxy by HTTP status; limited names the proxy limit that refused it (or no).",
            ["status", "limited"],
            registry=registry,
        )
        self.unparsed = Counter(
            "proxy_log_unparsed_lines", "Datagrams that were not a line of the proxy's log format.", registry=registry
        )
        # Present at 0 from the start, so rates and alerts have a series before the first refusal.
        for _field, limited in LIMITED:
            self.responses.labels(status="429", limited=limited)

    def count(self, datagram: bytes) -> None:
        parsed = parse(datagram)
        if parsed is None:
            self.unparsed.inc()
            return
        self.responses.labels(status=parsed[0], limited=parsed[1]).inc()


def parse(datagram: bytes) -> tuple[str, str] | None:
    """(status, limited) from one line (``<PRI>... nginx: {json}``), or None if it is not one of ours."""
    start = datagram.find(b"{")
    if start < 0:
        return None
    try:
        doc = json.loads(datagram[start:])
    except (ValueError, RecursionError):
        return None
    if not isinstance(doc, dict):
        return None
    status = doc.get("status")
    # A bounded label: three digits only, whatever a line holds.
    if not isinstance(status, str) or len(status) != 3 or not status.isascii() or not status.isdigit():
        return None
    limited = next((name for field, name in LIMITED if doc.get(field) == "REJECTED"), "no")
    return status, limited


def serve(sock: socket.socket, counter: ProxyLogCounter, stop: threading.Event) -> None:
    """Count every datagram arriving on ``sock`` until ``stop`` is set (the socket has a timeout to notice it)."""
    while not stop.is_set():
        try:
            datagram = sock.recv(MAX_DATAGRAM)
        except TimeoutError:
            continue
        counter.count(datagram)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m ops.proxy_log_exporter", description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="0.0.0.0", help="address to listen on (UDP and HTTP)")  # noqa: S104
    parser.add_argument("--udp-port", type=int, default=5140, help="syslog datagrams from nginx")
    parser.add_argument("--metrics-port", type=int, default=9113, help="/metrics for Prometheus")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    registry = CollectorRegistry()
    counter = ProxyLogCounter(registry)
    start_http_server(args.metrics_port, addr=args.host, registry=registry)
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind((args.host, args.udp_port))
    sock.settimeout(1.0)
    log.info("counting the proxy's log from udp %s:%d; /metrics on %d", args.host, args.udp_port, args.metrics_port)
    stop = threading.Event()
    # PID 1 in its container: without a handler SIGTERM is ignored and `docker stop` waits for its timeout.
    signal.signal(signal.SIGTERM, lambda _signum, _frame: stop.set())
    serve(sock, counter, stop)


if __name__ == "__main__":
    main()
