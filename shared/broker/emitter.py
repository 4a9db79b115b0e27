"""A stage's output port: publish one business event and return only once the broker has confirmed it."""

from __future__ import annotations

from collections.abc import Callable

from shared.broker.publisher import Publisher
from shared.core.events import InvoiceDetected, InvoiceReceived
from shared.core.outgoing import OutgoingMessage

Event = InvoiceDetected | InvoiceReceived


def emitter(publisher: Publisher, exchange: str) -> Callable[[Event], None]:
    """Events are routed by the client's name, so a downstream system can bind to just the clients it cares about."""

    def emit(event: Event) -> None:
        publisher.publish_and_wait(
            OutgoingMessage(
                exchange=exchange,
                routing_key=event.client,
                body=event.to_bytes(),
                message_id=event.invoice_id,
                type=type(event).__name__,
            )
        )

    return emit
