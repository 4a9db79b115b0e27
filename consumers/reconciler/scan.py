"""The room scan, the backstop: invoices in watched rooms that no delivery announced, announced in DocSpace's shape.

For each watched room it lists the files changed since its last scan (minus an overlap), newest first. A file
is announced when the client's rules take it, it was uploaded (created) inside the scan's window, so older than
the grace period (the webhook path normally wins) and after the room's history floor, and the idempotency store
knows neither its invoice nor the file. A file uploaded before the window and changed inside it (an edit, a
rename, a move) was judged by the pass that covered its upload: the scan looks for uploads no delivery
announced, and an edit is not an upload, however long ago the invoice was routed. The store's keys:

- ``classifier:<file id>:v<version>`` done: the classifier already routed this version;
- ``routed-file:<file id>`` done: an earlier version was routed, so this one is an edit (``file.updated``, which
  the webhook path ignores too), never a new invoice.

The announcement is a ``file.uploaded`` (else ``file.created``) delivery, a trigger the classifier takes, built
from the listing the way DocSpace builds one, so the classifier decides it like any other (and reads the file
again: the listing is not trusted for more than ids).
"""

from __future__ import annotations

from collections.abc import Collection
from datetime import UTC, datetime

import structlog

from consumers.reconciler.context import Cycle
from consumers.reconciler.model import (
    Announcement,
    Finding,
    Progress,
    RoomProgress,
    RowBug,
    ScanPass,
    file_key,
)
from shared.core.errors import StageError
from shared.core.events import invoice_id_for
from shared.core.rules import ClientRule
from shared.docspace.delivery_encoder import FileDelivery, encode_delivery, wire_id, wire_time
from shared.docspace.errors import DocSpaceAccessDenied, DocSpaceNotFound, DocSpaceRejected, DocSpaceUnavailable
from shared.docspace.webhooks import (
    FILE_CREATED,
    FILE_UPLOADED,
    PAGE_SIZE,
    TRIGGER_NAMES,
    ListedFile,
    UnreadableRow,
)

log = structlog.get_logger("reconciler")

# The triggers an announcement can carry, the one DocSpace sends for an upload first (contract §1.4).
TRIGGERS = (TRIGGER_NAMES[FILE_UPLOADED], TRIGGER_NAMES[FILE_CREATED])
# Every page after a pass's first (in the same cycle or when an interrupted pass resumes) starts this many
# entries before where the last one ended: files changed since moved to the top of the listing and pushed the
# rest down, so nothing is skipped. A page whose top is older than every entry seen so far means deletions
# pulled entries up past the margin: the pass steps back a page, never to the first.
RESUME_MARGIN = 20


def announced_key(invoice_id: str) -> str:
    """The idempotency key that says the scan already announced this file version (by any reconciler)."""
    return f"reconciler:announced:{invoice_id}"


def announce_trigger(triggers: Collection[str]) -> str | None:
    """The trigger the scan announces with: one the classifier takes (``CLASSIFIER_TRIGGERS``), ``file.uploaded``
    first. None when it takes neither: an announcement it ignores would still be marked, and so lost for good."""
    return next((t for t in TRIGGERS if t in triggers), None)


def scan_rooms(cycle: Cycle, *, trigger: str = TRIGGERS[0], progress: Progress | None = None) -> None:
    """Scan the watched rooms round robin from where the last cycle stopped, within the cycle's budget.

    ``cycle.since`` (an operator's ``reconcile --since``) scans ``[since, now - grace]`` in every room and leaves the
    rooms' checkpoints alone; otherwise each room continues from its own checkpoint, above its own floor: a room
    added to the rules is watched from when a scan first sees it, never from the first run.

    A room DocSpace refuses (403, 404, another 4xx: access lost, the room deleted) is reported and passed over;
    its window waits for it. A transient error ends the cycle, and the next one starts with the room after it,
    so a room that keeps failing never keeps the rooms behind it from being scanned.
    """
    state, report, since = cycle.state, cycle.report, cycle.since
    clients = list(cycle.rules.clients)
    report.rooms_total = len(clients)
    if since is None:
        watched = {client.room_id for client in clients}
        for room_id in [r for r in state.rooms if r not in watched]:
            del state.rooms[room_id]  # no longer watched: if it comes back, it is a new room with a new floor
        for client in clients:
            state.rooms.setdefault(client.room_id, RoomProgress(floor=cycle.now))
    if not clients:
        report.scan_complete = True
        return
    first = state.next_room % len(clients) if since is None else 0
    order = clients[first:] + clients[:first]
    for done, client in enumerate(order):
        if progress is not None:
            progress(f"room {client.name}", done, len(order))
        try:
            finished = _scan_room(client, cycle, trigger)
        except (DocSpaceAccessDenied, DocSpaceNotFound, DocSpaceRejected) as exc:
            report.skipped["room_not_readable"] += 1
            report.findings.append(Finding("room", client.room_id, client.name, "not scanned", f"{exc.reason}: {exc}"))
            log.error("room_not_scanned", room_id=client.room_id, client=client.name, reason=exc.reason, error=str(exc))
            continue
        except DocSpaceUnavailable:
            if since is None:
                state.next_room = (first + done + 1) % len(clients)
            raise
        if not finished:
            if since is None:
                state.next_room = (first + done) % len(clients)  # this room first, next cycle
            log.info("room_scan_continues_next_cycle", room_id=client.room_id, client=client.name)
            return
        report.rooms_scanned += 1
    if progress is not None:
        progress("rooms", len(order), len(order))
    report.scan_complete = report.rooms_scanned == len(clients)


def _scan_room(client: ClientRule, cycle: Cycle, trigger: str) -> bool:
    """Walk one room's window newest first; False when the budget ran out (the pass is kept to go on with)."""
    report, since, dry_run, now = cycle.report, cycle.since, cycle.dry_run, cycle.now
    room = client.room_id
    progress = cycle.state.room(room)
    floor = cycle.floor
    if since is None and progress.floor is not None:
        floor = max(floor, progress.floor)
    upper = now - cycle.knobs.grace
    if since is not None:
        scan = ScanPass(lower=since, upper=upper)
    elif progress.current is not None:
        scan = progress.current
    else:
        lower = max(floor, progress.scanned_until - cycle.knobs.overlap) if progress.scanned_until else floor
        if lower >= upper:
            return True  # nothing old enough yet (the first minutes after the first run)
        scan = ScanPass(lower=lower, upper=upper)
    pages = 0
    while True:
        if report.walk_capped(pages, "room_page_cap", "this room's window", room_id=room):
            break  # the pass ends here: what lies below the cap is not read (said loudly)
        pages += 1
        offset = max(scan.offset - RESUME_MARGIN, 0) if scan.offset else 0
        if not cycle.budget.spend():
            report.budget_stopped = True
            if since is None and not dry_run:
                progress.current = scan
            return False
        page = cycle.portal.files_by_date(room, start=offset, count=PAGE_SIZE)
        top = next((f for f in page if isinstance(f, ListedFile)), None)
        if offset and top is not None and scan.cursor is not None and _newer(scan.cursor, top.updated):
            # Entries were deleted above where the pass stopped and pulled the rest up past the margin: the
            # entries just above this page were never seen. Step back a page (to the first at worst).
            scan.offset = max(offset - (PAGE_SIZE - RESUME_MARGIN), 0)
            continue
        reached_lower = False
        for file in page:
            if isinstance(file, UnreadableRow):
                report.skipped["file_unreadable"] += 1
                log.warning("file_not_announceable", room_id=room, reason=file.reason)
                continue
            updated = file.updated or now
            if updated < scan.lower:
                reached_lower = True
                break
            if updated <= scan.upper:
                scan.cursor = updated if scan.cursor is None else min(scan.cursor, updated)
            elif not _uploaded_in(file, scan):
                continue  # uploaded after the pass began, or still inside the grace period: the next pass
            # (Uploaded inside the window and changed since: this pass is the one that covers its upload.)
            report.files_scanned += 1
            if file_key(file.id, file.version) in cycle.state.quarantined:
                report.skipped["file_quarantined"] += 1  # a bug met it: set aside, listed by doctor
                continue
            try:
                _consider(file, client, cycle, scan=scan, floor=floor, trigger=trigger)
            except StageError:
                raise  # typed: the broker, the store; the file is looked at again next cycle
            except Exception as exc:
                raise RowBug(file_key(file.id, file.version), exc, file_id=file.id, room_id=room) from exc
        # The pass has read every entry up to here (a page starts early only to catch entries pushed down).
        scan.offset = offset + len(page)
        if reached_lower or len(page) < PAGE_SIZE:
            break
    if since is None and not dry_run:
        progress.scanned_until = scan.upper
        progress.current = None
    return True


def _newer(cursor: datetime, first_on_page: datetime | None) -> bool:
    """True when the page starts below the cursor: the entries just above it were never seen."""
    return first_on_page is not None and first_on_page < cursor


def _uploaded_in(file: ListedFile, scan: ScanPass) -> bool:
    return file.created is not None and scan.lower <= file.created <= scan.upper


def _consider(
    file: ListedFile, client: ClientRule, cycle: Cycle, *, scan: ScanPass, floor: datetime, trigger: str
) -> None:
    """Announce ``file`` when its client's rules take it, it was uploaded inside ``scan``, above the room's
    ``floor``, and nothing (the classifier, an earlier announcement) has seen it."""
    store, report = cycle.store, cycle.report
    if not client.title_matches(file.title) or not client.extension_allowed(file.extension):
        return  # not an invoice by this client's rules: the classifier would ignore it too
    if file.created is None:
        report.skipped["file_without_upload_time"] += 1  # cannot tell an old invoice's edit from an upload
        return
    if file.created < floor:
        report.skipped["file_before_first_run"] += 1
        return
    if file.created < scan.lower:
        # Uploaded before this window, changed inside it: not an upload. The pass that covered the upload
        # judged it, so an invoice routed long ago (its marks since expired) is never announced again.
        report.skipped["file_changed_not_uploaded"] += 1
        return
    if file.created > scan.upper:
        return  # inside the grace period (its clock ahead of ours): the next pass
    invoice_id = invoice_id_for(file.id, file.version)
    if store.is_done(f"classifier:{invoice_id}"):
        report.skipped["file_already_processed"] += 1
        return
    if store.is_done(f"routed-file:{file.id}"):
        report.skipped["file_edited_after_routing"] += 1
        return
    if store.is_done(announced_key(invoice_id)):
        report.skipped["file_already_announced"] += 1
        return
    detail = f"room {client.name}, version {file.version}, uploaded {_when(file.created)}"
    if cycle.dry_run:
        report.findings.append(Finding("file", file.id, file.title, "would announce", detail))
        return
    cycle.announce(
        Announcement(
            body=delivery_for(file, trigger),
            trigger=trigger,
            event_id=f"reconciler-scan-{file.id}-v{file.version}",
            source="room_scan",
            file_id=file.id,
        )
    )
    store.mark(announced_key(invoice_id))
    report.recovered["room_scan"] += 1
    report.findings.append(Finding("file", file.id, file.title, "announced", detail))
    log.warning(
        "delivery_recovered",
        source="room_scan",
        file_id=file.id,
        invoice_id=invoice_id,
        title=file.title,
        client=client.name,
        room_id=client.room_id,
    )


def delivery_for(file: ListedFile, trigger: str = TRIGGERS[0]) -> bytes:
    """A ``trigger`` delivery as DocSpace would send it for ``file``, with an empty ``webhook`` (no config sent it).

    ``event.id`` is a string no DocSpace log id can equal; ``createOn`` is the file's last change, so the
    classifier's stale-delivery check sees the event and the file agree.
    """
    changed = wire_time(file.updated or file.created or datetime.now(UTC))
    return encode_delivery(
        FileDelivery(
            event_id=f"reconciler-scan-{file.id}-v{file.version}",
            event_at=changed,
            event_by=file.updated_by or file.created_by or None,
            trigger=trigger,
            file_id=wire_id(file.id),
            folder_id=wire_id(file.folder_id),
            title=file.title,
            root_id=wire_id(file.root_id) if file.root_id else None,
            created_by=file.created_by or None,
            modified_by=file.updated_by or None,
            created_on=wire_time(file.created) if file.created else None,
            modified_on=changed,
            root_folder_type=file.root_folder_type or None,
        )
    )


def _when(value: datetime | None) -> str:
    return f"{value.astimezone(UTC):%Y-%m-%d %H:%M} UTC" if value else "?"
