"""Composition root of the ingress: ``python -m ingress [--insecure-skip-signature]``."""

from __future__ import annotations

import argparse
import logging
import sys

import structlog
import waitress
from pydantic import ValidationError

from ingress.app import create_app
from ingress.settings import WEBHOOK_PATH, IngressSettings
from ingress.signature import SignatureVerifier
from ingress.spool import Spool, SpoolDrainer
from shared.broker import connection_parameters
from shared.logging import configure_logging
from shared.publisher import Publisher
from shared.topology import Topology


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ingress", description=__doc__)
    parser.add_argument(
        "--insecure-skip-signature",
        action="store_true",
        help="accept unsigned deliveries (development only: anyone who can reach the port can inject events)",
    )
    args = parser.parse_args(argv)
    try:
        settings = IngressSettings()
    except ValidationError as exc:
        print(f"ingress: invalid configuration:\n{exc}", file=sys.stderr)
        return 2
    configure_logging(fmt=settings.log_format, level=settings.log_level, process="ingress")
    # waitress warns "Task queue depth is N" on every request that waits for a free thread: under load that is a
    # log line per delivery, and the logging itself becomes the bottleneck. The latency histogram tells the story.
    logging.getLogger("waitress.queue").setLevel(logging.ERROR)
    log = structlog.get_logger("ingress")

    secrets = settings.webhook_secrets()
    if secrets:
        verifier: SignatureVerifier | None = SignatureVerifier(secrets)
    elif args.insecure_skip_signature:
        verifier = None
        log.critical(
            "signature_check_disabled",
            warning="--insecure-skip-signature: EVERY delivery is accepted unverified. Never run this in production.",
        )
    else:
        print(
            "ingress: DOCSPACE_WEBHOOK_SECRET is not set. Set it to the secret of your DocSpace webhook "
            "(several, comma-separated, during a rotation). For local experiments only, "
            "--insecure-skip-signature starts without one.",
            file=sys.stderr,
        )
        return 2

    topology = Topology.from_settings(settings)
    params = connection_parameters(
        settings.amqp_url.get_secret_value(),
        name="ingress",
        heartbeat=settings.heartbeat,
        blocked_connection_timeout=settings.blocked_connection_timeout,
    )
    publisher = Publisher(params, topology=topology, confirm_timeout=settings.confirm_timeout).start()
    if not publisher.wait_connected(10):
        # Keep serving: deliveries get 503 until the broker is back, and the publisher keeps reconnecting.
        log.warning("broker_not_connected_at_start", hint="deliveries get 503 until the broker answers")
    if publisher.fatal_error is not None:
        print(f"ingress: {publisher.fatal_error}", file=sys.stderr)
        return 3

    spool = Spool(settings.spool_dir, max_bytes=settings.spool_max_bytes) if settings.spool_enabled else None
    drainer = (
        SpoolDrainer(
            spool,
            publish_and_wait=publisher.publish_and_wait,
            is_connected=lambda: publisher.is_connected,
            exchange=topology.events_exchange,
        )
        if spool is not None
        else None
    )
    if drainer is not None:
        drainer.start()

    def ready() -> bool:
        # Ready means "can take a delivery": straight to the broker, or into the spool while it has room.
        return publisher.is_connected or (spool is not None and spool.has_room)

    app = create_app(
        verifier=verifier,
        publish=publisher.publish,
        exchange=topology.events_exchange,
        max_body_bytes=settings.max_body_bytes,
        confirm_timeout=settings.confirm_timeout,
        retry_after_seconds=settings.retry_after_seconds,
        is_ready=ready,
        spool=spool,
        on_spooled=drainer.wake if drainer is not None else None,
    )
    log.info("ingress_listening", host=settings.host, port=settings.port, path=WEBHOOK_PATH)
    try:
        waitress.serve(app, **settings.waitress_options())
    finally:
        if drainer is not None:
            drainer.stop()
        publisher.stop()
        if spool is not None:
            spool.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
