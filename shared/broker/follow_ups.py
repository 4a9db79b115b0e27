"""Where a failed or deferred message goes next: retry ladder, parking queue or dead letter, decided without pika.

Plain functions over the message (its headers and attempt), the stage's queue names, the error and the clock; the
consumer loop (``consumer.py``) only publishes the ``FollowUp`` they return. Nothing here does I/O or reads a clock.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from shared.broker.topology import StageQueues
from shared.core.errors import Deferred, PermanentError, StoreOutage, TransientError
from shared.core.handling import InboundMessage, Outcome
from shared.core.headers import (
    ATTEMPT_HEADER,
    ATTEMPTS_HEADER,
    DEFERRALS_HEADER,
    ERROR_HEADER,
    FIRST_FAILURE_HEADER,
    ID_HEADERS,
    LAST_ERROR_HEADER,
    LAST_FAILURE_HEADER,
    LAST_REASON_HEADER,
    REASON_HEADER,
    ROUTING_KEY_HEADER,
    STAGE_HEADER,
    STORE_OUTAGE_SINCE_HEADER,
)
from shared.core.ids import small_count

# A message deferred this often is stuck behind something that never ends (a claim renewed for hours): from then
# on it is a transient failure, so the retry ladder bounds it and an operator sees it in the dead-letter queue.
MAX_DEFERRALS = 100
STORE_OUTAGE_TOO_LONG = "store_outage_too_long"
RETRIES_EXHAUSTED = "retries_exhausted"
BUG = "bug"
MAX_ERROR_TEXT = 2000

# The failures a handler raises on purpose; anything else it raises is a bug (the loop logs its traceback).
KNOWN_FAILURES = (StoreOutage, TransientError, Deferred, PermanentError)


@dataclass(frozen=True)
class Routes:
    """One stage's follow-up destinations, and how long it waits out an outage of its own store."""

    queues: StageQueues
    dead_letter_exchange: str
    store_outage_max_wait: float  # seconds; past it the message is dead-lettered as store_outage_too_long
    store_outage_recheck: float  # seconds a message waits in the parking queue before it looks again


@dataclass(frozen=True)
class FollowUp:
    """What to publish instead of the failed message (the same body and identity), and how to report it."""

    outcome: Outcome  # RETRIED, DEFERRED or DEAD_LETTERED
    reason: str  # as logged and counted (for a spent ladder: the last failure's; x-reason says why)
    exchange: str  # "" for a retry or parking queue, reached by its name
    routing_key: str
    headers: Mapping[str, Any]
    delay: float | None = None  # seconds until it is back in the work queue; None for a dead letter
    expiration_ms: int | None = None  # a per-message TTL: only parking sets one (retry queues have their own)
    details: Mapping[str, Any] = field(default_factory=dict)  # for the outcome's log line


def follow_up(
    error: Exception, message: InboundMessage, routes: Routes, *, ids: Mapping[str, Any], now: datetime
) -> FollowUp:
    """The follow-up for whatever the handler raised; ``ids`` are the ones it bound (event_id, file_id, ...)."""
    # StoreOutage before TransientError: our own store being away is not the invoice's fault, so it must not spend
    # the retry ladder (about 12 minutes) and end in the dead-letter queue for an operator to replay.
    if isinstance(error, StoreOutage):
        return wait_out_store(message, routes, error, ids=ids, now=now)
    if isinstance(error, TransientError):
        return retry(message, routes, error, ids=ids, now=now)
    if isinstance(error, Deferred):
        return defer(message, routes, error, ids=ids, now=now)
    if isinstance(error, PermanentError):
        return dead_letter(message, routes, error.reason, str(error), ids=ids, now=now)
    # Not a failure we know how to classify: a bug. Keep the message where an operator can replay it.
    return dead_letter(message, routes, BUG, f"{type(error).__name__}: {error}", ids=ids, now=now)


def retry(
    message: InboundMessage, routes: Routes, error: TransientError, *, ids: Mapping[str, Any], now: datetime
) -> FollowUp:
    """The next step of the retry ladder, or a dead letter (``retries_exhausted``) once the ladder is spent."""
    details = {"error": str(error)}
    step = routes.queues.retry_queue_for(message.attempt, error.retry_after)
    if step is None:
        spent = dead_letter(message, routes, RETRIES_EXHAUSTED, f"{error.reason}: {error}", ids=ids, now=now)
        # Logged and counted under the failure's own reason; the journal names the dead-letter queue's.
        return replace(spent, reason=error.reason, details={**details, "dead_letter_reason": RETRIES_EXHAUSTED})
    queue, delay = step
    stamp = _iso(now)
    headers = {
        **without_outage(message.headers),
        ATTEMPT_HEADER: message.attempt + 1,
        ROUTING_KEY_HEADER: message.routing_key,
        FIRST_FAILURE_HEADER: message.headers.get(FIRST_FAILURE_HEADER, stamp),
        LAST_FAILURE_HEADER: stamp,
        LAST_REASON_HEADER: error.reason,
        LAST_ERROR_HEADER: str(error)[:MAX_ERROR_TEXT],
    }
    return FollowUp(Outcome.RETRIED, error.reason, "", queue, headers, delay=delay, details=details)


def defer(
    message: InboundMessage, routes: Routes, deferral: Deferred, *, ids: Mapping[str, Any], now: datetime
) -> FollowUp:
    """Park the message for ``deferral.delay`` s (back at the same attempt); a retry past ``MAX_DEFERRALS``."""
    if deferrals(message.headers) >= MAX_DEFERRALS:
        error = TransientError(f"deferred {MAX_DEFERRALS} times: {deferral}", reason=deferral.reason)
        return retry(message, routes, error, ids=ids, now=now)
    headers = {
        **without_outage(message.headers),
        ROUTING_KEY_HEADER: message.routing_key,
        DEFERRALS_HEADER: deferrals(message.headers) + 1,
        LAST_REASON_HEADER: deferral.reason,
    }
    return _parked(routes, deferral.reason, headers, deferral.delay, {"deferred_s": round(deferral.delay, 1)})


def wait_out_store(
    message: InboundMessage, routes: Routes, error: StoreOutage, *, ids: Mapping[str, Any], now: datetime
) -> FollowUp:
    """Park the message until the store may be back; a dead letter once it has waited ``store_outage_max_wait``."""
    now_ms = round(now.timestamp() * 1000)
    # A header anyone can set: never trusted to parse; one from the future (a replica's clock ahead) is now.
    since_ms = min(small_count(message.headers.get(STORE_OUTAGE_SINCE_HEADER)) or now_ms, now_ms)
    waited = (now_ms - since_ms) / 1000
    max_wait = routes.store_outage_max_wait
    if waited >= max_wait:
        text = f"our own store was unavailable for {waited:.0f}s (STORE_OUTAGE_MAX_WAIT={max_wait:.0f}): {error}"
        spent = dead_letter(message, routes, STORE_OUTAGE_TOO_LONG, text, ids=ids, now=now)
        return replace(spent, details={"error": text, "store_outage_s": round(waited)})
    delay = max(0.001, min(routes.store_outage_recheck, max_wait - waited))
    headers = {
        **message.headers,
        ROUTING_KEY_HEADER: message.routing_key,
        STORE_OUTAGE_SINCE_HEADER: since_ms,
        LAST_REASON_HEADER: error.reason,
        LAST_ERROR_HEADER: str(error)[:MAX_ERROR_TEXT],
    }
    details = {"deferred_s": round(delay, 1), "store_outage_s": round(waited, 1), "error": str(error)}
    return _parked(routes, error.reason, headers, delay, details)


def dead_letter(
    message: InboundMessage,
    routes: Routes,
    reason: str,
    error: str,
    *,
    ids: Mapping[str, Any],
    now: datetime,
) -> FollowUp:
    """To the stage's dead-letter queue, with why, how often it was tried and the ids an operator looks it up by."""
    stamp = _iso(now)
    headers = {
        **message.headers,
        ROUTING_KEY_HEADER: message.routing_key,
        STAGE_HEADER: routes.queues.stage,
        REASON_HEADER: reason,
        ERROR_HEADER: error[:MAX_ERROR_TEXT],
        ATTEMPTS_HEADER: message.attempt,
        FIRST_FAILURE_HEADER: message.headers.get(FIRST_FAILURE_HEADER, stamp),
        LAST_FAILURE_HEADER: stamp,
        **{header: str(ids[key]) for key, header in ID_HEADERS.items() if ids.get(key) is not None},
    }
    # Through the dead-letter exchange, keyed by the work queue: the binding that leads to this stage's queue.
    return FollowUp(
        Outcome.DEAD_LETTERED,
        reason,
        routes.dead_letter_exchange,
        routes.queues.work,
        headers,
        details={"error": error},
    )


def deferrals(headers: Mapping[str, Any]) -> int:
    """How often the message was parked before; a header anyone can set, so never trusted to parse."""
    return small_count(headers.get(DEFERRALS_HEADER)) or 0


def without_outage(headers: Mapping[str, Any]) -> dict[str, Any]:
    """The headers without the store-outage clock: the store answered, so a later outage starts its own wait."""
    return {key: value for key, value in headers.items() if key != STORE_OUTAGE_SINCE_HEADER}


def _parked(routes: Routes, reason: str, headers: dict[str, Any], delay: float, details: dict[str, Any]) -> FollowUp:
    expiration_ms = max(1, round(delay * 1000))
    return FollowUp(
        Outcome.DEFERRED,
        reason,
        "",
        routes.queues.parked,
        headers,
        delay=delay,
        expiration_ms=expiration_ms,
        details=details,
    )


def _iso(now: datetime) -> str:
    return now.isoformat(timespec="seconds")
