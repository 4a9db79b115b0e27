"""The notifier's business logic: e-mail the manager, trigger the pipeline; each once per invoice, independently."""

from __future__ import annotations

from typing import Protocol

import structlog

from shared.core.events import InvoiceReceived
from shared.core.handling import Handled, Outcome
from shared.store.idempotency import DEFAULT_LEASE_SECONDS, IdempotencyStore, run_once


class Mailer(Protocol):
    """Tells an invoice's account manager that it arrived (adapter: ``mailer.SmtpMailer``)."""

    def send_invoice_notice(self, invoice: InvoiceReceived) -> str:
        """Send the notice; return the Message-ID used (stable per invoice)."""
        ...


class PipelineTrigger(Protocol):
    """Starts the external processing of a received invoice (adapter: ``pipeline.HttpPipelineClient``)."""

    def trigger(self, invoice: InvoiceReceived) -> int | None:
        """Returns the pipeline's HTTP status (a 2xx), or None when the adapter has none to tell."""
        ...


def _bind(invoice: InvoiceReceived) -> None:
    structlog.contextvars.bind_contextvars(
        invoice_id=invoice.invoice_id, file_id=invoice.file_id, event_id=invoice.event_id, client=invoice.client
    )


def email_manager(
    invoice: InvoiceReceived,
    *,
    mailer: Mailer | None,
    store: IdempotencyStore,
    lease_seconds: float = DEFAULT_LEASE_SECONDS,
) -> Handled:
    """Send the manager one e-mail per invoice.

    The claim is taken before sending and completed after: a crash in between re-sends once the lease expires
    (it must outlast one SMTP conversation), with the same Message-ID, so the manager's client shows one message.
    """
    _bind(invoice)
    if mailer is None:
        return Handled(Outcome.SKIPPED, "email_disabled")
    sent: dict[str, str] = {}

    def send() -> None:
        sent["message_id"] = mailer.send_invoice_notice(invoice)

    if not run_once(store, f"email:{invoice.invoice_id}", send, lease_seconds=lease_seconds):
        return Handled(Outcome.IGNORED, "duplicate")
    return Handled(Outcome.EMAILED, None, {"to": invoice.manager_email, "message_id": sent["message_id"]})


def trigger_pipeline(
    invoice: InvoiceReceived,
    *,
    pipeline: PipelineTrigger | None,
    store: IdempotencyStore,
    lease_seconds: float = DEFAULT_LEASE_SECONDS,
) -> Handled:
    """POST the invoice to the processing pipeline once; the invoice id is also the receiver's idempotency key."""
    _bind(invoice)
    if pipeline is None:
        return Handled(Outcome.SKIPPED, "pipeline_disabled")
    key = f"pipeline:{invoice.invoice_id}"
    answered: dict[str, int] = {}

    def call() -> None:
        status = pipeline.trigger(invoice)
        if status is not None:
            answered["status"] = status

    if not run_once(store, key, call, lease_seconds=lease_seconds):
        return Handled(Outcome.IGNORED, "duplicate")
    return Handled(Outcome.PIPELINE_CALLED, None, answered)
