"""Composition root of the mover: ``python -m consumers.mover``."""

from __future__ import annotations

import sys

from pydantic import ValidationError

from consumers.mover.handler import move_invoice
from consumers.mover.settings import MoverSettings
from shared.broker.emitter import emitter
from shared.broker.publisher import Publisher
from shared.broker.topology import MOVER, Topology
from shared.core.events import InvoiceDetected, decode
from shared.core.handling import Handled, InboundMessage
from shared.runtime.logging import configure_logging
from shared.runtime.process import StageSpec, config_error, log_transport_notes, run_stages
from shared.runtime.wiring import docspace_client, idempotency_store


def main() -> int:
    try:
        settings = MoverSettings()
    except ValidationError as exc:
        return config_error("mover", exc)
    configure_logging(fmt=settings.log_format, level=settings.log_level, process="mover")
    log_transport_notes(settings.transport_notes())
    docspace = docspace_client(settings, pool_size=settings.concurrency, move_deadline=settings.move_deadline)
    store = idempotency_store(settings)
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
                room_ttl=settings.room_cache_ttl_seconds,
            )

        return StageSpec(MOVER, handle)

    try:
        return run_stages(settings, [build], process="mover")
    finally:
        docspace.close()
        store.close()


if __name__ == "__main__":
    sys.exit(main())
