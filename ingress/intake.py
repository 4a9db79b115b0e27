"""The ingress's decision for one delivery, free of HTTP: verify it, then publish, spool, refuse or reject it.

``DeliveryIntake.accept_delivery`` returns one of five outcomes; ``ingress/app.py`` maps each to an HTTP answer
and a metric in one place. The outcome's ``name`` is the ``outcome`` label of ``ingress_deliveries_total``.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Literal

import structlog

from ingress.facts import DeliveryFacts, read_facts
from ingress.replay import RecentEvents
from ingress.signature import SignatureVerifier, resend_signed_bytes
from ingress.spool import Spool, SpoolFull
from shared.core.errors import BrokerUnavailable, UnpublishableMessage
from shared.core.outgoing import OutgoingMessage

log = structlog.get_logger("ingress")

Publish = Callable[[OutgoingMessage], "Future[None]"]


@dataclass(frozen=True)
class Accepted:
    """The broker confirmed the delivery."""

    facts: DeliveryFacts
    name: Literal["accepted"] = "accepted"


@dataclass(frozen=True)
class Spooled:
    """The broker could not take it now; it is on disk and will be published when the broker is back."""

    facts: DeliveryFacts
    name: Literal["spooled"] = "spooled"


@dataclass(frozen=True)
class Replayed:
    """This event id was accepted a short while ago: not published again."""

    facts: DeliveryFacts
    name: Literal["replayed"] = "replayed"


@dataclass(frozen=True)
class Refused:
    """Not accepted, for now: the broker is away and there is no spool, or no room in it. DocSpace retries."""

    facts: DeliveryFacts
    error: str
    name: Literal["broker_unavailable"] = "broker_unavailable"


@dataclass(frozen=True)
class Rejected:
    """Not accepted, for what it is: retrying the same bytes cannot help."""

    name: Literal["bad_signature", "too_large", "unpublishable", "stale"]
    error: str


IntakeOutcome = Accepted | Spooled | Replayed | Refused | Rejected


@dataclass(frozen=True)
class ResendStamp:
    """An operator's resend of a saved delivery: when (unix seconds, as sent) and its signature (see signature.py)."""

    resent_at: str | None
    signature: str | None


class DeliveryIntake:
    """Decides what happens to one delivery: nothing is answered 2xx before the broker or the spool has it."""

    def __init__(
        self,
        *,
        verifier: SignatureVerifier | None,
        publish: Publish,
        exchange: str,
        confirm_timeout: float,
        recent: RecentEvents,
        spool: Spool | None = None,
        on_spooled: Callable[[], None] | None = None,
    ) -> None:
        self._verifier = verifier
        self._publish = publish
        self._exchange = exchange
        self._confirm_timeout = confirm_timeout
        self._recent = recent
        self._spool = spool
        self._on_spooled = on_spooled

    def accept_delivery(
        self, body: bytes, signature: str | None, *, remote: str | None = None, resend: ResendStamp | None = None
    ) -> IntakeOutcome:
        if self._verifier is not None and not self._verifier.verify(body, signature):
            log.warning(
                "delivery_rejected",
                reason="bad_signature",
                has_header=signature is not None,
                size=len(body),
                remote=remote,
            )
            return Rejected("bad_signature", "invalid or missing signature")

        facts = read_facts(body)
        if facts.event_id is not None and self._recent.seen(facts.event_id):
            log.info("delivery_replayed", **facts.log_fields())
            return Replayed(facts)
        if self._recent.too_old(facts.created_on) and not self._resent_lately(body, resend):
            # Past the window the memory above may have forgotten the id (or restarted), so the age decides. Not a
            # 2xx: nothing holds this delivery, and a DocSpace delivery refused to the end stays "failed" in its
            # log, where the reconciler finds it and publishes it (a late DocSpace backlog, a manual redelivery,
            # which keeps the old createOn). A captured delivery replayed from outside has no such row.
            assert facts.created_on is not None
            log.warning(
                "delivery_rejected",
                reason="stale",
                created_on=facts.created_on.isoformat(),
                window_seconds=self._recent.window_seconds,
                remote=remote,
                **facts.log_fields(),
            )
            return Rejected("stale", "event.createOn is older than the replay window")
        message = facts.message(body, exchange=self._exchange, verified=self._verifier is not None)
        if self._spool is not None and self._spool.depth > 0:
            # Deliveries wait behind the backlog, so the spool drains in arrival order.
            return self._spool_or_refuse(message, facts, "spool_backlog")
        try:
            self._publish(message).result(timeout=self._confirm_timeout)
        except UnpublishableMessage as exc:
            log.error("delivery_not_accepted", reason="unpublishable", error=str(exc), **facts.log_fields())
            return Rejected("unpublishable", "the delivery cannot be published")
        except (BrokerUnavailable, TimeoutError) as exc:
            if self._spool is not None:
                return self._spool_or_refuse(message, facts, str(exc) or "broker_unavailable")
            return self._refuse(facts, str(exc) or "the broker did not confirm in time")
        self._remember(facts)
        log.info("delivery_accepted", **facts.log_fields())
        return Accepted(facts)

    def _resent_lately(self, body: bytes, resend: ResendStamp | None) -> bool:
        if resend is None or resend.resent_at is None:
            return False
        stamp = resend.resent_at.strip()
        if not (stamp.isascii() and stamp.isdigit() and len(stamp) <= 12) or not self._recent.recent(int(stamp)):
            return False
        if self._verifier is not None and not self._verifier.verify(resend_signed_bytes(body, stamp), resend.signature):
            return False
        log.info("delivery_resent", resent_at=int(stamp))
        return True

    def _spool_or_refuse(self, message: OutgoingMessage, facts: DeliveryFacts, why: str) -> Spooled | Refused:
        assert self._spool is not None
        try:
            self._spool.append(message)
        except SpoolFull as exc:
            return self._refuse(facts, f"{why}; {exc}")
        self._remember(facts)
        if self._on_spooled is not None:
            self._on_spooled()
        log.warning("delivery_spooled", why=why, spool_depth=self._spool.depth, **facts.log_fields())
        return Spooled(facts)

    def _refuse(self, facts: DeliveryFacts, error: str) -> Refused:
        log.error("delivery_not_accepted", reason="broker_unavailable", error=error, **facts.log_fields())
        return Refused(facts, error)

    def _remember(self, facts: DeliveryFacts) -> None:
        # Only once accepted: a retry of a delivery that got no 2xx carries the same id and must go through.
        if facts.event_id is not None:
            self._recent.remember(facts.event_id)
