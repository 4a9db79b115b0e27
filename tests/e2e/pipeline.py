"""Runs the four real pipeline processes for an end-to-end test, and reads what they logged."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from ops.logs import LogCollector
from ops.supervisor import Supervisor, pipeline_children, wait_for_pipeline
from tests.broker import BrokerKit
from tests.mail_fixtures import free_port


@dataclass
class RunningPipeline:
    url: str
    logs: LogCollector
    supervisor: Supervisor
    spool_dir: Path


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
    supervisor = Supervisor(
        [spec.__class__(spec.name, spec.argv, full_env) for spec in pipeline_children()],
        on_line=logs.add,
    ).start()
    url = f"http://127.0.0.1:{port}"
    try:
        try:
            wait_for_pipeline(url, logs.started, supervisor)
        except RuntimeError as exc:
            raise AssertionError(f"{exc}\n{logs.dump()}") from exc
        yield RunningPipeline(url, logs, supervisor, tmp_path / "spool")
    finally:
        supervisor.stop()
