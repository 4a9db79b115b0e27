"""Composition root of the ingress: ``python -m ingress [--insecure-skip-signature]``."""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading
from collections.abc import Callable

import structlog
import waitress.server

from ingress.app import EndpointLimits, IngressMetrics, IntakeHooks, create_app
from ingress.replay import RecentEvents
from ingress.settings import WEBHOOK_PATH, IngressSettings
from ingress.signature import SignatureVerifier
from ingress.spool import Spool
from ingress.spool_drainer import SpoolDrainer
from shared.broker.connection import TopologyMismatch, broker_nodes
from shared.broker.publisher import Publisher
from shared.broker.topology import Topology
from shared.journal.broker import process_journal
from shared.runtime import exit_codes
from shared.runtime.runner import ConfigError, Runtime, run_process

# The lifeline's exit codes, under the names its readers and tests know (the values live in exit_codes).
EXIT_OK, EXIT_THREAD_DIED, EXIT_TOPOLOGY = exit_codes.EXIT_OK, exit_codes.EXIT_FAILED, exit_codes.EXIT_TOPOLOGY

log = structlog.get_logger("ingress")


class Lifeline:
    """Stops the process when a thread it cannot work without dies: not ready at once, then a non-zero exit.

    A dead publisher or spool drainer would leave the ingress answering 2xx into a spool nothing drains; an
    orchestrator (or ``make run``'s supervisor) restarts a process that exits, and the spool survives that.
    The exit code is 3 for a topology mismatch (a restart cannot help: see the README), 1 for any other death.
    """

    def __init__(self, stop: Callable[[], None]) -> None:
        self._stop = stop
        self._lock = threading.Lock()
        self.failure: str | None = None
        self.exit_code = EXIT_OK

    @property
    def ok(self) -> bool:
        return self.failure is None

    def thread_died(self, name: str, error: BaseException) -> None:
        with self._lock:
            if self.failure is not None:
                return  # the first death decides the exit code, and the process is stopped once
            self.failure = f"the {name} thread died: {type(error).__name__}"
            self.exit_code = EXIT_TOPOLOGY if isinstance(error, TopologyMismatch) else EXIT_THREAD_DIED
        log.critical("ingress_stopping", reason=self.failure, hint="restart the ingress; its spool is kept")
        self._stop()


def readiness(lifeline: Lifeline, publisher: Publisher, spool: Spool | None) -> Callable[[], bool]:
    """``/readyz``: can the ingress take a delivery, straight to the broker or into a spool that has room and drains."""

    def ready() -> bool:
        if not (lifeline.ok and publisher.is_alive and publisher.fatal_error is None):
            return False
        return publisher.is_connected or (spool is not None and spool.has_room)

    return ready


def _stop_serving() -> None:
    raise KeyboardInterrupt  # waitress closes its server on this and returns from run()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ingress", description=__doc__)
    parser.add_argument(
        "--insecure-skip-signature",
        action="store_true",
        help="accept unsigned deliveries (development only: anyone who can reach the port can inject events)",
    )
    args = parser.parse_args(argv)
    return run_process(
        "ingress", _settings, lambda runtime, settings: _serve(runtime, settings, args.insecure_skip_signature)
    )


def _settings() -> IngressSettings:
    settings = IngressSettings()
    weak = settings.weak_secrets()
    if weak:
        raise ConfigError(f"DOCSPACE_WEBHOOK_SECRET is too weak: {'; '.join(weak)}.")
    return settings


def _verifier(settings: IngressSettings, insecure_skip_signature: bool) -> SignatureVerifier | None:
    secrets = settings.webhook_secrets()
    if secrets:
        return SignatureVerifier(secrets)
    if not insecure_skip_signature:
        raise ConfigError(
            "DOCSPACE_WEBHOOK_SECRET is not set. Set it to the secret of your DocSpace webhook "
            "(several, comma-separated, during a rotation). For local experiments only, "
            "--insecure-skip-signature starts without one."
        )
    log.critical(
        "signature_check_disabled",
        warning="--insecure-skip-signature: EVERY delivery is accepted unverified. Never run this in production.",
    )
    return None


def _serve(runtime: Runtime, settings: IngressSettings, insecure_skip_signature: bool) -> int:
    # waitress warns "Task queue depth is N" on every request that waits for a free thread: under load that is a
    # log line per delivery, and the logging itself becomes the bottleneck. The latency histogram tells the story.
    logging.getLogger("waitress.queue").setLevel(logging.ERROR)
    verifier = _verifier(settings, insecure_skip_signature)
    # From a thread, only a signal reaches waitress's loop in the main thread.
    lifeline = Lifeline(lambda: os.kill(os.getpid(), signal.SIGTERM))
    try:
        runtime.on_stop(_stop_serving)
        return _listen(runtime, settings, verifier, lifeline)
    except KeyboardInterrupt:
        return lifeline.exit_code


def _listen(runtime: Runtime, settings: IngressSettings, verifier: SignatureVerifier | None, lifeline: Lifeline) -> int:
    metrics = IngressMetrics()
    recent = RecentEvents(settings.replay_window_seconds, max_size=settings.replay_memory_size)

    def quarantined(reason: str, event_id: str | None) -> None:
        metrics.spool_quarantined.labels(reason).inc()
        if event_id is not None:
            recent.forget(event_id)  # not delivered after all: a re-send must go through

    spool = None
    if settings.spool_enabled:
        try:
            spool = runtime.closing(
                Spool(settings.spool_dir, max_bytes=settings.spool_max_bytes, on_quarantine=quarantined)
            )
        except OSError as exc:
            raise ConfigError(f"cannot open the spool in {settings.spool_dir}: {exc}") from exc

    topology = Topology.from_settings(settings)
    params = broker_nodes(settings, name=runtime.name)
    publisher = Publisher(
        params,
        topology=topology,
        confirm_timeout=settings.confirm_timeout,
        on_death=lambda exc: lifeline.thread_died("publisher", exc),
    ).start()
    # The ingress's decisions (accepted, spooled, replay refused, stale) ride the same publisher, never waited for.
    journal = process_journal(publisher, topology.journal_exchange, process="ingress", enabled=settings.journal_enabled)
    drainer = (
        SpoolDrainer(
            spool,
            publish_and_wait=publisher.publish_and_wait,
            is_connected=lambda: publisher.is_connected,
            exchange=topology.events_exchange,
            on_death=lambda exc: lifeline.thread_died("spool drainer", exc),
            journal=journal,
        ).start()
        if spool is not None
        else None
    )
    runtime.on_exit(publisher.stop)
    runtime.on_exit(journal.close)  # before the publisher: the last batch of records goes out
    if drainer is not None:
        runtime.on_exit(drainer.stop)  # before the publisher it drains into, and the journal it records in
    if not publisher.wait_connected(10):
        # Keep serving: deliveries are spooled (or get 503) until the broker is back; the publisher reconnects.
        log.warning("broker_not_connected_at_start", hint="deliveries are spooled or get 503 until it answers")
    if publisher.fatal_error is not None:
        print(f"ingress: {publisher.fatal_error}", file=sys.stderr)
        return EXIT_TOPOLOGY

    app = create_app(
        verifier=verifier,
        publish=publisher.publish,
        exchange=topology.events_exchange,
        limits=EndpointLimits(settings.max_body_bytes, settings.confirm_timeout, settings.retry_after_seconds),
        metrics=metrics,
        recent=recent,
        spool=spool,
        hooks=IntakeHooks(on_spooled=drainer.wake if drainer is not None else None, journal=journal),
    )
    server = waitress.server.create_server(app, **settings.waitress_options())  # listens from here on
    # Internal only: never route this port through the reverse proxy that serves the webhook.
    health = runtime.health(
        settings.metrics_port, readiness(lifeline, publisher, spool), host=settings.host, registry=metrics.registry
    )
    log.info(
        "ingress_listening",
        host=settings.host,
        port=settings.port,
        path=WEBHOOK_PATH,
        metrics_port=health.port if health is not None else None,
    )
    server.run()
    return lifeline.exit_code


if __name__ == "__main__":
    sys.exit(main())
