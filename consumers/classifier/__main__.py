"""Composition root of the classifier: ``python -m consumers.classifier``."""

from __future__ import annotations

import sys
from functools import partial

from consumers.classifier.file_reads import SharedFileReads
from consumers.classifier.handler import classify_delivery
from consumers.classifier.settings import ClassifierSettings
from shared.broker.emitter import emitter
from shared.broker.publisher import Publisher
from shared.broker.topology import CLASSIFIER, Topology
from shared.core.handling import Handled, InboundMessage
from shared.core.rules import RulesError
from shared.docspace.delivery import parse_datetime
from shared.runtime.process import StageSpec, run_stages
from shared.runtime.runner import Runtime, configuration, run_process
from shared.runtime.wiring import docspace_client, idempotency_store


def main() -> int:
    return run_process("classifier", ClassifierSettings, _run)


def _run(runtime: Runtime, settings: ClassifierSettings) -> int:
    rules = configuration(settings.rules, RulesError)
    docspace = runtime.closing(docspace_client(settings, pool_size=settings.concurrency))
    files = SharedFileReads(docspace)  # the two webhooks of one API upload make one DocSpace read
    store = runtime.closing(idempotency_store(settings))
    topology = Topology.from_settings(settings)

    def build(publisher: Publisher) -> StageSpec:
        classify = partial(
            classify_delivery,
            files=files,
            rules=rules,
            triggers=frozenset(settings.classifier_triggers),
            emit=emitter(publisher, topology.detected_exchange),
            store=store,
            lease_seconds=settings.claim_lease_seconds,
        )

        def handle(message: InboundMessage) -> Handled:
            return classify(message.body, delivered_at=parse_datetime(message.headers.get("x-received-at")))

        return StageSpec(CLASSIFIER, handle)

    return run_stages(settings, [build], process="classifier", runtime=runtime)


if __name__ == "__main__":
    sys.exit(main())
