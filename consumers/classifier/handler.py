"""The classifier's business logic: one delivery in, one decision out (InvoiceDetected, or a skip with a reason)."""

from __future__ import annotations

import os
from collections.abc import Callable, Collection
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Protocol

import structlog

from shared.core.events import InvoiceDetected, invoice_id_for, upload_id_for
from shared.core.handling import Handled, Outcome
from shared.core.rules import Rules
from shared.docspace.delivery import Delivery, InvalidDelivery, parse_delivery
from shared.docspace.values import FileInfo, Room
from shared.store.idempotency import DEFAULT_LEASE_SECONDS, IdempotencyStore, run_once

log = structlog.get_logger("classifier")

FOLDER_ENTRY = 1
# event.createOn has whole seconds; a file changed this long after the event changed after it for sure.
STALE_AFTER = timedelta(seconds=2)


class FileFacts(Protocol):
    """What the classifier asks DocSpace: the authoritative file facts, and the room a folder belongs to.

    ``modified_on`` is the delivery's ``payload.modifiedOn``: deliveries about the same upload may share one read
    (see ``file_reads``).
    """

    def get_file(self, file_id: str, modified_on: str | None = None) -> FileInfo: ...
    def find_room(self, folder_id: str) -> Room | None: ...


def classify_delivery(
    raw: bytes,
    *,
    files: FileFacts,
    rules: Rules,
    triggers: Collection[str],
    emit: Callable[[InvoiceDetected], None],
    store: IdempotencyStore,
    lease_seconds: float = DEFAULT_LEASE_SECONDS,
    delivered_at: datetime | None = None,
) -> Handled:
    """Decide one delivery. Every return names its reason; bad input raises InvalidDelivery (dead-lettered)."""
    delivery = parse_delivery(raw)
    structlog.contextvars.bind_contextvars(event_id=delivery.event_id, trigger=delivery.trigger)
    if delivery.trigger is None:
        raise InvalidDelivery("the delivery has no event.trigger: DocSpace always sends one")
    if delivery.trigger not in triggers:
        return Handled(Outcome.IGNORED, "wrong_trigger", {"rule": "triggers: " + ", ".join(sorted(triggers))})
    if delivery.entry_type == FOLDER_ENTRY:
        return Handled(Outcome.IGNORED, "not_a_file", {"rule": "a folder is never an invoice"})
    if delivery.file_id is None:
        raise InvalidDelivery("the delivery has no payload.id: there is no file to classify")
    structlog.contextvars.bind_contextvars(file_id=delivery.file_id)

    facts = _payload_facts(delivery)
    if facts is None:
        # A delivery that does not name its upload (no title, folder or modifiedOn: an older or partial shape):
        # the REST API is the source of truth, and the version it reads names the invoice.
        facts = _FileFacts.of(files.get_file(delivery.file_id, delivery.modified_on))
    # payload.rootId is the portal-wide "Rooms" folder, the same for every room: the room comes from the path.
    room = files.find_room(facts.folder_id)
    client = rules.for_room(room.id) if room is not None else None
    if room is None or client is None:
        details = {"title": facts.title, "room_id": room.id if room else None, "rule": _room_rule(room)}
        return Handled(Outcome.IGNORED, "no_watched_room", details)
    if not client.title_matches(facts.title):
        rule = f"{client.name}: title must match " + " or ".join(repr(p) for p in client.title_patterns)
        return Handled(Outcome.IGNORED, "not_an_invoice", {"title": facts.title, "client": client.name, "rule": rule})
    if not client.extension_allowed(facts.extension):
        rule = f"{client.name}: extension must be one of " + ", ".join(client.extensions)
        details = {"title": facts.title, "client": client.name, "extension": facts.extension, "rule": rule}
        return Handled(Outcome.IGNORED, "extension_not_allowed", details)

    if (
        facts.version is not None
        and _is_stale(delivery.created_on, facts.updated_at)
        and store.is_done(f"routed-file:{delivery.file_id}")
    ):
        # A retry or manual redelivery of an upload we already routed, read after the file changed again
        # (edited, new version): its version is not the one the event was about.
        rule = "the file changed after the event, and this upload was routed already"
        return Handled(
            Outcome.IGNORED, "stale_delivery", {"title": facts.title, "version": facts.version, "rule": rule}
        )

    file_id = facts.file_id or delivery.file_id
    invoice_id = invoice_id_for(file_id, facts.version) if facts.version is not None else None
    upload_id = upload_id_for(file_id, delivery.modified_on or "") if invoice_id is None else None
    structlog.contextvars.bind_contextvars(invoice_id=invoice_id, upload_id=upload_id)
    detected = InvoiceDetected(
        invoice_id=invoice_id,
        upload_id=upload_id,
        event_id=delivery.event_id,
        trigger=delivery.trigger or "",
        file_id=file_id,
        version=facts.version,
        title=facts.title,
        extension=facts.extension,
        size=facts.size,
        web_url=facts.web_url,
        uploaded_by=facts.uploaded_by,
        uploaded_at=facts.uploaded_at,
        folder_id=facts.folder_id,
        client=client.name,
        room_id=room.id,
        room_title=room.title,
        room_seen_at=room.seen_at,
        manager_email=client.manager_email,
        incoming=client.incoming,
        already_in_incoming=client.incoming_folder_id == facts.folder_id,
        delivered_at=delivered_at,
        detected_at=datetime.now(UTC),
    )
    # file.created and file.uploaded of one upload, DocSpace's retries and manual redeliveries all carry the
    # same upload (file id and modifiedOn): only the first becomes an InvoiceDetected. The claim lives in the
    # idempotency store, so with Redis it is one decision per upload across every classifier replica.
    # The other trigger of the same upload usually arrives alongside: wait out its short claim (one confirmed
    # publish) rather than retry.
    routed = run_once(
        store, f"classifier:{detected.work_id}", lambda: emit(detected), lease_seconds=lease_seconds, wait_seconds=2.0
    )
    if not routed:
        rule = "one invoice per upload: another delivery of it was routed"
        return Handled(Outcome.IGNORED, "duplicate", {"title": facts.title, "client": client.name, "rule": rule})
    store.mark(f"routed-file:{file_id}")
    return Handled(Outcome.ACCEPTED, None, {"title": facts.title, "client": client.name, "room_id": room.id})


def _room_rule(room: Room | None) -> str:
    if room is None:
        return "the file's folder is in no room"
    return f"room {room.id} ({room.title}) is in no client's rules"


@dataclass(frozen=True)
class _FileFacts:
    """What the decision needs to know of the file: from the signed delivery, or from a REST read."""

    title: str
    folder_id: str
    extension: str
    version: int | None = None
    file_id: str | None = None
    size: int | None = None
    web_url: str | None = None
    uploaded_by: str | None = None
    uploaded_at: datetime | None = None
    updated_at: datetime | None = None

    @classmethod
    def of(cls, file: FileInfo) -> _FileFacts:
        return cls(
            title=file.title,
            folder_id=file.folder_id,
            extension=file.extension,
            version=file.version,
            file_id=file.id,
            size=file.size,
            web_url=file.web_url,
            uploaded_by=file.uploaded_by,
            uploaded_at=file.uploaded_at,
            updated_at=file.updated_at,
        )


def _payload_facts(delivery: Delivery) -> _FileFacts | None:
    """The file as the signed delivery describes it, when it names the upload (title, folder and modifiedOn).

    The payload is authentic (the HMAC covers it) and is the file as it was uploaded: deciding on it costs no
    DocSpace call. Its version, size and uploader come later, from the mover's move report.
    """
    if not delivery.title or not delivery.folder_id or not delivery.modified_on:
        return None
    return _FileFacts(
        title=delivery.title,
        folder_id=delivery.folder_id,
        extension=os.path.splitext(delivery.title)[1].lower(),
    )


def _is_stale(event_created: datetime | None, file_updated: datetime | None) -> bool:
    return event_created is not None and file_updated is not None and file_updated > event_created + STALE_AFTER
