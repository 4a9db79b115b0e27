"""The AMQP header names a failed message carries: written by the publisher and consumer loop, read by ``dlq``."""

from __future__ import annotations

# The publisher's: identifies a publish within its channel, so a basic.return can be matched to its confirm.
SEQ_HEADER = "x-publish-seq"

# The consumer loop's, on the retry ladder and in the parking queue.
ATTEMPT_HEADER = "x-attempt"  # 1 the first time; grows each time the retry ladder brings the message back
DEFERRALS_HEADER = "x-deferrals"
ROUTING_KEY_HEADER = "x-original-routing-key"  # retry and parking queues are reached by queue name
FIRST_FAILURE_HEADER = "x-first-failure"
LAST_FAILURE_HEADER = "x-last-failure"
LAST_REASON_HEADER = "x-last-reason"
LAST_ERROR_HEADER = "x-last-error"
# When this message first met an outage of our own store (epoch milliseconds): how long it has waited for it.
STORE_OUTAGE_SINCE_HEADER = "x-store-outage-since"

# The consumer loop's, on a dead letter.
STAGE_HEADER = "x-stage"
REASON_HEADER = "x-reason"
ERROR_HEADER = "x-error"
ATTEMPTS_HEADER = "x-attempts"
# The ids handlers bind to the log context, copied onto a dead letter so an operator can find the invoice.
ID_HEADERS = {"event_id": "x-event-id", "file_id": "x-file-id", "invoice_id": "x-invoice-id"}

# The ingress's, on every delivery it publishes: the ids a decision names before a handler has bound its own.
DELIVERY_ID_HEADERS = {"event_id": "x-docspace-event-id", "file_id": "x-docspace-file-id"}

# RabbitMQ's own, when a quorum queue dead-letters a message past its delivery limit.
DEATH_HEADER = "x-death"
BROKER_DEATH_HEADERS = (
    DEATH_HEADER,
    "x-delivery-count",
    "x-first-death-exchange",
    "x-first-death-queue",
    "x-first-death-reason",
    "x-last-death-exchange",
    "x-last-death-queue",
    "x-last-death-reason",
)

# ``invoice-pipeline dlq replay``'s: how often an operator has sent this message back, and when last.
REPLAYS_HEADER = "x-replays"
REPLAYED_AT_HEADER = "x-replayed-at"

# Headers that tell the story of the failure; a replayed message starts a new story (attempt 1, a fresh ladder).
FAILURE_HEADERS = frozenset(
    {
        SEQ_HEADER,
        ATTEMPT_HEADER,
        STORE_OUTAGE_SINCE_HEADER,  # else a replayed store_outage_too_long letter would meet its old clock
        STAGE_HEADER,
        REASON_HEADER,
        ERROR_HEADER,
        ATTEMPTS_HEADER,
        FIRST_FAILURE_HEADER,
        LAST_FAILURE_HEADER,
        LAST_REASON_HEADER,
        LAST_ERROR_HEADER,
        *ID_HEADERS.values(),
        *BROKER_DEATH_HEADERS,
    }
)
