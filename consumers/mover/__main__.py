"""Composition root of the mover: ``python -m consumers.mover``."""

from __future__ import annotations

import sys

from pydantic import ValidationError

from consumers.mover.handler import move_invoice
from consumers.mover.settings import MoverSettings
from shared.consumer import Handled, InboundMessage
from shared.docspace import DocSpaceClient
from shared.idempotency import open_store
from shared.logging import configure_logging
from shared.messages import InvoiceDetected, decode
from shared.process import StageSpec, config_error, run_stages
from shared.publisher import Publisher, emitter
from shared.topology import MOVER, Topology


def main() -> int:
    try:
        settings = MoverSettings()
    except ValidationError as exc:
        return config_error("mover", exc)
    configure_logging(fmt=settings.log_format, level=settings.log_level, process="mover")
    docspace = DocSpaceClient(
        settings.docspace_api_host,
        settings.docspace_api_key,
        timeout=(3.05, settings.docspace_timeout),
        pool_size=settings.concurrency,
        limiter=settings.docspace_limiter(),
        move_deadline=settings.move_deadline,
    )
    store = open_store(
        settings.idempotency_url.get_secret_value(),
        ttl_seconds=settings.idempotency_ttl_days * 86400,
        namespace=settings.topology_prefix,
    )
    topology = Topology.from_settings(settings)

    def build(publisher: Publisher) -> StageSpec:
        emit = emitter(publisher, topology.received_exchange)

        def handle(message: InboundMessage) -> Handled:
            detected = decode(InvoiceDetected, message.body)
            return move_invoice(
                detected,
                files=docspace,
                emit=emit,
                store=store,
                conflict=settings.move_conflict,
                lease_seconds=settings.claim_lease_seconds,
            )

        return StageSpec(MOVER, handle)

    try:
        return run_stages(settings, [build], process="mover")
    finally:
        docspace.close()
        store.close()


if __name__ == "__main__":
    sys.exit(main())
