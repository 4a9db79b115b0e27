"""Runs the four real pipeline processes for an end-to-end test, and reads what they logged."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import requests

from ops.supervisor import Supervisor, pipeline_children
from tests.broker import BrokerKit
from tests.mail_fixtures import free_port


class PipelineLogs:
    """Every JSON log line each process printed, parsed, for assertions on decisions and reasons."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.lines: list[tuple[str, dict[str, Any]]] = []
        self.raw: list[tuple[str, str]] = []

    def add(self, process: str, line: str) -> None:
        with self._lock:
            self.raw.append((process, line))
            try:
                record = json.loads(line)
            except ValueError:
                return
            if isinstance(record, dict):
                self.lines.append((process, record))

    def events(self, process: str, event: str, **match: Any) -> list[dict[str, Any]]:
        with self._lock:
            return [
                record
                for name, record in self.lines
                if name == process
                and record.get("event") == event
                and all(record.get(k) == v for k, v in match.items())
            ]

    def dump(self) -> str:
        with self._lock:
            return "\n".join(f"[{name}] {line}" for name, line in self.raw[-200:])


@contextmanager
def running_pipeline(broker: BrokerKit, env: Mapping[str, str], tmp_path: Path) -> Iterator[tuple[str, PipelineLogs]]:
    """Start ingress, classifier, mover and notifier as separate processes; yield the ingress URL and logs."""
    port = free_port()
    logs = PipelineLogs()
    full_env = {
        "AMQP_URL": broker.url,
        "TOPOLOGY_PREFIX": broker.topology.prefix,
        "RETRY_DELAYS": ",".join(str(d) for d in broker.topology.retry_delays),
        "DELIVERY_LIMIT": str(broker.topology.delivery_limit),
        "IDEMPOTENCY_URL": f"sqlite:///{tmp_path / 'idempotency.sqlite3'}",
        "LOG_FORMAT": "json",
        "HOST": "127.0.0.1",
        "PORT": str(port),
        **env,
    }
    supervisor = Supervisor(
        [spec.__class__(spec.name, spec.argv, full_env) for spec in pipeline_children()],
        on_line=logs.add,
    ).start()
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_ready(url, logs, supervisor)
        yield url, logs
    finally:
        supervisor.stop()


def _wait_ready(url: str, logs: PipelineLogs, supervisor: Supervisor) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        assert supervisor.fatal is None, f"{supervisor.fatal}\n{logs.dump()}"
        try:
            ingress_ready = requests.get(url + "/readyz", timeout=1).status_code == 200
        except requests.ConnectionError:
            ingress_ready = False
        consumers = {name for name, rec in logs.lines if rec.get("event") == "consumer_started"}
        if ingress_ready and {"classifier", "mover", "notifier"} <= consumers:
            return
        time.sleep(0.1)
    raise AssertionError(f"the pipeline did not start:\n{logs.dump()}")
