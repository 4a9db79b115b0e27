"""Composition root of the reconciler: ``python -m consumers.reconciler`` runs a cycle every RECONCILE_INTERVAL."""

from __future__ import annotations

import contextlib
import sys
import time
import uuid

import structlog

from consumers.reconciler import metrics
from consumers.reconciler.announce import broker_announcer
from consumers.reconciler.context import Replica
from consumers.reconciler.cycle import last_known, reconcile
from consumers.reconciler.journal import journalled, webhook_decisions
from consumers.reconciler.settings import ReconcilerSettings, knobs_for
from shared.broker.connection import broker_nodes
from shared.broker.publisher import Publisher
from shared.broker.topology import Topology
from shared.core.rules import RulesError
from shared.docspace.admin import PortalAdmin
from shared.journal.broker import process_journal
from shared.runtime.exit_codes import EXIT_OK, EXIT_TOPOLOGY
from shared.runtime.runner import Runtime, configuration, run_process
from shared.runtime.wiring import checkpoints, docspace_client, idempotency_store
from shared.store.idempotency import StoreUnavailable

log = structlog.get_logger("reconciler")


def main() -> int:
    return run_process("reconciler", ReconcilerSettings, _run)


def _run(runtime: Runtime, settings: ReconcilerSettings) -> int:
    rules = configuration(settings.rules, RulesError)
    # Its own limiter at its share of the key: however many rooms, it never takes more.
    client = docspace_client(settings, pool_size=2, per_minute=settings.budget_per_minute, process="reconciler")
    runtime.closing(client)
    portal = PortalAdmin(client.transport)
    store = runtime.closing(idempotency_store(settings))
    marks = runtime.closing(checkpoints(settings))
    topology = Topology.from_settings(settings)
    params = broker_nodes(settings, name=runtime.name)
    publisher = Publisher(params, topology=topology).start()
    journal = process_journal(
        publisher, topology.journal_exchange, process="reconciler", enabled=settings.journal_enabled
    )
    announce = journalled(broker_announcer(publisher, topology.events_exchange), journal)
    owner = f"reconciler-{uuid.uuid4().hex[:12]}"
    replica = Replica(portal, rules, store, marks, announce, knobs_for(settings), owner)
    metrics.prepare(settings.reconcile_interval)
    with contextlib.suppress(StoreUnavailable):  # then the first cycle says what is wrong with the store
        metrics.show_stored(*last_known(marks))
    runtime.on_exit(publisher.stop)
    runtime.on_exit(journal.close)  # before the publisher: the last batch of records goes out
    runtime.health(settings.metrics_port, lambda: publisher.is_connected)
    stopping = runtime.stopping
    log.info(
        "reconciler_started",
        interval=settings.reconcile_interval,
        grace=settings.reconcile_grace,
        budget_per_minute=settings.budget_per_minute,
        calls_per_cycle=settings.calls_per_cycle,
        rooms=len(rules.clients),
    )

    def cycles() -> int:
        """A cycle every RECONCILE_INTERVAL until the process stops."""
        # A first cycle waits (briefly) for the broker, so a fresh start does not begin with a failed cycle.
        publisher.wait_connected(10)
        while not stopping.is_set():
            started = time.monotonic()
            if publisher.fatal_error is not None:
                log.critical("topology_mismatch", error=str(publisher.fatal_error))
                return EXIT_TOPOLOGY
            try:
                report = reconcile(replica)
            except Exception:
                # reconcile() fails a cycle on any bug itself; this is its bookkeeping failing (saving, the
                # lease). Counted and logged, and the process stays up: the next interval tries again.
                log.exception("reconcile_failed", reason="bug")
                metrics.crashed()
                stopping.wait(settings.reconcile_interval)
                continue
            metrics.observe(report)
            for decision in webhook_decisions(report):
                journal.record(decision)
            if report.not_run is not None:
                with contextlib.suppress(StoreUnavailable):
                    metrics.show_stored(*last_known(marks))  # the replica that ran it: its findings, not ours
            stopping.wait(max(settings.reconcile_interval - (time.monotonic() - started), 0.0))
        return EXIT_OK

    return cycles()


if __name__ == "__main__":
    sys.exit(main())
