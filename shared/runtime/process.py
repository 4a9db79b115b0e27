"""Runs a consumer process: its stages on worker threads, one publisher, signals, metrics, exit codes."""

from __future__ import annotations

import signal
import sys
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from types import FrameType

import structlog
from prometheus_client import Counter, Gauge, Histogram
from pydantic import ValidationError

from shared.broker.connection import TopologyMismatch, connection_parameters
from shared.broker.consumer import Patience, Reporting, StageConsumer
from shared.broker.publisher import Publisher
from shared.broker.topology import Topology
from shared.config.settings import CommonSettings, StageSettings, explain
from shared.core.handling import Handler
from shared.journal.broker import BrokerJournal
from shared.runtime.health import HealthServer

log = structlog.get_logger(__name__)

MESSAGES = Counter("stage_messages", "Messages handled, by stage, outcome and reason", ["stage", "outcome", "reason"])
HANDLING = Histogram(
    "stage_handling_seconds",
    "Time a stage spent on one message",
    ["stage"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
)
# Alive but not working (broker lost, a stage not consuming) shows here; `up` only shows a dead process.
# Labelled, so a process that imports this module without running stages (the reconciler) exports no sample.
READY = Gauge("stage_ready", "1 while the stage consumes and its process can publish (what /readyz checks)", ["stage"])
IN_FLIGHT = Gauge("stage_messages_in_flight", "Messages a stage has taken and not yet settled", ["stage"])

EXIT_OK = 0
EXIT_CONFIG = 2
EXIT_TOPOLOGY = 3


@dataclass(frozen=True)
class StageSpec:
    """A stage a consumer process runs: the stage's name and its handler."""

    stage: str
    handler: Handler


def observe(stage: str, outcome: str, reason: str | None, seconds: float) -> None:
    MESSAGES.labels(stage, outcome, reason or "").inc()
    HANDLING.labels(stage).observe(seconds)


def _in_flight_of(consumer: StageConsumer) -> Callable[[], float]:
    return lambda: consumer.in_flight


StageBuilder = Callable[[Publisher], StageSpec]


def _readiness(publisher: Publisher, consumer: StageConsumer) -> Callable[[], float]:
    """The ``stage_ready`` sample of one stage: it consumes, and its process can publish its follow-up events."""
    return lambda: 1.0 if publisher.is_connected and consumer.is_connected else 0.0


def run_stages(settings: StageSettings | CommonSettings, builders: Sequence[StageBuilder], *, process: str) -> int:
    """Consume each built stage's queue until SIGTERM/SIGINT; finish the messages in hand; return an exit code.

    Builders receive the process's one publisher, which stages use for their follow-up events. The same publisher
    carries the process's journal records (one ``BrokerJournal``, shared by its stages).
    """
    topology = Topology.from_settings(settings)
    params = connection_parameters(
        settings.amqp_url.get_secret_value(),
        name=process,
        heartbeat=settings.heartbeat,
        blocked_connection_timeout=settings.blocked_connection_timeout,
    )
    failures: list[BaseException] = []
    consumers: list[StageConsumer] = []

    def publisher_died(exc: BaseException) -> None:
        # Without its publisher a stage can neither emit follow-ups nor park retries: every message would be
        # requeued over and over. Stop consuming and exit non-zero so the orchestrator restarts the process.
        failures.append(exc)
        for consumer in consumers:
            consumer.stop()

    publisher = Publisher(params, topology=topology, on_death=publisher_died).start()
    specs = [build(publisher) for build in builders]
    reporting = Reporting(observe, BrokerJournal(publisher, topology.journal_exchange, process=process))
    concurrency = getattr(settings, "concurrency", 4)
    patience = Patience(
        store_outage_max_wait=getattr(settings, "store_outage_max_wait", Patience.store_outage_max_wait)
    )
    consumers += [
        StageConsumer(
            params,
            topology=topology,
            stage=spec.stage,
            handler=spec.handler,
            publisher=publisher,
            concurrency=concurrency,
            reporting=reporting,
            patience=patience,
        )
        for spec in specs
    ]
    for consumer in consumers:
        IN_FLIGHT.labels(consumer.queues.stage).set_function(_in_flight_of(consumer))
    metrics_port = getattr(settings, "metrics_port", 0)

    def ready() -> bool:
        # Ready means every stage consumes and follow-up events can be published.
        return publisher.is_connected and all(c.is_connected for c in consumers)

    for spec, consumer in zip(specs, consumers, strict=True):
        READY.labels(spec.stage).set_function(_readiness(publisher, consumer))
    health = HealthServer(metrics_port, ready).start() if metrics_port else None

    def stop(signum: int, _frame: FrameType | None) -> None:
        log.info("stopping", signal=signal.Signals(signum).name)
        for consumer in consumers:
            consumer.stop()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)

    def run(consumer: StageConsumer) -> None:
        try:
            consumer.run()
        except BaseException as exc:
            failures.append(exc)
            for other in consumers:
                other.stop()

    threads = [threading.Thread(target=run, args=(c,), name=f"consume-{c.queues.stage}") for c in consumers]
    for thread in threads:
        thread.start()
    # Join with a timeout so the main thread stays responsive to signals.
    while any(thread.is_alive() for thread in threads):
        for thread in threads:
            thread.join(0.5)
    publisher.stop()
    if health is not None:
        health.stop()
    for failure in failures:
        if isinstance(failure, TopologyMismatch):
            log.critical("topology_mismatch", error=str(failure))
            return EXIT_TOPOLOGY
        log.critical("consumer_crashed", error=repr(failure))
        return 1
    if publisher.fatal_error is not None:
        log.critical("topology_mismatch", error=str(publisher.fatal_error))
        return EXIT_TOPOLOGY
    return EXIT_OK


def config_error(process: str, error: Exception) -> int:
    """Say what is wrong with the settings (names and problems, never values) and return exit code 2."""
    detail = explain(error) if isinstance(error, ValidationError) else f"  {error}"
    print(f"{process}: invalid configuration:\n{detail}", file=sys.stderr)
    return EXIT_CONFIG


def log_transport_notes(notes: list[str]) -> None:
    """Plain-text transport that the settings allow (loopback, or ALLOW_INSECURE_TRANSPORT): said once at start."""
    for note in notes:
        log.warning("insecure_transport_allowed", detail=note)
