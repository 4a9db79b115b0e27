"""Composition root of the journal writer: ``python -m consumers.journal``."""

from __future__ import annotations

import sys
from datetime import timedelta

import structlog

from consumers.journal.settings import JournalWriterSettings
from consumers.journal.writer import JournalWriter
from shared.broker.batch_consumer import BatchConsumer
from shared.broker.connection import broker_nodes
from shared.broker.topology import Topology
from shared.journal.metrics import LAG, WRITER_UP
from shared.journal.store import JournalUnavailable
from shared.journal.wiring import journal_store
from shared.runtime.exit_codes import EXIT_CONFIG, EXIT_FAILED, EXIT_OK
from shared.runtime.runner import Runtime, run_process

log = structlog.get_logger(__name__)


def main() -> int:
    return run_process("journal", JournalWriterSettings, _run)


def _run(runtime: Runtime, settings: JournalWriterSettings) -> int:
    try:
        store = runtime.closing(journal_store(settings))
    except (JournalUnavailable, ValueError) as exc:
        # The database must answer once at start so the schema exists; the orchestrator restarts us until it does.
        log.critical("journal_store_unavailable", error=str(exc)[:300])
        return EXIT_CONFIG if isinstance(exc, ValueError) else EXIT_FAILED
    topology = Topology.from_settings(settings)
    writer = JournalWriter(
        store,
        retention=timedelta(days=settings.journal_retention_days),
        batch_size=settings.journal_batch_size,
        prune_interval=settings.journal_prune_interval,
    )
    consumer = BatchConsumer(
        broker_nodes(settings, name=runtime.name),
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
    runtime.health(settings.metrics_port, ready)
    runtime.on_stop(consumer.stop)
    consumer.run()  # a topology mismatch is raised, for the runner to exit 3 with
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
