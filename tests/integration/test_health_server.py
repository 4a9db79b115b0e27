"""A consumer process answers /healthz, /readyz and /metrics on METRICS_PORT."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import requests

from shared.runtime.health import HealthServer
from standins.ports import free_port
from tests.support.mail_fixtures import wait_until
from tests.support.real_broker import BrokerKit

ROOT = Path(__file__).parent.parent.parent


def test_readyz_follows_the_readiness_function() -> None:
    ready = False
    server = HealthServer(0, lambda: ready, host="127.0.0.1").start()
    base = f"http://127.0.0.1:{server.port}"
    try:
        assert requests.get(base + "/healthz", timeout=5).json() == {"status": "ok"}
        answer = requests.get(base + "/readyz", timeout=5)
        assert answer.status_code == 503 and answer.json()["reason"] == "not connected to the broker"
        ready = True
        assert requests.get(base + "/readyz", timeout=5).status_code == 200
        assert "python_info" in requests.get(base + "/metrics", timeout=5).text
    finally:
        server.stop()


def test_the_notifier_process_serves_its_probes_and_metrics(broker: BrokerKit, tmp_path: Path) -> None:
    port = free_port()
    env = {
        **os.environ,
        **broker.env(),
        "IDEMPOTENCY_URL": f"sqlite:///{tmp_path / 'idempotency.sqlite3'}",
        "METRICS_PORT": str(port),
        "LOG_FORMAT": "json",
    }
    for name in ("SMTP_HOST", "PIPELINE_URL"):
        env.pop(name, None)
    process = subprocess.Popen(
        [sys.executable, "-m", "consumers.notifier"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:

        def ready() -> bool:
            try:
                return requests.get(base + "/readyz", timeout=1).status_code == 200
            except requests.ConnectionError:
                return False

        assert wait_until(ready, 20), process.communicate()[1] if process.poll() is not None else "not ready"
        assert requests.get(base + "/healthz", timeout=5).json() == {"status": "ok"}
        metrics = requests.get(base + "/metrics", timeout=5).text
        assert "stage_messages_total" in metrics and "stage_handling_seconds" in metrics
    finally:
        process.terminate()
        assert process.wait(15) == 0
