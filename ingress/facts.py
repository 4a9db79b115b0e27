"""What the ingress reads from a verified body to route and trace it, already fitted to AMQP's limits.

It never rejects a delivery: a body it cannot read (not JSON, no trigger, a field the peek chokes on) is
published all the same, routed as ``unknown``, and the classifier dead-letters it with its reason.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import structlog

from ingress.fields import fitting, int64, utf8_length
from shared.core.outgoing import OutgoingMessage
from shared.docspace.delivery import InvalidDelivery, peek_delivery

log = structlog.get_logger("ingress")

UNKNOWN_TRIGGER = "unknown"
# Triggers are short words like "file.uploaded"; anything longer (in UTF-8 bytes, as AMQP counts) is routed as
# "unknown", well inside the 255-byte routing key limit.
MAX_TRIGGER_BYTES = 100
# The ingress publishes with its own content type: the request's header is not covered by the signature.
CONTENT_TYPE = "application/json"


@dataclass(frozen=True)
class DeliveryFacts:
    """Just enough of a delivery to route and trace it. Ids that do not fit an AMQP short string are left out."""

    trigger: str
    event_id: str | None = None
    file_id: str | None = None
    webhook_id: str | None = None
    retry_count: int = 0
    created_on: datetime | None = None

    def message(self, body: bytes, *, exchange: str, verified: bool) -> OutgoingMessage:
        """The message the ingress publishes: the verified bytes, never a re-serialised copy."""
        return OutgoingMessage(
            exchange=exchange,
            routing_key=self.trigger,
            body=body,
            message_id=self.event_id or f"no-event-id-{uuid.uuid4()}",
            content_type=CONTENT_TYPE,
            headers=self._headers(verified),
        )

    def _headers(self, verified: bool) -> dict[str, Any]:
        headers: dict[str, Any] = {
            "x-received-at": datetime.now(UTC).isoformat(),
            "x-docspace-trigger": self.trigger,
            "x-docspace-retry-count": self.retry_count,
            "x-signature-verified": verified,
        }
        for name, value in (
            ("x-docspace-event-id", self.event_id),
            ("x-docspace-file-id", self.file_id),
            ("x-docspace-webhook-id", self.webhook_id),
        ):
            if value is not None:
                headers[name] = value
        return headers

    def log_fields(self) -> dict[str, Any]:
        # The same keys the consumers bind, so one grep follows a delivery through every process.
        return {
            "event_id": self.event_id,
            "file_id": self.file_id,
            "trigger": self.trigger,
            "retry_count": self.retry_count,
        }


def read_facts(body: bytes) -> DeliveryFacts:
    try:
        delivery = peek_delivery(body)
        facts = DeliveryFacts(
            _routable(delivery.trigger),
            event_id=fitting(delivery.event_id),
            file_id=fitting(delivery.file_id),
            webhook_id=fitting(delivery.webhook_id),
            retry_count=int64(delivery.retry_count),
            created_on=delivery.created_on,
        )
    except InvalidDelivery as exc:
        log.info("delivery_unreadable", error=str(exc)[:200], size=len(body))
        return DeliveryFacts(UNKNOWN_TRIGGER)
    except Exception as exc:
        # The body is signed, so it came from DocSpace (or from someone who holds the secret): whatever the peek
        # trips over, the delivery is still published (as "unknown") rather than answered 500 and lost.
        log.warning("delivery_unreadable", error=f"{type(exc).__name__}: {str(exc)[:200]}", size=len(body))
        return DeliveryFacts(UNKNOWN_TRIGGER)
    if delivery.event_id is not None and facts.event_id is None:
        log.warning("event_id_not_kept", reason="longer than an AMQP short string", length=len(delivery.event_id))
    return facts


def _routable(trigger: str | None) -> str:
    length = utf8_length(trigger) if trigger else None
    return trigger if trigger and length is not None and length <= MAX_TRIGGER_BYTES else UNKNOWN_TRIGGER
