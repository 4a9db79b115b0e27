"""The room scan, the backstop: invoices in watched rooms that no delivery announced, announced in DocSpace's shape.

For each watched room it lists the files changed since its last scan (minus an overlap), newest first. A file
is announced when the client's rules take it, it is older than the grace period (the webhook path normally wins),
it was uploaded after the history floor, and the idempotency store knows neither its invoice nor the file:

- ``classifier:<file id>:v<version>`` done: the classifier already routed this version;
- ``routed-file:<file id>`` done: an earlier version was routed, so this one is an edit (``file.updated``, which
  the webhook path ignores too), never a new invoice.

The announcement is a ``file.uploaded`` delivery built from the listing the way DocSpace builds one, so the
classifier decides it like any other (and reads the file again: the listing is not trusted for more than ids).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Protocol

import orjson
import structlog

from consumers.reconciler.model import Announce, Announcement, Budget, CycleReport, Finding, Progress, ScanPass, State
from shared.docspace.webhooks import PAGE_SIZE, ListedFile
from shared.idempotency import IdempotencyStore
from shared.messages import invoice_id_for
from shared.rules import ClientRule, Rules

log = structlog.get_logger("reconciler")

TRIGGER = "file.uploaded"
TRIGGER_ID = 256
# When an interrupted pass resumes, it re-reads this many entries before where it stopped: files changed since
# moved to the top of the listing and pushed the rest down, so nothing is skipped; the check below covers
# deletions that pulled entries up.
RESUME_MARGIN = 20


class RoomListing(Protocol):
    """A room's files, its whole subtree, most recently changed first, a page at a time."""

    def files_by_date(self, folder_id: str, *, start: int = 0, count: int = PAGE_SIZE) -> list[ListedFile]: ...


def announced_key(invoice_id: str) -> str:
    """The idempotency key that says the scan already announced this file version (by any reconciler)."""
    return f"reconciler:announced:{invoice_id}"


def scan_rooms(
    *,
    listing: RoomListing,
    rules: Rules,
    state: State,
    store: IdempotencyStore,
    announce: Announce,
    floor: datetime,
    now: datetime,
    grace: timedelta,
    overlap: timedelta,
    budget: Budget,
    report: CycleReport,
    since: datetime | None = None,
    dry_run: bool = False,
    progress: Progress | None = None,
) -> None:
    """Scan the watched rooms round robin from where the last cycle stopped, within ``budget``.

    ``since`` (an operator's ``reconcile --since``) scans ``[since, now - grace]`` in every room and leaves the
    rooms' checkpoints alone; otherwise each room continues from its own checkpoint.
    """
    clients = list(rules.clients)
    report.rooms_total = len(clients)
    if not clients:
        report.scan_complete = True
        return
    first = state.next_room % len(clients) if since is None else 0
    order = clients[first:] + clients[:first]
    for done, client in enumerate(order):
        if progress is not None:
            progress(f"room {client.name}", done, len(order))
        finished = _scan_room(
            client,
            listing=listing,
            state=state,
            store=store,
            announce=announce,
            floor=floor,
            now=now,
            grace=grace,
            overlap=overlap,
            budget=budget,
            report=report,
            since=since,
            dry_run=dry_run,
        )
        if not finished:
            if since is None:
                state.next_room = (first + done) % len(clients)  # this room first, next cycle
            log.info("room_scan_continues_next_cycle", room_id=client.room_id, client=client.name)
            return
        report.rooms_scanned += 1
    if progress is not None:
        progress("rooms", len(order), len(order))
    report.scan_complete = True


def _scan_room(
    client: ClientRule,
    *,
    listing: RoomListing,
    state: State,
    store: IdempotencyStore,
    announce: Announce,
    floor: datetime,
    now: datetime,
    grace: timedelta,
    overlap: timedelta,
    budget: Budget,
    report: CycleReport,
    since: datetime | None,
    dry_run: bool,
) -> bool:
    """Walk one room's window newest first; False when the budget ran out (the pass is kept to go on with)."""
    room = client.room_id
    progress = state.room(room)
    upper = now - grace
    if since is not None:
        scan = ScanPass(lower=since, upper=upper)
    elif progress.current is not None:
        scan = progress.current
    else:
        lower = max(floor, progress.scanned_until - overlap) if progress.scanned_until else floor
        if lower >= upper:
            return True  # nothing old enough yet (the first minutes after the first run)
        scan = ScanPass(lower=lower, upper=upper)
    offset = scan.offset
    if offset:
        offset = max(offset - RESUME_MARGIN, 0)
    while True:
        if not budget.spend():
            if since is None and not dry_run:
                progress.current = scan
            return False
        page = listing.files_by_date(room, start=offset, count=PAGE_SIZE)
        if offset and page and scan.cursor is not None and _newer(scan.cursor, page[0].updated):
            # Entries were deleted above where the pass stopped and pulled the rest up past the margin:
            # start the pass's pages again from the top rather than skip any.
            offset = 0
            continue
        reached_lower = False
        for file in page:
            updated = file.updated or now
            if updated > scan.upper:
                continue  # changed after the pass began, or still inside the grace period: the next pass
            if updated < scan.lower:
                reached_lower = True
                break
            report.files_scanned += 1
            _consider(file, client, store=store, announce=announce, floor=floor, report=report, dry_run=dry_run)
            scan.cursor = updated if scan.cursor is None else min(scan.cursor, updated)
        offset += len(page)
        scan.offset = offset
        if reached_lower or len(page) < PAGE_SIZE:
            if since is None and not dry_run:
                progress.scanned_until = scan.upper
                progress.current = None
            return True


def _newer(cursor: datetime, first_on_page: datetime | None) -> bool:
    """True when the page starts below the cursor: the entries just above it were never seen."""
    return first_on_page is not None and first_on_page < cursor


def _consider(
    file: ListedFile,
    client: ClientRule,
    *,
    store: IdempotencyStore,
    announce: Announce,
    floor: datetime,
    report: CycleReport,
    dry_run: bool,
) -> None:
    if not client.title_matches(file.title) or not client.extension_allowed(file.extension):
        return  # not an invoice by this client's rules: the classifier would ignore it too
    if file.created is not None and file.created < floor:
        report.skipped["file_before_first_run"] += 1
        return
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
    if dry_run:
        report.findings.append(Finding("file", file.id, file.title, "would announce", detail))
        return
    announce(
        Announcement(
            body=delivery_for(file),
            trigger=TRIGGER,
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


def delivery_for(file: ListedFile) -> bytes:
    """A ``file.uploaded`` delivery as DocSpace would send it for ``file`` (contract §1.3): ``event``, a
    ``FileEntry`` payload with default values left out, and an empty ``webhook`` (no config sent it).

    ``event.id`` is a string no DocSpace log id can equal; ``createOn`` is the file's last change, so the
    classifier's stale-delivery check sees the event and the file agree.
    """
    changed = file.updated or file.created or datetime.now(UTC)
    event = {
        "id": f"reconciler-scan-{file.id}-v{file.version}",
        "createOn": _event_time(changed),
        "trigger": TRIGGER,
        "triggerId": TRIGGER_ID,
    }
    if file.updated_by or file.created_by:
        event["createBy"] = file.updated_by or file.created_by or ""
    payload: dict[str, object] = {"id": _wire_id(file.id), "parentId": _wire_id(file.folder_id)}
    payload["folderIdDisplay"] = _wire_id(file.folder_id)
    if file.root_id:
        payload["rootId"] = _wire_id(file.root_id)
    payload["title"] = file.title
    if file.created_by:
        payload["createBy"] = file.created_by
    if file.updated_by:
        payload["modifiedBy"] = file.updated_by
    if file.created:
        payload["createOn"] = _event_time(file.created)
    payload["modifiedOn"] = _event_time(changed)
    if file.root_folder_type:
        payload["rootFolderType"] = file.root_folder_type
    payload["fileEntryType"] = 2
    return orjson.dumps({"event": event, "payload": payload, "webhook": {}})


def _wire_id(value: str) -> int | str:
    # DocSpace's own storage has int ids, third-party rooms string ids; send each as DocSpace would.
    return int(value) if value.isdigit() else value


def _event_time(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _when(value: datetime | None) -> str:
    return f"{value.astimezone(UTC):%Y-%m-%d %H:%M} UTC" if value else "?"
