"""Composition root of the journal writer: ``python -m consumers.journal``."""

from __future__ import annotations

import signal
import sys
from datetime import timedelta
from types import FrameType

import structlog
from pydantic import ValidationError

from consumers.journal.settings import JournalWriterSettings
from consumers.journal.writer import JournalWriter
from shared.broker.batch_consumer import BatchConsumer
from shared.broker.connection import TopologyMismatch, connection_parameters
from shared.broker.topology import Topology
from shared.journal.metrics import LAG, WRITER_UP
from shared.journal.store import JournalUnavailable
from shared.journal.wiring import journal_store
from shared.runtime.health import HealthServer
from shared.runtime.logging import configure_logging
from shared.runtime.process import EXIT_CONFIG, EXIT_OK, EXIT_TOPOLOGY, config_error

log = structlog.get_logger(__name__)


def main() -> int:
    try:
        settings = JournalWriterSettings()
    except ValidationError as exc:
        return config_error("journal", exc)
    configure_logging(fmt=settings.log_format, level=settings.log_level, process="journal")
    try:
        store = journal_store(settings)
    except (JournalUnavailable, ValueError) as exc:
        # The database must answer once at start so the schema exists; the orchestrator restarts us until it does.
        log.critical("journal_store_unavailable", error=str(exc)[:300])
        return EXIT_CONFIG if isinstance(exc, ValueError) else 1
    topology = Topology.from_settings(settings)
    params = connection_parameters(
        settings.amqp_url.get_secret_value(),
        name="journal",
        heartbeat=settings.heartbeat,
        blocked_connection_timeout=settings.blocked_connection_timeout,
    )
    writer = JournalWriter(
        store,
        retention=timedelta(days=settings.journal_retention_days),
        prune_interval=settings.journal_prune_interval,
    )
    consumer = BatchConsumer(
        params,
        topology=topology,
        queue=topology.journal_queue,
        handle=writer.write,
        batch_size=settings.journal_batch_size,
        max_wait=settings.journal_batch_wait,
        between_batches=writer.between_batches,
    )

    def ready() -> bool:
        return consumer.is_connected and writer.store_answers

    LAG.set_function(consumer.oldest_held_age)
    WRITER_UP.set_function(lambda: 1.0 if ready() else 0.0)
    health = HealthServer(settings.metrics_port, ready).start() if settings.metrics_port else None

    def stop(signum: int, _frame: FrameType | None) -> None:
        log.info("stopping", signal=signal.Signals(signum).name)
        consumer.stop()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    try:
        consumer.run()
    except TopologyMismatch as exc:
        log.critical("topology_mismatch", error=str(exc))
        return EXIT_TOPOLOGY
    finally:
        if health is not None:
            health.stop()
        store.close()
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
