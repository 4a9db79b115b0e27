"""The ingress's public HTTP side: ``POST /docspace/webhook`` takes a delivery; HEAD/GET answer DocSpace's URL check.

Nothing else is served on this port: metrics and health probes are on the internal ``METRICS_PORT``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import falcon
import orjson
import structlog
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from ingress.facts import read_facts
from ingress.intake import (
    Accepted,
    DeliveryIntake,
    IntakeOutcome,
    Publish,
    Refused,
    Rejected,
    Replayed,
    ResendStamp,
    Spooled,
)
from ingress.replay import RecentEvents
from ingress.settings import WEBHOOK_PATH
from ingress.signature import RESEND_SIGNATURE_HEADER, RESENT_AT_HEADER, SignatureVerifier
from ingress.spool import Spool
from shared.journal.metrics import DROPPED
from shared.journal.port import Journal, NoJournal
from shared.journal.record import Decision

SIGNATURE_HEADER = "x-docspace-signature-256"
INGRESS = "ingress"
log = structlog.get_logger("ingress")


@dataclass(frozen=True)
class IntakeHooks:
    """Who hears of the intake's work: the spool drainer (``on_spooled`` wakes it) and the decision journal."""

    on_spooled: Callable[[], None] | None = None
    journal: Journal = field(default_factory=NoJournal)


def journal_decision(outcome: IntakeOutcome, at: datetime) -> Decision | None:
    """The decision a delivery's outcome records; None for what is only counted (a bad signature, a 503 that
    DocSpace retries, a body too large to read): those name no file anyone could trace."""
    match outcome:
        case Accepted(facts=facts):
            verdict, reason, rule = "accepted", None, None
        case Spooled(facts=facts):
            verdict, reason, rule = "spooled", "broker_unavailable", "published from the spool when the broker is back"
        case Replayed(facts=facts):
            verdict, reason, rule = "replay_refused", "seen_recently", "one delivery per event id in the replay window"
        case _:
            return None
    return Decision.make(
        INGRESS,
        verdict,
        at=at,
        reason=reason,
        rule=rule,
        event_id=facts.event_id,
        file_id=facts.file_id,
    )


def stale_decision(body: bytes, at: datetime) -> Decision:
    """A stale delivery (createOn older than the replay window) is a decision about its file: refused, and why."""
    facts = read_facts(body)
    return Decision.make(
        INGRESS,
        "refused",
        at=at,
        reason="stale",
        rule="event.createOn older than the replay window; the reconciler recovers a delivery DocSpace logged",
        event_id=facts.event_id,
        file_id=facts.file_id,
    )


class IngressMetrics:
    """The ingress's series, on a registry of its own (served on ``METRICS_PORT``)."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        self.deliveries = Counter(
            "ingress_deliveries", "Webhook deliveries by outcome", ["outcome"], registry=self.registry
        )
        self.spool_depth = Gauge(
            "ingress_spool_depth", "Deliveries in the spool, waiting for the broker", registry=self.registry
        )
        self.spool_quarantined = Counter(
            "ingress_spool_quarantined",
            "Spool records moved aside because they cannot be published, or were damaged on disk",
            ["reason"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "ingress_request_seconds",
            "Time from reading a delivery to answering it",
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
            registry=self.registry,
        )


def http_answer(outcome: IntakeOutcome, *, retry_after: str) -> tuple[str, dict[str, Any], dict[str, str]]:
    """Status, JSON body and headers for each outcome: the one place outcomes become HTTP."""
    match outcome:
        case Accepted(facts=facts):
            return falcon.HTTP_200, {"status": "accepted", "event_id": facts.event_id}, {}
        case Replayed(facts=facts):
            return falcon.HTTP_200, {"status": "replayed", "event_id": facts.event_id}, {}
        case Spooled(facts=facts):
            return falcon.HTTP_202, {"status": "spooled", "event_id": facts.event_id}, {}
        case Refused():
            return falcon.HTTP_503, {"error": "broker unavailable, retry later"}, {"Retry-After": retry_after}
        case Rejected(name="bad_signature"):
            return falcon.HTTP_401, {"error": "invalid or missing signature"}, {}
        case Rejected(name="too_large"):
            return falcon.HTTP_413, {"error": "body too large"}, {}
        case Rejected(name="unpublishable"):
            return falcon.HTTP_422, {"error": "the delivery cannot be published"}, {}
        case Rejected(name="stale"):
            # DocSpace keeps this body in its delivery log: it tells whoever reads the log why.
            return falcon.HTTP_422, {"error": "stale delivery: event.createOn is older than the replay window"}, {}
    raise AssertionError(f"no HTTP answer for {outcome!r}")


class WebhookResource:
    """``POST /docspace/webhook``: 2xx only once the broker (or the spool) holds the exact bytes it was sent."""

    def __init__(
        self,
        intake: DeliveryIntake,
        *,
        max_body_bytes: int,
        retry_after_seconds: int,
        metrics: IngressMetrics,
        journal: Journal | None = None,
    ) -> None:
        self._intake = intake
        self._journal = journal if journal is not None else NoJournal()
        self._max_body_bytes = max_body_bytes
        self._retry_after = str(retry_after_seconds)
        self._metrics = metrics

    def on_head(self, _req: falcon.Request, resp: falcon.Response) -> None:
        # DocSpace sends HEAD when a webhook is created, updated or enabled, and refuses the webhook on non-2xx.
        resp.status = falcon.HTTP_200

    def on_get(self, _req: falcon.Request, resp: falcon.Response) -> None:
        resp.media = {"status": "ok", "hint": "DocSpace delivers webhooks here with POST"}

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        started = time.perf_counter()
        at = datetime.now(UTC)  # when it arrived: the journal orders the ingress's decision before the stages'
        try:
            body = self._read_body(req)
            if body is None:
                outcome: IntakeOutcome = Rejected("too_large", f"larger than {self._max_body_bytes} bytes")
            else:
                resend = ResendStamp(req.get_header(RESENT_AT_HEADER), req.get_header(RESEND_SIGNATURE_HEADER))
                outcome = self._intake.accept_delivery(
                    body, req.get_header(SIGNATURE_HEADER), remote=req.remote_addr, resend=resend
                )
            resp.status, resp.media, headers = http_answer(outcome, retry_after=self._retry_after)
            resp.set_headers(headers)
            self._metrics.deliveries.labels(outcome.name).inc()
            self._record(outcome, body, at)
        finally:
            self._metrics.latency.observe(time.perf_counter() - started)

    def _record(self, outcome: IntakeOutcome, body: bytes | None, at: datetime) -> None:
        """The delivery's decision for the journal, published without waiting; never the delivery's problem."""
        try:
            if isinstance(outcome, Rejected):
                # Only a verified body's staleness is a decision about a file; other rejections are counts.
                decision = stale_decision(body, at) if outcome.name == "stale" and body is not None else None
            else:
                decision = journal_decision(outcome, at)
            if decision is not None:
                self._journal.record(decision)
        except Exception as exc:
            DROPPED.labels("unrecordable").inc()
            log.warning("journal_record_unrecordable", error=f"{type(exc).__name__}: {exc}"[:300])

    def _read_body(self, req: falcon.Request) -> bytes | None:
        if req.content_length is not None and req.content_length > self._max_body_bytes:
            return None
        body: bytes = req.bounded_stream.read(self._max_body_bytes + 1)
        return None if len(body) > self._max_body_bytes else body


@dataclass(frozen=True)
class EndpointLimits:
    """How the endpoint answers under load: the largest body it reads, how long it waits for the broker's
    confirm, and the ``Retry-After`` it asks DocSpace for when it cannot take a delivery now."""

    max_body_bytes: int = 1024 * 1024
    confirm_timeout: float = 5.0
    retry_after_seconds: int = 5


def create_app(
    *,
    verifier: SignatureVerifier | None,
    publish: Publish,
    exchange: str,
    limits: EndpointLimits | None = None,
    metrics: IngressMetrics | None = None,
    recent: RecentEvents | None = None,
    spool: Spool | None = None,
    hooks: IntakeHooks | None = None,
) -> falcon.App[falcon.Request, falcon.Response]:
    hooks = hooks if hooks is not None else IntakeHooks()
    limits = limits or EndpointLimits()
    metrics = metrics if metrics is not None else IngressMetrics()
    if spool is not None:
        metrics.spool_depth.set_function(lambda: spool.depth)
    intake = DeliveryIntake(
        verifier=verifier,
        publish=publish,
        exchange=exchange,
        confirm_timeout=limits.confirm_timeout,
        recent=recent if recent is not None else RecentEvents(3600),
        spool=spool,
        on_spooled=hooks.on_spooled,
    )
    app = falcon.App()
    # orjson, as Falcon's docs suggest for speed: every delivery is answered with a small JSON document.
    app.resp_options.media_handlers[falcon.MEDIA_JSON] = falcon.media.JSONHandler(dumps=orjson.dumps)
    app.add_route(
        WEBHOOK_PATH,
        WebhookResource(
            intake,
            max_body_bytes=limits.max_body_bytes,
            retry_after_seconds=limits.retry_after_seconds,
            metrics=metrics,
            journal=hooks.journal,
        ),
    )
    return app
