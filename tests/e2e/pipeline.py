"""Runs the four real pipeline processes for an end-to-end test, and reads what they logged and counted."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path

import requests
from prometheus_client.parser import text_string_to_metric_families

from ops.logs import LogCollector
from ops.supervisor import Supervisor, pipeline_children, wait_for_pipeline
from tests.broker import BrokerKit
from tests.mail_fixtures import free_port


@dataclass
class RunningPipeline:
    """The four processes of an end-to-end test, their logs, metrics and spool."""

    url: str
    logs: LogCollector
    supervisor: Supervisor
    spool_dir: Path
    metrics_urls: dict[str, str]

    def metric(self, process: str, name: str, **labels: str) -> float:
        """The sum of ``name``'s samples whose labels include ``labels``, from ``process``'s /metrics."""
        text = requests.get(self.metrics_urls[process], timeout=5).text
        return sum(
            sample.value
            for family in text_string_to_metric_families(text)
            for sample in family.samples
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items())
        )


@contextmanager
def running_pipeline(broker: BrokerKit, env: Mapping[str, str], tmp_path: Path) -> Iterator[RunningPipeline]:
    """Start ingress, classifier, mover and notifier as separate processes, on this test's topology."""
    port = free_port()
    logs = LogCollector()
    full_env = {
        "AMQP_URL": broker.url,
        "TOPOLOGY_PREFIX": broker.topology.prefix,
        "RETRY_DELAYS": ",".join(str(d) for d in broker.topology.retry_delays),
        "DELIVERY_LIMIT": str(broker.topology.delivery_limit),
        "IDEMPOTENCY_URL": f"sqlite:///{tmp_path / 'idempotency.sqlite3'}",
        "LOG_FORMAT": "json",
        "HOST": "127.0.0.1",
        "PORT": str(port),
        "SPOOL_DIR": str(tmp_path / "spool"),
        **env,
    }
    # Each process serves /metrics (and its probes) on an internal port of its own.
    metrics_ports = {name: free_port() for name in ("ingress", "classifier", "mover", "notifier")}
    specs = [
        replace(spec, env={**full_env, "METRICS_PORT": str(metrics_ports[spec.name])}) for spec in pipeline_children()
    ]
    supervisor = Supervisor(specs, on_line=logs.add).start()
    url = f"http://127.0.0.1:{port}"
    metrics_urls = {name: f"http://127.0.0.1:{metrics_port}/metrics" for name, metrics_port in metrics_ports.items()}
    try:
        try:
            wait_for_pipeline(f"http://127.0.0.1:{metrics_ports['ingress']}", logs.started, supervisor)
        except RuntimeError as exc:
            raise AssertionError(f"{exc}\n{logs.dump()}") from exc
        yield RunningPipeline(url, logs, supervisor, tmp_path / "spool", metrics_urls)
    finally:
        supervisor.stop()
