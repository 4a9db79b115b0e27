"""The failure vocabulary every stage speaks (permanent errors dead-letter, transient ones retry), and publishing's."""

from __future__ import annotations


class StageError(Exception):
    """A failure a stage knows how to classify.

    ``reason`` is a short machine-readable word (``docspace_not_found``, ``invalid_message``...) that ends up in
    the dead-letter headers and in metrics; the exception text is the human-readable detail.
    """

    reason: str = "error"

    def __init__(self, message: str, *, reason: str | None = None) -> None:
        super().__init__(message)
        if reason is not None:
            self.reason = reason


class PermanentError(StageError):
    """Retrying cannot help (bad input, 4xx, a business rule): dead-letter at once."""

    reason = "permanent"


class TransientError(StageError):
    """The same work may succeed later (timeout, 5xx, 429): retry with a delay, honouring ``retry_after``."""

    reason = "transient"

    def __init__(self, message: str, *, reason: str | None = None, retry_after: float | None = None) -> None:
        super().__init__(message, reason=reason)
        self.retry_after = retry_after


class StoreOutage(TransientError):
    """Our own store (idempotency claims, checkpoints, the shared rate limit) did not answer: not the message's fault.

    The consumer loop does not spend the retry ladder on it: the message waits in the stage's parking queue and comes
    back until the store answers again, for at most ``STORE_OUTAGE_MAX_WAIT`` (then it is dead-lettered with reason
    ``store_outage_too_long``). Everywhere else it is a transient error like any other.
    """

    reason = "store_unavailable"


class Deferred(StageError):
    """Not a failure: the message must wait ``delay`` seconds and then be handled as if it had just arrived.

    For a claim a live worker holds (it comes back when the lease would run out) and a spent daily quota (it comes
    back when the quota resets). It waits in the stage's parking queue in the broker, never in memory, and does
    not spend an attempt of the retry ladder.
    """

    reason = "deferred"

    def __init__(self, message: str, *, delay: float, reason: str | None = None) -> None:
        super().__init__(message, reason=reason)
        self.delay = delay


class BrokerUnavailable(TransientError):
    """The broker could not take or confirm a message (down, blocked, nack, unroutable)."""

    reason = "broker_unavailable"


class MessageUnroutable(BrokerUnavailable):
    """No queue is bound for the routing key; with ``mandatory`` that is a failure, not a silent drop."""

    reason = "unroutable"


class MessageNacked(BrokerUnavailable):
    """The broker nacked this message (a queue refusing it, an internal error): it did not take it, this once."""


class MessageRefused(BrokerUnavailable):
    """The broker closed the channel with PRECONDITION_FAILED while this message was in flight.

    Every message in flight on that channel fails with it, so one refusal does not prove this message is the
    culprit: a caller that retries (the spool drainer) decides after a few refusals of the same message.
    """

    reason = "broker_refused"


class UnpublishableMessage(PermanentError):
    """pika cannot encode this message (a short string over 255 bytes, an integer beyond 64 bits, an odd type).

    Nothing of it was sent: pika marshals a message's frames before writing any. Retrying cannot help.
    """

    reason = "unpublishable"
