"""Starts the real ingress process for a test, on the test's own topology prefix and free ports."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass

import requests
from prometheus_client.parser import text_string_to_metric_families

from ingress.settings import WEBHOOK_PATH
from ingress.signature import sign
from standins.ports import free_port
from tests.support.real_broker import BrokerKit

OUTPUT: dict[int, list[str]] = {}


@dataclass
class IngressProcess:
    """A running ``python -m ingress``: its public URL (the webhook) and its internal one (metrics, probes)."""

    process: subprocess.Popen[str]
    url: str
    internal: str

    @property
    def webhook(self) -> str:
        return self.url + WEBHOOK_PATH

    def post(
        self, body: bytes, secret: str | None, *, timeout: float = 15, headers: Mapping[str, str] | None = None
    ) -> requests.Response:
        headers = dict(headers or {})
        if secret is not None:
            headers["x-docspace-signature-256"] = sign(body, secret)
        return requests.post(self.webhook, data=body, headers=headers, timeout=timeout)

    def ready(self) -> int:
        return requests.get(self.internal + "/readyz", timeout=5).status_code

    def metric(self, name: str, **labels: str) -> float:
        """The sum of ``name``'s samples whose labels include ``labels``."""
        text = requests.get(self.internal + "/metrics", timeout=5).text
        return sum(
            sample.value
            for family in text_string_to_metric_families(text)
            for sample in family.samples
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items())
        )

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(10)


def spawn_ingress(
    broker: BrokerKit, env: dict[str, str], *args: str, amqp_url: str | None = None, port: int | None = None
) -> IngressProcess:
    """Start ``python -m ingress`` on this test's topology; return it once its /readyz answers 200."""
    port = port or free_port()
    metrics_port = free_port()
    clean = {k: v for k, v in os.environ.items() if k != "DOCSPACE_WEBHOOK_SECRET"}
    process = subprocess.Popen(
        [sys.executable, "-m", "ingress", *args],
        env={
            **clean,
            "PORT": str(port),
            "METRICS_PORT": str(metrics_port),
            "HOST": "127.0.0.1",
            **broker.env(amqp_url),
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
    running = IngressProcess(process, f"http://127.0.0.1:{port}", f"http://127.0.0.1:{metrics_port}")
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and process.poll() is None:
        try:
            if running.ready() == 200:
                return running
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
