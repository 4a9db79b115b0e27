"""The mover's business logic: move (verified), then publish InvoiceReceived; once per invoice."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Protocol

import structlog

from shared.core.errors import PermanentError
from shared.core.events import InvoiceDetected, InvoiceReceived, invoice_id_for
from shared.core.handling import Handled, Outcome
from shared.docspace.errors import DocSpaceNotFound
from shared.docspace.values import FileInfo, MoveResult, Room
from shared.store.idempotency import DEFAULT_LEASE_SECONDS, IdempotencyStore, run_once

log = structlog.get_logger("mover")


class FileMover(Protocol):
    """What the mover asks DocSpace: the Incoming folder, a move into it, a folder's room, a file's facts."""

    def find_room(self, folder_id: str) -> Room | None: ...
    def find_or_create_folder(self, room_id: str, title: str = "Incoming") -> str: ...
    def forget_folder(self, room_id: str, title: str = "Incoming") -> None: ...
    def move_file(self, file_id: str, dest_folder_id: str, *, conflict: str = "Duplicate") -> MoveResult: ...
    def get_file(self, file_id: str) -> FileInfo: ...


def move_invoice(
    detected: InvoiceDetected,
    *,
    files: FileMover,
    emit: Callable[[InvoiceReceived], None],
    store: IdempotencyStore,
    conflict: str = "Duplicate",
    lease_seconds: float = DEFAULT_LEASE_SECONDS,
    room_ttl: float | None = None,
) -> Handled:
    """Move the file, then publish InvoiceReceived; the input is acked only after that publish is confirmed.

    A redelivery after a crash between the move and the publish moves again: the client treats a file that is
    already in the destination as moved, so the invoice is announced once it really is there.

    An InvoiceDetected decided from the delivery alone names an upload, not yet an invoice: the move's own
    report says which version of the file moved (no extra call), and the invoice is announced once per version
    even if two uploads' detections lead to the same one.

    With ``room_ttl``, a room decision older than that (a message that waited in a retry ladder or a backlog, or
    one from a classifier that did not date it) is checked against DocSpace before anything moves: a folder
    moved to another client's room since must not carry the file into the old client's room.
    """
    structlog.contextvars.bind_contextvars(
        invoice_id=detected.invoice_id,
        upload_id=detected.upload_id,
        file_id=detected.file_id,
        event_id=detected.event_id,
        client=detected.client,
    )
    result: dict[str, str] = {}

    def move_and_announce() -> None:
        if room_ttl is not None:
            _check_room(detected, files, room_ttl)
        folder_id = detected.incoming.id or files.find_or_create_folder(detected.room_id, detected.incoming.name)
        reported: FileInfo | None = None
        if detected.already_in_incoming or detected.folder_id == folder_id:
            file_id, result["how"] = detected.file_id, "already_in_incoming"
        else:
            moved, folder_id = _move(detected, files, folder_id, conflict)
            file_id, result["how"], reported = moved.file_id, f"moved ({moved.confirmed_by})", moved.file
        if detected.invoice_id is not None:
            invoice_id = detected.invoice_id
        else:
            if reported is None or reported.id != file_id:
                reported = files.get_file(file_id)  # the report named no version (or the file is already there)
            invoice_id = invoice_id_for(reported.id, reported.version)
        structlog.contextvars.bind_contextvars(invoice_id=invoice_id)
        received = InvoiceReceived(
            invoice_id=invoice_id,
            event_id=detected.event_id,
            file_id=file_id,
            title=detected.title,
            extension=detected.extension,
            size=detected.size if detected.size is not None else (reported.size if reported else None),
            client=detected.client,
            room_id=detected.room_id,
            room_title=detected.room_title,
            manager_email=detected.manager_email,
            folder_id=folder_id,
            web_url=detected.web_url or (reported.web_url if reported else None),
            uploaded_by=detected.uploaded_by or (reported.uploaded_by if reported else None),
            uploaded_at=detected.uploaded_at or (reported.uploaded_at if reported else None),
            moved_at=datetime.now(UTC),
            delivered_at=detected.delivered_at,
        )
        result["folder_id"], result["invoice_id"] = folder_id, invoice_id
        if detected.invoice_id is not None:
            emit(received)
        elif not run_once(store, f"mover:{invoice_id}", lambda: emit(received), lease_seconds=lease_seconds):
            # Another upload's detection of this very version (a redelivery that outlived its upload's claim)
            # announced it already.
            result["how"] = "duplicate_version"

    if not run_once(store, f"mover:{detected.work_id}", move_and_announce, lease_seconds=lease_seconds):
        return Handled(Outcome.IGNORED, "duplicate", {"title": detected.title})
    if result["how"] == "duplicate_version":
        return Handled(Outcome.IGNORED, "duplicate", {"title": detected.title, "invoice_id": result["invoice_id"]})
    details = {
        "title": detected.title,
        "folder_id": result["folder_id"],
        "folder": f"{detected.room_title or detected.client}/{detected.incoming.name}",
        "invoice_id": result["invoice_id"],
        "client": detected.client,
    }
    return Handled(Outcome.RECEIVED, result["how"], details)


def _move(detected: InvoiceDetected, files: FileMover, folder_id: str, conflict: str) -> tuple[MoveResult, str]:
    """Move into ``folder_id``; a remembered Incoming folder that DocSpace no longer has is found (or made) anew.

    The 404 may also mean the file is gone: then the second move raises it again, and that is the answer.
    """
    try:
        return files.move_file(detected.file_id, folder_id, conflict=conflict), folder_id
    except DocSpaceNotFound:
        if detected.incoming.id is not None:
            raise
        files.forget_folder(detected.room_id, detected.incoming.name)
        fresh = files.find_or_create_folder(detected.room_id, detected.incoming.name)
        if fresh == folder_id:
            raise
        log.warning("incoming_folder_gone", room_id=detected.room_id, old_folder_id=folder_id, folder_id=fresh)
        return files.move_file(detected.file_id, fresh, conflict=conflict), fresh


def _check_room(detected: InvoiceDetected, files: FileMover, room_ttl: float) -> None:
    """Re-read the folder's room when the classifier's answer is older than ``room_ttl``; refuse a changed room.

    In steady state the answer is seconds old and this costs no call; the re-read goes through the client's own
    cache (also ``room_ttl``), so at most one per folder per ``room_ttl``.
    """
    seen_at = detected.room_seen_at
    if seen_at is not None and datetime.now(UTC) - seen_at <= timedelta(seconds=room_ttl):
        return
    room = files.find_room(detected.folder_id)
    if room is None or room.id != detected.room_id:
        raise PermanentError(
            f"folder {detected.folder_id} is no longer in room {detected.room_id} ({detected.client}) but in "
            f"{f'room {room.id}' if room is not None else 'no room'}: the file was not moved; the classifier "
            "decided on an answer older than ROOM_CACHE_TTL_SECONDS",
            reason="room_changed",
        )
