"""What a stage's handler receives and returns, in plain Python: the vocabulary of the consumer loop and a stage."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any


@dataclass(frozen=True)
class InboundMessage:
    """One AMQP message as a stage sees it: no channel, no delivery tag."""

    body: bytes
    routing_key: str
    message_id: str | None
    headers: Mapping[str, Any]
    redelivered: bool
    attempt: int  # 1 the first time; grows each time the retry ladder brings it back


class Outcome(StrEnum):
    """How one message ended, as logged (``outcome``) and counted (``stage_messages{outcome=…}``).

    The values are the words dashboards, alerts and log queries already use: renaming one is a breaking change.
    """

    # What a handler returns.
    DONE = "done"  # handled, nothing more specific to say
    ACCEPTED = "accepted"  # classifier: an invoice, announced as InvoiceDetected
    RECEIVED = "received"  # mover: moved (or found already moved) and announced as InvoiceReceived
    EMAILED = "emailed"  # notifier: the manager's e-mail was sent
    PIPELINE_CALLED = "pipeline_called"  # notifier: the pipeline accepted the invoice
    IGNORED = "ignored"  # nothing to do for this message (a duplicate, not an invoice...): ``reason`` says why
    SKIPPED = "skipped"  # this side is switched off in the configuration
    # What the consumer loop decides when the handler raises.
    RETRIED = "retried"  # a transient failure: on the retry ladder
    DEFERRED = "deferred"  # must wait (a claim held elsewhere, a spent quota): in the parking queue
    DEAD_LETTERED = "dead_lettered"  # a permanent failure, a bug, or the retry ladder spent
    REQUEUED = "requeued"  # the broker could not take it anywhere: given back to the broker to redeliver


@dataclass(frozen=True)
class Handled:
    """What a handler did, for the one log line per message: ``outcome`` says what, ``reason`` says why."""

    outcome: Outcome = Outcome.DONE
    reason: str | None = None
    details: Mapping[str, Any] = field(default_factory=dict)


# A stage's handler: returns what it did (None means Handled()), or raises the failure vocabulary of shared.core.errors.
Handler = Callable[[InboundMessage], Handled | None]
