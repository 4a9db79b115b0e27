"""Composition root of the mover: ``python -m consumers.mover``."""

from __future__ import annotations

import sys

from consumers.mover.handler import move_invoice
from consumers.mover.settings import MoverSettings
from shared.broker.emitter import emitter
from shared.broker.publisher import Publisher
from shared.broker.topology import MOVER, Topology
from shared.core.events import InvoiceDetected, decode
from shared.core.handling import Handled, InboundMessage
from shared.runtime.process import StageSpec, run_stages
from shared.runtime.runner import Runtime, run_process
from shared.runtime.wiring import docspace_client, idempotency_store


def main() -> int:
    return run_process("mover", MoverSettings, _run)


def _run(runtime: Runtime, settings: MoverSettings) -> int:
    docspace = runtime.closing(
        docspace_client(settings, pool_size=settings.concurrency, move_deadline=settings.move_deadline)
    )
    store = runtime.closing(idempotency_store(settings))
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

    return run_stages(settings, [build], process="mover", runtime=runtime)


if __name__ == "__main__":
    sys.exit(main())
