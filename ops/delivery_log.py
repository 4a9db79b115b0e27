"""DocSpace's delivery log, searched for one file: what ``trace`` says when the journal knows nothing of it.

The log has no filter by file, so the newest deliveries of the pipeline's webhook are read page by page (each page
one API call, at most ``max_rows`` rows) and their request bodies matched against the term: the file id, an invoice
id (file id + version), the DocSpace event id, or a fragment of the title. What is found tells the operator whether
DocSpace delivered the file (and we have no record: the journal writer behind, or the journal off), tried and
failed (the reconciler recovers it from the log), or never sent it at all (the room scan is the backstop).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

import orjson

from shared.docspace.values import WebhookConfig
from shared.docspace.webhooks import PAGE_SIZE, TRIGGER_NAMES, LoggedDelivery, UnreadableRow, find_pipeline_webhook

DEFAULT_MAX_ROWS = 500  # five API calls: the last few hours of a busy portal, days of a quiet one
TITLE_FRAGMENT_MIN = 3


class WebhookLog(Protocol):
    """The two calls the search makes (``shared.docspace.admin.PortalAdmin`` has them)."""

    def list_webhooks(self) -> list[WebhookConfig]: ...

    def deliveries(
        self, config_id: str, *, start: int = 0, count: int = PAGE_SIZE
    ) -> Sequence[LoggedDelivery | UnreadableRow]: ...


@dataclass(frozen=True)
class WebhookChoice:
    """Which registered webhook is the pipeline's (as the reconciler finds it)."""

    path: str
    url: str | None = None
    config_id: str | None = None


@dataclass(frozen=True)
class LoggedFileDelivery:
    """One delivery of the file, as DocSpace's log keeps it."""

    log_id: int
    trigger: str
    created: datetime | None
    status: int  # 0: no HTTP answer (not sent yet, or the connection failed)
    file_id: str | None
    event_id: str | None
    title: str | None

    @property
    def delivered(self) -> bool:
        return 200 <= self.status < 300


@dataclass(frozen=True)
class DeliveryLogSearch:
    """What the search found, and how far it looked (or why it could not)."""

    searched: bool
    note: str  # "the newest 500 deliveries of webhook 7", or why the log was not searched
    rows_searched: int = 0
    deliveries: list[LoggedFileDelivery] = field(default_factory=list)  # newest first


def not_searched(why: str) -> DeliveryLogSearch:
    return DeliveryLogSearch(searched=False, note=why)


def search_delivery_log(
    term: str, *, portal: WebhookLog, webhook: WebhookChoice, max_rows: int = DEFAULT_MAX_ROWS
) -> DeliveryLogSearch:
    """The deliveries of the pipeline's webhook whose body names ``term``, newest first, within ``max_rows``.

    DocSpace failures (``DocSpaceError`` and its kin) propagate: the caller says the log could not be read.
    """
    term = term.strip()
    config = find_pipeline_webhook(
        portal.list_webhooks(), path=webhook.path, url=webhook.url, config_id=webhook.config_id
    )
    if config is None:
        return not_searched("the pipeline's webhook is not registered in DocSpace, so it has no delivery log")
    found: list[LoggedFileDelivery] = []
    seen = 0
    while seen < max_rows:
        want = min(PAGE_SIZE, max_rows - seen)
        rows = portal.deliveries(config.id, start=seen, count=want)
        seen += len(rows)
        found += [row for row in (_of(r) for r in rows) if row is not None and _names(row, term)]
        if len(rows) < want:
            break  # the log's end
    return DeliveryLogSearch(
        searched=True,
        note=f"the newest {seen} deliveries of webhook {config.id} ({config.uri})",
        rows_searched=seen,
        deliveries=found,
    )


def _of(row: LoggedDelivery | UnreadableRow) -> LoggedFileDelivery | None:
    if isinstance(row, UnreadableRow) or not row.request_payload:
        return None  # not sent yet: no body to tell which file it is about
    try:
        doc = orjson.loads(row.request_payload)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(doc, dict):
        return None
    payload, event = doc.get("payload"), doc.get("event")
    payload = payload if isinstance(payload, dict) else {}
    event = event if isinstance(event, dict) else {}
    title = payload.get("title")
    return LoggedFileDelivery(
        log_id=row.id,
        trigger=TRIGGER_NAMES.get(row.trigger, str(row.trigger)),
        created=row.created,
        status=row.status,
        file_id=_text(payload.get("id")),
        event_id=_text(event.get("id")),
        title=title if isinstance(title, str) else None,
    )


def _names(row: LoggedFileDelivery, term: str) -> bool:
    file_part = term.split(":", 1)[0] if ":" in term else term  # an invoice id is the file id and its version
    if (term and term in {row.file_id, row.event_id, str(row.log_id)}) or file_part == row.file_id:
        return True
    return len(term) >= TITLE_FRAGMENT_MIN and row.title is not None and term.casefold() in row.title.casefold()


def _text(value: object) -> str | None:
    return None if value is None or isinstance(value, bool) else str(value)
