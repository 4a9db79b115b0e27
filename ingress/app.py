"""The ingress's Falcon app: POST verifies and publishes a delivery; HEAD/GET answer DocSpace's URL check."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import falcon
import orjson
import structlog
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from ingress.settings import WEBHOOK_PATH
from ingress.signature import SignatureVerifier
from ingress.spool import Spool, SpoolFull
from shared.delivery import InvalidDelivery, peek_delivery
from shared.errors import BrokerUnavailable
from shared.outgoing import OutgoingMessage

log = structlog.get_logger("ingress")

Publish = Callable[[OutgoingMessage], "Future[None]"]

UNKNOWN_TRIGGER = "unknown"
# A topic routing key is at most 255 bytes; anything odd is routed as "unknown" and dead-lettered downstream.
_MAX_TRIGGER_LENGTH = 100


class IngressMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
        self.deliveries = Counter("ingress_deliveries", "Webhook deliveries by outcome", ["outcome"], registry=registry)
        self.spool_depth = Gauge(
            "ingress_spool_depth", "Deliveries in the spool, waiting for the broker", registry=registry
        )
        self.latency = Histogram(
            "ingress_request_seconds",
            "Time from reading a delivery to answering it",
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
            registry=registry,
        )


class WebhookResource:
    """``POST /docspace/webhook``: 2xx only once the broker has confirmed the exact bytes it was sent."""

    def __init__(
        self,
        *,
        verifier: SignatureVerifier | None,
        publish: Publish,
        exchange: str,
        max_body_bytes: int,
        confirm_timeout: float,
        retry_after_seconds: int,
        metrics: IngressMetrics,
        spool: Spool | None = None,
        on_spooled: Callable[[], None] | None = None,
    ) -> None:
        self._spool = spool
        self._on_spooled = on_spooled
        self._verifier = verifier
        self._publish = publish
        self._exchange = exchange
        self._max_body_bytes = max_body_bytes
        self._confirm_timeout = confirm_timeout
        self._retry_after = str(retry_after_seconds)
        self._metrics = metrics

    def on_head(self, _req: falcon.Request, resp: falcon.Response) -> None:
        # DocSpace sends HEAD when a webhook is created, updated or enabled, and refuses the webhook on non-2xx.
        resp.status = falcon.HTTP_200

    def on_get(self, _req: falcon.Request, resp: falcon.Response) -> None:
        resp.media = {"status": "ok", "hint": "DocSpace delivers webhooks here with POST"}

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        started = time.perf_counter()
        try:
            self._handle(req, resp)
        finally:
            self._metrics.latency.observe(time.perf_counter() - started)

    def _handle(self, req: falcon.Request, resp: falcon.Response) -> None:
        body = self._read_body(req)
        if body is None:
            self._answer(resp, falcon.HTTP_413, "too_large", {"error": "body too large"})
            return
        if self._verifier is not None and not self._verifier.verify(body, req.get_header("x-docspace-signature-256")):
            log.warning(
                "delivery_rejected",
                reason="bad_signature",
                has_header=req.get_header("x-docspace-signature-256") is not None,
                size=len(body),
                remote=req.remote_addr,
            )
            self._answer(resp, falcon.HTTP_401, "bad_signature", {"error": "invalid or missing signature"})
            return

        facts = _peek(body)
        message = OutgoingMessage(
            exchange=self._exchange,
            routing_key=facts.trigger,
            body=body,  # the verified bytes, never a re-serialised copy
            message_id=facts.event_id or f"no-event-id-{uuid.uuid4()}",
            content_type=req.content_type or "application/json",
            headers=facts.headers(self._verifier is not None),
        )
        if self._spool is not None and self._spool.depth > 0:
            # Deliveries wait behind the backlog, so the spool drains in arrival order.
            self._spool_or_refuse(resp, message, facts, "spool_backlog")
            return
        try:
            self._publish(message).result(timeout=self._confirm_timeout)
        except (BrokerUnavailable, TimeoutError) as exc:
            if self._spool is not None:
                self._spool_or_refuse(resp, message, facts, str(exc) or "broker_unavailable")
                return
            self._refuse(resp, facts, str(exc))
            return
        log.info("delivery_accepted", **facts.log_fields())
        self._answer(resp, falcon.HTTP_200, "accepted", {"status": "accepted", "event_id": facts.event_id})

    def _spool_or_refuse(
        self, resp: falcon.Response, message: OutgoingMessage, facts: _DeliveryFacts, why: str
    ) -> None:
        assert self._spool is not None
        try:
            self._spool.append(message)
        except SpoolFull as exc:
            self._refuse(resp, facts, f"{why}; {exc}")
            return
        if self._on_spooled is not None:
            self._on_spooled()
        log.warning("delivery_spooled", why=why, spool_depth=self._spool.depth, **facts.log_fields())
        self._answer(resp, falcon.HTTP_202, "spooled", {"status": "spooled", "event_id": facts.event_id})

    def _refuse(self, resp: falcon.Response, facts: _DeliveryFacts, error: str) -> None:
        log.error("delivery_not_accepted", reason="broker_unavailable", error=error, **facts.log_fields())
        resp.set_header("Retry-After", self._retry_after)
        self._answer(resp, falcon.HTTP_503, "broker_unavailable", {"error": "broker unavailable, retry later"})

    def _read_body(self, req: falcon.Request) -> bytes | None:
        if req.content_length is not None and req.content_length > self._max_body_bytes:
            return None
        body: bytes = req.bounded_stream.read(self._max_body_bytes + 1)
        return None if len(body) > self._max_body_bytes else body

    def _answer(self, resp: falcon.Response, status: str, outcome: str, media: dict[str, Any]) -> None:
        self._metrics.deliveries.labels(outcome).inc()
        resp.status = status
        resp.media = media


@dataclass(frozen=True)
class _DeliveryFacts:
    """What the ingress reads from a verified body: just enough to route and trace it. It never rejects one."""

    trigger: str
    event_id: str | None = None
    file_id: str | None = None
    webhook_id: str | None = None
    retry_count: int = 0

    def headers(self, verified: bool) -> dict[str, Any]:
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


def _peek(body: bytes) -> _DeliveryFacts:
    try:
        delivery = peek_delivery(body)
    except InvalidDelivery:
        return _DeliveryFacts(UNKNOWN_TRIGGER)
    trigger = delivery.trigger
    if not trigger or len(trigger) > _MAX_TRIGGER_LENGTH:
        trigger = UNKNOWN_TRIGGER
    return _DeliveryFacts(trigger, delivery.event_id, delivery.file_id, delivery.webhook_id, delivery.retry_count)


class MetricsResource:
    def __init__(self, registry: CollectorRegistry) -> None:
        self._registry = registry

    def on_get(self, _req: falcon.Request, resp: falcon.Response) -> None:
        resp.content_type = CONTENT_TYPE_LATEST
        resp.data = generate_latest(self._registry)


class HealthResource:
    """``/healthz`` says the process is alive; ``/readyz`` says it can accept deliveries (broker connected)."""

    def __init__(self, is_ready: Callable[[], bool] | None = None) -> None:
        self._is_ready = is_ready

    def on_get(self, _req: falcon.Request, resp: falcon.Response) -> None:
        if self._is_ready is None or self._is_ready():
            resp.media = {"status": "ok"}
        else:
            resp.status = falcon.HTTP_503
            resp.media = {"status": "unavailable", "reason": "not connected to the broker"}


def create_app(
    *,
    verifier: SignatureVerifier | None,
    publish: Publish,
    exchange: str,
    max_body_bytes: int = 1024 * 1024,
    confirm_timeout: float = 5.0,
    retry_after_seconds: int = 5,
    registry: CollectorRegistry | None = None,
    is_ready: Callable[[], bool] | None = None,
    spool: Spool | None = None,
    on_spooled: Callable[[], None] | None = None,
) -> falcon.App:
    registry = registry if registry is not None else CollectorRegistry()
    metrics = IngressMetrics(registry)
    if spool is not None:
        metrics.spool_depth.set_function(lambda: spool.depth)
    app = falcon.App()
    # orjson, as Falcon's docs suggest for speed: every delivery is answered with a small JSON document.
    app.resp_options.media_handlers[falcon.MEDIA_JSON] = falcon.media.JSONHandler(dumps=orjson.dumps)
    app.add_route(
        WEBHOOK_PATH,
        WebhookResource(
            verifier=verifier,
            publish=publish,
            exchange=exchange,
            max_body_bytes=max_body_bytes,
            confirm_timeout=confirm_timeout,
            retry_after_seconds=retry_after_seconds,
            metrics=metrics,
            spool=spool,
            on_spooled=on_spooled,
        ),
    )
    app.add_route("/metrics", MetricsResource(registry))
    app.add_route("/healthz", HealthResource())
    app.add_route("/readyz", HealthResource(is_ready))
    return app
