"""Where a failed or deferred message goes next, decided on a fixed clock without a broker (``follow_ups``)."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from shared.broker.follow_ups import (
    MAX_DEFERRALS,
    MAX_ERROR_TEXT,
    RETRIES_EXHAUSTED,
    STORE_OUTAGE_TOO_LONG,
    FollowUp,
    Routes,
    follow_up,
)
from shared.broker.topology import Topology
from shared.core.errors import (
    BrokerUnavailable,
    Deferred,
    PermanentError,
    StoreOutage,
    TransientError,
    UnpublishableMessage,
)
from shared.core.handling import InboundMessage, Outcome

NOW = datetime(2026, 12, 6, 5, 30, 15, 250_000, tzinfo=UTC)
NOW_ISO = "2026-12-06T05:30:15+00:00"
NOW_MS = round(NOW.timestamp() * 1000)
TOPOLOGY = Topology("t.", retry_delays=(1, 5, 30))
QUEUES = TOPOLOGY.stage("mover")
ROUTES = Routes(QUEUES, TOPOLOGY.dead_letter_exchange, store_outage_max_wait=600.0, store_outage_recheck=30.0)
ORIGINAL = {"x-docspace-event-id": "e-1", "x-original-routing-key": "file.created"}


def _message(attempt: int = 1, **headers: Any) -> InboundMessage:
    return InboundMessage(
        body=b"{}",
        routing_key="invoice.detected",
        message_id="m-1",
        headers={**ORIGINAL, **headers},
        redelivered=False,
        attempt=attempt,
    )


def _decide(
    error: Exception, message: InboundMessage | None = None, *, ids: Mapping[str, Any] | None = None
) -> FollowUp:
    return follow_up(error, message or _message(), ROUTES, ids=ids or {}, now=NOW)


# ---- the retry ladder -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(("attempt", "step"), [(1, 0), (2, 1), (3, 2)])
def test_each_transient_failure_climbs_one_step_of_the_ladder(attempt: int, step: int) -> None:
    result = _decide(TransientError("DocSpace timed out", reason="docspace_timeout"), _message(attempt))

    assert (result.outcome, result.reason) == (Outcome.RETRIED, "docspace_timeout")
    assert (result.exchange, result.routing_key) == ("", QUEUES.retries[step])
    assert result.delay == QUEUES.delays[step]
    assert result.expiration_ms is None  # the delay queue's own TTL brings it back
    assert dict(result.details) == {"error": "DocSpace timed out"}
    assert dict(result.headers) == {
        **ORIGINAL,
        "x-attempt": attempt + 1,
        "x-original-routing-key": "invoice.detected",
        "x-first-failure": NOW_ISO,
        "x-last-failure": NOW_ISO,
        "x-last-reason": "docspace_timeout",
        "x-last-error": "DocSpace timed out",
    }


def test_a_retry_keeps_the_time_of_the_first_failure() -> None:
    result = _decide(TransientError("again"), _message(2, **{"x-first-failure": "2026-12-06T05:00:00+00:00"}))

    assert result.headers["x-first-failure"] == "2026-12-06T05:00:00+00:00"
    assert result.headers["x-last-failure"] == NOW_ISO


def test_retry_after_skips_to_the_first_step_that_waits_long_enough() -> None:
    result = _decide(TransientError("429", reason="rate_limited", retry_after=20))

    assert (result.routing_key, result.delay) == (QUEUES.retries[2], 30.0)
    assert result.headers["x-attempt"] == 2  # the attempt counts tries, not steps


def test_the_last_step_spent_dead_letters_as_retries_exhausted() -> None:
    result = _decide(TransientError("still down", reason="docspace_5xx"), _message(attempt=4))

    assert result.outcome is Outcome.DEAD_LETTERED
    assert result.reason == "docspace_5xx"  # logged and counted as the last failure; the letter says why it stopped
    assert (result.exchange, result.routing_key) == (TOPOLOGY.dead_letter_exchange, QUEUES.work)
    assert (result.delay, result.expiration_ms) == (None, None)
    assert result.headers["x-reason"] == RETRIES_EXHAUSTED
    assert result.headers["x-error"] == "docspace_5xx: still down"
    assert result.headers["x-attempts"] == 4
    # The journal records it under the letter's reason, so trace's `dlq replay --reason` selects it.
    assert dict(result.details) == {"error": "still down", "dead_letter_reason": RETRIES_EXHAUSTED}


def test_a_long_error_text_is_cut_in_the_headers_but_not_in_the_log_details() -> None:
    text = "x" * (MAX_ERROR_TEXT + 500)
    retried = _decide(TransientError(text))
    dead = _decide(PermanentError(text))

    assert len(retried.headers["x-last-error"]) == MAX_ERROR_TEXT
    assert len(dead.headers["x-error"]) == MAX_ERROR_TEXT
    assert retried.details["error"] == text


def test_a_broker_outage_met_by_the_handler_is_a_transient_failure_like_any_other() -> None:
    result = _decide(BrokerUnavailable("nacked"))

    assert (result.outcome, result.reason, result.routing_key) == (
        Outcome.RETRIED,
        "broker_unavailable",
        QUEUES.retries[0],
    )


# ---- deferrals ------------------------------------------------------------------------------------------------


def test_a_deferral_parks_the_message_for_the_time_asked_at_the_same_attempt() -> None:
    result = _decide(Deferred("claim held elsewhere", delay=12.34, reason="claimed"), _message(attempt=2))

    assert (result.outcome, result.reason) == (Outcome.DEFERRED, "claimed")
    assert (result.exchange, result.routing_key) == ("", QUEUES.parked)
    assert (result.delay, result.expiration_ms) == (12.34, 12_340)
    assert dict(result.details) == {"deferred_s": 12.3}
    assert dict(result.headers) == {
        **ORIGINAL,
        "x-original-routing-key": "invoice.detected",
        "x-deferrals": 1,
        "x-last-reason": "claimed",
    }


def test_a_deferral_counts_on_from_the_header_and_never_expires_in_under_a_millisecond() -> None:
    result = _decide(Deferred("quota", delay=0.0001, reason="quota"), _message(**{"x-deferrals": 7}))

    assert result.headers["x-deferrals"] == 8
    assert result.expiration_ms == 1


@pytest.mark.parametrize("garbage", ["many", -3, 10**30, None])
def test_a_deferrals_header_that_is_not_a_small_count_counts_as_none(garbage: Any) -> None:
    result = _decide(Deferred("claim", delay=1), _message(**{"x-deferrals": garbage}))

    assert (result.outcome, result.headers["x-deferrals"]) == (Outcome.DEFERRED, 1)


def test_the_last_allowed_deferral_is_still_parked() -> None:
    result = _decide(Deferred("claim", delay=1), _message(**{"x-deferrals": MAX_DEFERRALS - 1}))

    assert (result.outcome, result.headers["x-deferrals"]) == (Outcome.DEFERRED, MAX_DEFERRALS)


def test_a_message_deferred_too_often_goes_up_the_retry_ladder() -> None:
    result = _decide(Deferred("claim renewed", delay=1, reason="claimed"), _message(**{"x-deferrals": MAX_DEFERRALS}))

    assert (result.outcome, result.reason, result.routing_key) == (Outcome.RETRIED, "claimed", QUEUES.retries[0])
    assert result.headers["x-last-error"] == f"deferred {MAX_DEFERRALS} times: claim renewed"
    assert result.headers["x-deferrals"] == MAX_DEFERRALS  # a retry is not a parking: the count stays
    assert dict(result.details) == {"error": f"deferred {MAX_DEFERRALS} times: claim renewed"}


def test_a_message_deferred_too_often_on_its_last_attempt_is_dead_lettered() -> None:
    message = _message(attempt=4, **{"x-deferrals": MAX_DEFERRALS + 5})
    result = _decide(Deferred("claim renewed", delay=1, reason="claimed"), message)

    assert (result.outcome, result.reason) == (Outcome.DEAD_LETTERED, "claimed")
    assert result.headers["x-reason"] == RETRIES_EXHAUSTED
    assert result.headers["x-error"] == f"claimed: deferred {MAX_DEFERRALS} times: claim renewed"


# ---- our own store away ---------------------------------------------------------------------------------------


def test_a_first_store_outage_starts_the_clock_and_parks_the_message_for_one_recheck() -> None:
    result = _decide(StoreOutage("redis refused"), _message(attempt=3))

    assert (result.outcome, result.reason) == (Outcome.DEFERRED, "store_unavailable")
    assert (result.exchange, result.routing_key) == ("", QUEUES.parked)
    assert (result.delay, result.expiration_ms) == (30.0, 30_000)
    assert dict(result.details) == {"deferred_s": 30.0, "store_outage_s": 0.0, "error": "redis refused"}
    assert dict(result.headers) == {
        **ORIGINAL,
        "x-original-routing-key": "invoice.detected",
        "x-store-outage-since": NOW_MS,
        "x-last-reason": "store_unavailable",
        "x-last-error": "redis refused",
    }  # no x-attempt: waiting for our store spends no step of the ladder


def test_a_store_outage_keeps_its_clock_and_waits_no_longer_than_the_bound() -> None:
    since = NOW_MS - 590_000  # 590 s of the 600 s bound spent
    result = _decide(StoreOutage("still away"), _message(**{"x-store-outage-since": since}))

    assert result.outcome is Outcome.DEFERRED
    assert result.headers["x-store-outage-since"] == since
    assert (result.delay, result.expiration_ms) == (10.0, 10_000)
    assert result.details["store_outage_s"] == 590.0


def test_a_store_outage_clock_from_the_future_counts_from_now() -> None:
    result = _decide(StoreOutage("away"), _message(**{"x-store-outage-since": NOW_MS + 3_600_000}))

    assert (result.headers["x-store-outage-since"], result.delay) == (NOW_MS, 30.0)


@pytest.mark.parametrize("garbage", ["yesterday", -1, 10**30])
def test_a_store_outage_clock_that_is_not_a_small_count_starts_anew(garbage: Any) -> None:
    result = _decide(StoreOutage("away"), _message(**{"x-store-outage-since": garbage}))

    assert result.headers["x-store-outage-since"] == NOW_MS


@pytest.mark.parametrize("waited_s", [600, 601, 86_400])
def test_a_store_outage_waited_out_to_its_bound_dead_letters_the_message(waited_s: int) -> None:
    since = NOW_MS - waited_s * 1000
    result = _decide(StoreOutage("redis refused"), _message(attempt=2, **{"x-store-outage-since": since}))

    assert (result.outcome, result.reason) == (Outcome.DEAD_LETTERED, STORE_OUTAGE_TOO_LONG)
    assert (result.exchange, result.routing_key) == (TOPOLOGY.dead_letter_exchange, QUEUES.work)
    text = f"our own store was unavailable for {waited_s}s (STORE_OUTAGE_MAX_WAIT=600): redis refused"
    assert result.headers["x-reason"] == STORE_OUTAGE_TOO_LONG
    assert result.headers["x-error"] == text
    assert dict(result.details) == {"error": text, "store_outage_s": waited_s}


@pytest.mark.parametrize(
    "error",
    [TransientError("timeout"), Deferred("claimed", delay=5)],
    ids=["retry", "deferral"],
)
def test_another_failure_drops_the_store_outage_clock(error: Exception) -> None:
    # The store answered this time: a later outage starts its own wait instead of inheriting this one's.
    result = _decide(error, _message(**{"x-store-outage-since": NOW_MS - 500_000}))

    assert "x-store-outage-since" not in result.headers


def test_a_dead_letter_keeps_the_store_outage_clock_as_evidence() -> None:
    result = _decide(PermanentError("bad"), _message(**{"x-store-outage-since": NOW_MS - 5_000}))

    assert result.headers["x-store-outage-since"] == NOW_MS - 5_000


# ---- dead letters ---------------------------------------------------------------------------------------------


def test_a_permanent_failure_is_dead_lettered_at_once_with_the_ids_the_handler_bound() -> None:
    ids = {"stage": "mover", "message_id": "m-1", "event_id": "e-1", "file_id": 42, "invoice_id": None}
    result = _decide(PermanentError("no such file", reason="docspace_not_found"), _message(attempt=2), ids=ids)

    assert (result.outcome, result.reason) == (Outcome.DEAD_LETTERED, "docspace_not_found")
    assert (result.exchange, result.routing_key) == (TOPOLOGY.dead_letter_exchange, QUEUES.work)
    assert dict(result.details) == {"error": "no such file"}
    assert dict(result.headers) == {
        **ORIGINAL,
        "x-original-routing-key": "invoice.detected",
        "x-stage": "mover",
        "x-reason": "docspace_not_found",
        "x-error": "no such file",
        "x-attempts": 2,
        "x-first-failure": NOW_ISO,
        "x-last-failure": NOW_ISO,
        "x-event-id": "e-1",
        "x-file-id": "42",  # a header, so text; an id not bound (None) is left out, other context never copied
    }


def test_a_subclass_of_a_permanent_failure_keeps_its_own_reason() -> None:
    result = _decide(UnpublishableMessage("header too long", reason="unpublishable"))

    assert (result.outcome, result.headers["x-reason"]) == (Outcome.DEAD_LETTERED, "unpublishable")


def test_anything_else_a_handler_raises_is_a_bug_and_dead_lettered() -> None:
    result = _decide(KeyError("payload"), _message(attempt=3, **{"x-first-failure": "earlier"}))

    assert (result.outcome, result.reason) == (Outcome.DEAD_LETTERED, "bug")
    assert result.headers["x-reason"] == "bug"
    assert result.headers["x-error"] == "KeyError: 'payload'"
    assert result.headers["x-first-failure"] == "earlier"
    assert dict(result.details) == {"error": "KeyError: 'payload'"}


# ---- the module itself ----------------------------------------------------------------------------------------


def test_a_follow_up_is_frozen() -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        _decide(PermanentError("bad")).routing_key = "elsewhere"  # type: ignore[misc]


def test_the_same_inputs_give_the_same_follow_up() -> None:
    message = _message(2, **{"x-deferrals": 3})

    assert _decide(TransientError("a"), message) == _decide(TransientError("a"), message)
    assert _decide(TransientError("a"), message, ids={}) != follow_up(
        TransientError("a"), message, ROUTES, ids={}, now=NOW + timedelta(seconds=1)
    )


def test_the_decision_loads_neither_pika_nor_a_logger() -> None:
    # Pure: what a fresh interpreter has loaded after importing it (the topology names pika only for type checks).
    code = "import json, sys, shared.broker.follow_ups; print(json.dumps(sorted(sys.modules)))"
    loaded = json.loads(subprocess.run([sys.executable, "-c", code], check=True, capture_output=True).stdout)

    assert not [name for name in loaded if name.split(".")[0] in {"pika", "structlog", "requests", "redis"}]
