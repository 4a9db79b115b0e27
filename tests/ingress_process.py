"""Starts the real ingress process for a test, on the test's own topology prefix and a free port."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import threading
import time

import requests

from tests.broker import BrokerKit

OUTPUT: dict[int, list[str]] = {}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def spawn_ingress(
    broker: BrokerKit, env: dict[str, str], *args: str, amqp_url: str | None = None, port: int | None = None
) -> tuple[subprocess.Popen[str], str]:
    """Start ``python -m ingress`` on this test's topology; return the process once /readyz answers 200."""
    port = port or free_port()
    clean = {k: v for k, v in os.environ.items() if k != "DOCSPACE_WEBHOOK_SECRET"}
    process = subprocess.Popen(
        [sys.executable, "-m", "ingress", *args],
        env={
            **clean,
            "PORT": str(port),
            "HOST": "127.0.0.1",
            "AMQP_URL": amqp_url or broker.url,
            "TOPOLOGY_PREFIX": broker.topology.prefix,
            "RETRY_DELAYS": ",".join(str(d) for d in broker.topology.retry_delays),
            "DELIVERY_LIMIT": str(broker.topology.delivery_limit),
            "LOG_FORMAT": "json",
            "SPOOL_DIR": tempfile.mkdtemp(prefix="ingress-spool-"),
            **env,
        },
        stderr=subprocess.PIPE,
        text=True,
    )
    # Read stderr as it comes, so a chatty process never blocks on a full pipe; tests read ``output(process)``.
    lines: list[str] = []
    OUTPUT[process.pid] = lines
    threading.Thread(target=lambda: lines.extend(process.stderr or []), daemon=True).start()
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            if requests.get(url + "/readyz", timeout=1).status_code == 200:
                return process, url
        except requests.ConnectionError:
            time.sleep(0.1)
    process.kill()
    process.wait()
    raise AssertionError(f"ingress did not become ready: {output(process)}")


def output(process: subprocess.Popen[str]) -> str:
    """Everything the process wrote to stderr so far (all of it once it has exited)."""
    if process.poll() is not None:
        time.sleep(0.2)  # let the reader thread catch the last lines
    return "".join(OUTPUT.get(process.pid, []))
