"""The notifier's own metric: how long an invoice took from DocSpace's delivery to the manager's inbox."""

from __future__ import annotations

from datetime import UTC, datetime

from prometheus_client import Histogram

from shared.core.events import InvoiceReceived
from shared.core.handling import Handled, Outcome

END_TO_END = Histogram(
    "invoice_end_to_end_seconds",
    "From the ingress accepting a delivery to the e-mail sent / pipeline called",
    ["side"],
    buckets=(0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600),
)


def observe_end_to_end(side: str, invoice: InvoiceReceived, handled: Handled) -> Handled:
    """Record the latency when this message did the side effect (not for duplicates or skips)."""
    if handled.outcome in {Outcome.EMAILED, Outcome.PIPELINE_CALLED} and invoice.delivered_at is not None:
        END_TO_END.labels(side).observe(max(0.0, (datetime.now(UTC) - invoice.delivered_at).total_seconds()))
    return handled
