"""Runs a consumer process's stages: each on its worker threads, one publisher for their follow-ups, metrics."""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import structlog
from prometheus_client import Counter, Gauge, Histogram

from shared.broker.connection import TopologyMismatch, broker_nodes
from shared.broker.consumer import Patience, Reporting, StageConsumer
from shared.broker.publisher import Publisher
from shared.broker.topology import Topology
from shared.config.settings import CommonSettings, StageSettings
from shared.core.handling import Handler
from shared.journal.broker import process_journal
from shared.runtime.exit_codes import EXIT_FAILED, EXIT_OK
from shared.runtime.runner import Runtime

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


def run_stages(
    settings: StageSettings | CommonSettings, builders: Sequence[StageBuilder], *, process: str, runtime: Runtime
) -> int:
    """Consume each built stage's queue until SIGTERM/SIGINT; finish the messages in hand; return an exit code.

    Builders receive the process's one publisher, which stages use for their follow-up events. The same publisher
    carries the process's journal records (one ``BrokerJournal``, shared by its stages; none if JOURNAL_ENABLED=false).
    """
    topology = Topology.from_settings(settings)
    params = broker_nodes(settings, name=process)
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
    journal = process_journal(publisher, topology.journal_exchange, process=process, enabled=settings.journal_enabled)
    reporting = Reporting(observe, journal)
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
    runtime.on_exit(publisher.stop)
    runtime.on_exit(journal.close)  # first: the last batch of records goes out before the publisher stops
    runtime.health(metrics_port, ready)

    def stop() -> None:
        for consumer in consumers:
            consumer.stop()

    runtime.on_stop(stop)

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
    # A topology mismatch is raised: the runner says so and exits 3.
    for failure in failures:
        if isinstance(failure, TopologyMismatch):
            raise failure
        log.critical("consumer_crashed", error=repr(failure))
        return EXIT_FAILED
    if publisher.fatal_error is not None:
        raise publisher.fatal_error
    return EXIT_OK
