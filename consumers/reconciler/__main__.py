"""Composition root of the reconciler: ``python -m consumers.reconciler`` runs a cycle every RECONCILE_INTERVAL."""

from __future__ import annotations

import contextlib
import signal
import sys
import threading
import time
import uuid
from types import FrameType

import structlog
from pydantic import ValidationError

from consumers.reconciler import metrics
from consumers.reconciler.announce import broker_announcer
from consumers.reconciler.handler import last_known, reconcile
from consumers.reconciler.journal import journalled, webhook_decisions
from consumers.reconciler.settings import ReconcilerSettings, knobs_for
from shared.broker.connection import connection_parameters
from shared.broker.publisher import Publisher
from shared.broker.topology import Topology
from shared.core.rules import RulesError
from shared.docspace.admin import PortalAdmin
from shared.journal.broker import BrokerJournal
from shared.runtime.health import HealthServer
from shared.runtime.logging import configure_logging
from shared.runtime.process import EXIT_OK, EXIT_TOPOLOGY, config_error, log_transport_notes
from shared.runtime.wiring import checkpoints, docspace_client, idempotency_store
from shared.store.idempotency import StoreUnavailable

log = structlog.get_logger("reconciler")


def main() -> int:
    try:
        settings = ReconcilerSettings()
        rules = settings.rules()
    except (ValidationError, RulesError) as exc:
        return config_error("reconciler", exc)
    configure_logging(fmt=settings.log_format, level=settings.log_level, process="reconciler")
    log_transport_notes(settings.transport_notes())
    # Its own limiter at its share of the key: however many rooms, it never takes more.
    client = docspace_client(settings, pool_size=2, per_minute=settings.budget_per_minute, process="reconciler")
    portal = PortalAdmin(client.transport)
    store = idempotency_store(settings)
    marks = checkpoints(settings)
    topology = Topology.from_settings(settings)
    params = connection_parameters(
        settings.amqp_url.get_secret_value(),
        name="reconciler",
        heartbeat=settings.heartbeat,
        blocked_connection_timeout=settings.blocked_connection_timeout,
    )
    publisher = Publisher(params, topology=topology).start()
    journal = BrokerJournal(publisher, topology.journal_exchange, process="reconciler")
    announce = journalled(broker_announcer(publisher, topology.events_exchange), journal)
    knobs = knobs_for(settings)
    owner = f"reconciler-{uuid.uuid4().hex[:12]}"
    metrics.prepare(settings.reconcile_interval)
    with contextlib.suppress(StoreUnavailable):  # then the first cycle says what is wrong with the store
        metrics.show_stored(*last_known(marks))
    health = None
    if settings.metrics_port:
        health = HealthServer(settings.metrics_port, lambda: publisher.is_connected).start()
    stopping = threading.Event()

    def stop(signum: int, _frame: FrameType | None) -> None:
        log.info("stopping", signal=signal.Signals(signum).name)
        stopping.set()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    log.info(
        "reconciler_started",
        interval=settings.reconcile_interval,
        grace=settings.reconcile_grace,
        budget_per_minute=settings.budget_per_minute,
        calls_per_cycle=settings.calls_per_cycle,
        rooms=len(rules.clients),
    )
    try:
        # A first cycle waits (briefly) for the broker, so a fresh start does not begin with a failed cycle.
        publisher.wait_connected(10)
        while not stopping.is_set():
            started = time.monotonic()
            if publisher.fatal_error is not None:
                log.critical("topology_mismatch", error=str(publisher.fatal_error))
                return EXIT_TOPOLOGY
            report = reconcile(
                portal=portal,
                rules=rules,
                store=store,
                checkpoints=marks,
                announce=announce,
                knobs=knobs,
                owner=owner,
            )
            metrics.observe(report)
            for decision in webhook_decisions(report):
                journal.record(decision)
            if report.not_run is not None:
                with contextlib.suppress(StoreUnavailable):
                    metrics.show_stored(*last_known(marks))  # the replica that ran it: its findings, not ours
            stopping.wait(max(settings.reconcile_interval - (time.monotonic() - started), 0.0))
        return EXIT_OK
    finally:
        publisher.stop()
        if health is not None:
            health.stop()
        client.close()
        store.close()
        marks.close()


if __name__ == "__main__":
    sys.exit(main())
