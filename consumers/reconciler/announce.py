"""The reconciler's way into the pipeline: a confirmed, marked publish of a delivery to ``docspace.events``."""

from __future__ import annotations

from datetime import UTC, datetime

from consumers.reconciler.model import Announcement
from consumers.reconciler.ports import Announce
from shared.broker.publisher import Publisher
from shared.core.outgoing import OutgoingMessage


def broker_announcer(publisher: Publisher, exchange: str) -> Announce:
    """Publish each announcement like the ingress publishes a delivery (routing key = trigger), and wait for the
    broker's confirm. No ``x-received-at``: the ingress never saw it, so it counts in no end-to-end latency."""

    def announce(item: Announcement) -> None:
        headers: dict[str, object] = {
            "x-recovered-by": "reconciler",
            "x-recovery-source": item.source,
            "x-recovered-at": datetime.now(UTC).isoformat(),
            "x-docspace-trigger": item.trigger,
            "x-docspace-event-id": item.event_id,
            "x-signature-verified": False,  # read from DocSpace's API with our key, not received signed
        }
        if item.file_id is not None:
            headers["x-docspace-file-id"] = item.file_id
        if item.log_id is not None:
            headers["x-docspace-log-id"] = item.log_id
        publisher.publish_and_wait(
            OutgoingMessage(
                exchange=exchange,
                routing_key=item.trigger,
                body=item.body,
                message_id=f"{item.source}:{item.event_id}",
                headers=headers,
            )
        )

    return announce
