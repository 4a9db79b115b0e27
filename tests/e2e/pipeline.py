"""Runs the real pipeline processes for an end-to-end test, and reads what they logged and counted."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import requests
from prometheus_client.parser import text_string_to_metric_families

from ops.logs import LogCollector
from ops.supervisor import JOURNAL_WRITER, Supervisor, pipeline_children, wait_for_pipeline
from shared.broker.topology import STAGES
from simulator import DocSpaceSimulator
from standins.mail.catcher import MailCatcher
from standins.pipeline_receiver import PipelineReceiver
from standins.ports import free_port
from tests.support.real_broker import BrokerKit, wait_until_quiet

# The pipeline receiver's secret in every end-to-end test (Standard Webhooks form: whsec_ + base64).
PIPELINE_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"


def outside_world_env(
    sim: Any,
    *,
    secret: str,
    rules: Path,
    smtp: MailCatcher | None = None,
    receiver: PipelineReceiver | None = None,
) -> dict[str, str]:
    """The settings that point the pipeline at the simulator (with ``rules``), the SMTP server and the receiver."""
    env = {
        "DOCSPACE_WEBHOOK_SECRET": secret,
        "DOCSPACE_API_HOST": sim.base_url,
        "DOCSPACE_API_KEY": sim.api_key,
        "INVOICE_RULES_FILE": str(rules),
    }
    if smtp is not None:
        env |= {"SMTP_HOST": smtp.host, "SMTP_PORT": str(smtp.port), "MAIL_FROM": "invoices@pipeline.example"}
    if receiver is not None:
        env |= {"PIPELINE_URL": receiver.url, "PIPELINE_SECRET": PIPELINE_SECRET}
    return env


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

    def wait_until_quiet(self, broker: BrokerKit, *, timeout: float = 120.0) -> None:
        """Return once the pipeline has nothing left to do (``tests.support.real_broker.wait_until_quiet``); fail after
        ``timeout``.

        A late duplicate (a redelivery, a retry in a delay queue, a message parked behind a claim) has then been
        handled, however long it took, so a test that counts side effects after this sees them all.
        """
        wait_until_quiet(broker, STAGES, held=self._held, timeout=timeout, explain=lambda: self.logs.dump(60))

    def _held(self) -> dict[str, float]:
        """What the processes hold outside the broker's queues: messages in workers' hands, deliveries spooled."""
        # The journal writer holds no invoice (and, stopped by a test, serves no metrics): not asked.
        consumers = [name for name in self.metrics_urls if name not in {"ingress", JOURNAL_WRITER}]
        held = {f"{name} in flight": self.metric(name, "stage_messages_in_flight") for name in consumers}
        held["ingress spool"] = self.metric("ingress", "ingress_spool_depth")
        return held


@contextmanager
def running_pipeline(
    broker: BrokerKit, env: Mapping[str, str], tmp_path: Path, *, replicas: int = 1, reconcilers: int = 0
) -> Iterator[RunningPipeline]:
    """Start ingress, classifier, mover, notifier and the journal writer as separate processes, on this test's
    topology.

    With ``replicas`` > 1 every stage runs that many times, named ``mover-1``, ``mover-2``...
    ``reconcilers`` adds that many reconciler processes (``reconciler``, ``reconciler-2``, ...) on the same store.
    """
    port = free_port()
    logs = LogCollector()
    full_env = {
        **broker.env(),
        "IDEMPOTENCY_URL": f"sqlite:///{tmp_path / 'idempotency.sqlite3'}",
        "LOG_FORMAT": "json",
        "HOST": "127.0.0.1",
        "PORT": str(port),
        "SPOOL_DIR": str(tmp_path / "spool"),
        # The journal writer runs beside the stages, its SQLite file this test's own (a test may name PostgreSQL).
        "JOURNAL_URL": f"sqlite:///{tmp_path / 'journal.sqlite3'}",
        **env,
    }
    # Each process serves /metrics (and its probes) on an internal port of its own.
    children = pipeline_children(replicas, reconcilers=reconcilers)
    metrics_ports = {spec.name: free_port() for spec in children}
    specs = [replace(spec, env={**full_env, "METRICS_PORT": str(metrics_ports[spec.name])}) for spec in children]
    supervisor = Supervisor(specs, on_line=logs.add).start()
    url = f"http://127.0.0.1:{port}"
    metrics_urls = {name: f"http://127.0.0.1:{metrics_port}/metrics" for name, metrics_port in metrics_ports.items()}
    try:
        try:
            wait_for_pipeline(
                f"http://127.0.0.1:{metrics_ports['ingress']}",
                logs.started,
                supervisor,
                timeout=30 * replicas,
                # The reconcilers consume no queue: they are running once started.
                consumers={name for name in metrics_ports if name != "ingress" and not name.startswith("reconciler")},
            )
        except RuntimeError as exc:
            raise AssertionError(f"{exc}\n{logs.dump()}") from exc
        yield RunningPipeline(url, logs, supervisor, tmp_path / "spool", metrics_urls)
    finally:
        supervisor.stop()


def assert_exactly_once(
    sim: Any,
    files: list[str],
    smtp_server: MailCatcher,
    pipeline_receiver: PipelineReceiver,
    pipeline: RunningPipeline,
    broker_kit: BrokerKit,
) -> None:
    """Every file moved into Incoming, e-mailed once and sent to the pipeline once; every dead-letter queue empty."""
    expected = {f"{file_id}:v1" for file_id in files}
    mails = smtp_server.per_invoice()
    calls = pipeline_receiver.per_invoice()
    assert set(mails) == expected and max(mails.values()) == 1, mails.most_common(3)
    assert set(calls) == expected and max(calls.values()) == 1, calls.most_common(3)
    for file_id in files:
        folder = sim.file(file_id)["folderId"]
        assert sim.folder_title(folder) == "Incoming", (file_id, folder)
    for stage in STAGES:
        assert broker_kit.depth(broker_kit.topology.stage(stage).dead_letters) == 0, (stage, pipeline.logs.dump(50))


@dataclass(frozen=True)
class OutsideWorld:
    """What the pipeline talks to in an end-to-end test: the DocSpace simulator, the SMTP server, the receiver."""

    sim: DocSpaceSimulator
    smtp: MailCatcher
    receiver: PipelineReceiver

    def env(self, *, secret: str, rules: Path) -> dict[str, str]:
        """``outside_world_env`` for all three: the pipeline's settings that point at this world."""
        return outside_world_env(self.sim, secret=secret, rules=rules, smtp=self.smtp, receiver=self.receiver)

    def assert_exactly_once(self, files: list[str], pipeline: RunningPipeline, broker: BrokerKit) -> None:
        """``assert_exactly_once`` against this world's simulator, SMTP server and receiver."""
        assert_exactly_once(self.sim, files, self.smtp, self.receiver, pipeline, broker)
