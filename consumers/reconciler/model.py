"""The reconciler's values: what a cycle announces, finds and reports, its call budget, and its checkpoint state."""

from __future__ import annotations

import dataclasses
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

import structlog

from shared.core.errors import StageError
from shared.core.ids import small_count
from shared.docspace.delivery import parse_datetime

log = structlog.get_logger("reconciler")

Source = Literal["delivery_log", "room_scan"]
# A walk down the delivery log to its checkpoint, or through a room scan's window, stops after this many pages
# (100,000 entries, far beyond a month-end bulk upload): a portal that keeps answering full pages is not a real
# listing. Hitting it is logged (``docspace_listing_page_cap_hit``) and counted (``reconciler_page_cap_hits``).
MAX_WALK_PAGES = 1000
# The walks that have that cap: the skip a hit is counted under in a cycle's report, and its listing's name.
PAGE_CAPS = {"log_page_cap": "delivery_log", "room_page_cap": "room_files"}
# (what is being done, how many done, how many in all) for a progress bar; the service passes none.
Progress = Callable[[str, int, int], None]


@dataclass(frozen=True)
class Announcement:
    """A delivery for ``docspace.events``, in DocSpace's shape, marked with where the reconciler found it."""

    body: bytes
    trigger: str
    event_id: str
    source: Source
    file_id: str | None = None
    log_id: int | None = None


class RowBug(StageError):
    """A bug (an exception nobody typed) met while handling one row: a delivery-log row or a listed file.

    The cycle fails with reason ``bug``; the row is set aside in the checkpoint store's quarantine, so the next
    cycle goes on past it, and ``invoice-pipeline doctor`` lists it for an operator.
    """

    reason = "bug"

    def __init__(self, key: str, exc: BaseException, **ids: str | int | None) -> None:
        # The exception's own text, cut short: enough to find the bug, never a whole payload.
        super().__init__(f"{type(exc).__name__} on {key}: {str(exc)[:200]}")
        self.key = key
        self.error_type = type(exc).__name__
        self.ids = ids


def delivery_key(log_id: int) -> str:
    """A delivery-log row's key in the quarantine."""
    return f"delivery:{log_id}"


def file_key(file_id: str, version: int) -> str:
    """A listed file version's key in the quarantine: a new version of the file is tried afresh."""
    return f"file:{file_id}:v{version}"


@dataclass(frozen=True)
class Finding:
    """One line of a cycle's account: the webhook's state, a recovered delivery, an announced file."""

    kind: Literal["webhook", "delivery", "file", "room"]
    ref: str  # webhook id, delivery-log id, file id or room id
    what: str  # the webhook's URL or the file's title
    action: str  # what was done (or, in a dry run, what would be)
    detail: str = ""


@dataclass
class Budget:
    """The DocSpace calls a cycle may still make; ``None`` = no cap (the rate limiter still spaces them).

    ``reserved`` calls are kept back from whoever spends now (the delivery log) for whoever comes next (the scan).
    """

    calls: int | None
    spent: int = 0
    reserved: int = 0

    def spend(self) -> bool:
        """Take one call; False (and nothing taken) when the budget is used up, or only the reserve is left."""
        if self.calls is not None and self.spent + self.reserved >= self.calls:
            return False
        self.spent += 1
        return True

    @property
    def exhausted(self) -> bool:
        return self.calls is not None and self.spent >= self.calls


@dataclass
class CycleReport:
    """What one cycle found and did; logged, counted in metrics, saved for ``doctor``, shown by the CLI."""

    started_at: datetime
    finished_at: datetime | None = None
    dry_run: bool = False
    webhook: str = "unchecked"  # enabled, reenabled, disabled, missing, unknown (the key cannot tell)
    findings: list[Finding] = field(default_factory=list)
    recovered: Counter[str] = field(default_factory=Counter)  # by source
    skipped: Counter[str] = field(default_factory=Counter)  # why files and deliveries were left alone
    files_scanned: int = 0
    deliveries_seen: int = 0
    rooms_scanned: int = 0
    rooms_total: int = 0
    calls: int = 0
    scan_complete: bool = False  # every room's window covered this cycle (else the next cycle goes on)
    budget_stopped: bool = False  # the call budget stopped the log walk or a room's pass (the next cycle goes on)
    not_run: str | None = None  # why the cycle did nothing (another replica holds the lease, ran recently)
    error: str | None = None
    bugs: int = 0  # exceptions nobody typed that this cycle met (each fails it; rows met are set aside)
    set_aside: list[RowBug] = field(default_factory=list)  # the rows those bugs met, for the quarantine

    @property
    def ok(self) -> bool:
        return self.error is None and self.not_run is None

    def walk_capped(self, pages: int, skip: str, unread: str, **ids: str | int | None) -> bool:
        """True once a walk has read ``MAX_WALK_PAGES`` pages: counted under ``skip`` (a ``PAGE_CAPS`` key) and
        logged, never silent; ``unread`` names what is left unread."""
        if pages < MAX_WALK_PAGES:
            return False
        self.skipped[skip] += 1
        log.critical(
            "docspace_listing_page_cap_hit",
            listing=PAGE_CAPS[skip],
            pages=pages,
            **ids,
            hint=f"DocSpace kept answering full pages; the rest of {unread} was not read",
        )
        return True

    def to_json(self) -> dict[str, Any]:
        return {
            "started_at": self.started_at.isoformat(),
            "finished_at": self.finished_at.isoformat() if self.finished_at else None,
            "webhook": self.webhook,
            "recovered": dict(self.recovered),
            "skipped": dict(self.skipped),
            "files_scanned": self.files_scanned,
            "deliveries_seen": self.deliveries_seen,
            "rooms_scanned": self.rooms_scanned,
            "rooms_total": self.rooms_total,
            "calls": self.calls,
            "scan_complete": self.scan_complete,
            "error": self.error,
            "bugs": self.bugs,
            "findings": [
                {"kind": f.kind, "ref": f.ref, "what": f.what, "action": f.action, "detail": f.detail}
                for f in self.findings[:50]  # enough for doctor; the log has them all
            ],
        }


@dataclass
class ScanPass:
    """A room's scan window being walked newest first: ``offset`` entries done, down to ``cursor``."""

    lower: datetime
    upper: datetime
    offset: int = 0
    cursor: datetime | None = None


@dataclass
class RoomProgress:
    """How far one room's scan got."""

    scanned_until: datetime | None = None  # every change up to here (minus the overlap) has been looked at
    current: ScanPass | None = None  # a pass the budget interrupted, continued next cycle
    # The room's own history floor: when a scan first saw it (the first run's, for rooms watched from the start).
    # None in a checkpoint written before rooms had one: the first run's floor.
    floor: datetime | None = None


@dataclass
class LogPass:
    """A walk down the delivery log, newest first, to the checkpoint; kept when the budget interrupts it."""

    start: int = 0  # the startIndex of the next page
    top: int | None = None  # the newest id on the walk's first page: the checkpoint once the walk is done
    low: int | None = None  # the lowest id examined so far: the next page must begin at or above it
    hold: int | None = None  # the lowest id not settled yet: the checkpoint stays below it


@dataclass
class State:
    """The checkpoint: the first run (the history floor), the delivery log's position, each room's scan."""

    first_run_at: datetime | None = None
    log_config_id: str | None = None
    log_after_id: int | None = None  # every failed delivery with an id up to here is dealt with
    log_pass: LogPass | None = None  # a walk down to log_after_id the budget interrupted, continued next cycle
    rooms: dict[str, RoomProgress] = field(default_factory=dict)
    next_room: int = 0  # round robin: the room the next cycle starts with
    last_cycle_at: datetime | None = None  # when the last successful cycle started
    # The rows set aside after a bug met them (``RowBug``): read from the checkpoint store's quarantine at the
    # start of each cycle, never part of this document.
    quarantined: set[str] = field(default_factory=set)

    def room(self, room_id: str) -> RoomProgress:
        return self.rooms.setdefault(room_id, RoomProgress())

    def to_json(self) -> dict[str, Any]:
        def when(value: datetime | None) -> str | None:
            return value.isoformat() if value else None

        return {
            "version": 1,
            "first_run_at": when(self.first_run_at),
            "log_config_id": self.log_config_id,
            "log_after_id": self.log_after_id,
            "log_pass": None if self.log_pass is None else dataclasses.asdict(self.log_pass),
            "next_room": self.next_room,
            "last_cycle_at": when(self.last_cycle_at),
            "rooms": {
                room_id: {
                    "scanned_until": when(p.scanned_until),
                    "floor": when(p.floor),
                    "current": None
                    if p.current is None
                    else {
                        "lower": when(p.current.lower),
                        "upper": when(p.current.upper),
                        "offset": p.current.offset,
                        "cursor": when(p.current.cursor),
                    },
                }
                for room_id, p in self.rooms.items()
            },
        }

    @classmethod
    def from_json(cls, doc: dict[str, Any] | None) -> State:
        """Tolerant: a missing or damaged part starts afresh (the history floor keeps that safe)."""
        if not isinstance(doc, dict):
            return cls()
        rooms: dict[str, RoomProgress] = {}
        stored = doc.get("rooms")
        for room_id, raw in (stored if isinstance(stored, dict) else {}).items():
            if not isinstance(raw, dict):
                continue
            current = raw.get("current")
            scan_pass = None
            if isinstance(current, dict):
                lower, upper = parse_datetime(current.get("lower")), parse_datetime(current.get("upper"))
                offset = current.get("offset")
                if lower and upper and isinstance(offset, int):
                    scan_pass = ScanPass(lower, upper, offset, parse_datetime(current.get("cursor")))
            rooms[str(room_id)] = RoomProgress(
                parse_datetime(raw.get("scanned_until")), scan_pass, parse_datetime(raw.get("floor"))
            )
        after = doc.get("log_after_id")
        next_room = doc.get("next_room")
        return cls(
            first_run_at=parse_datetime(doc.get("first_run_at")),
            log_config_id=doc.get("log_config_id") if isinstance(doc.get("log_config_id"), str) else None,
            log_after_id=_count(after),
            log_pass=_log_pass(doc.get("log_pass")),
            rooms=rooms,
            next_room=next_room if isinstance(next_room, int) and next_room >= 0 else 0,
            last_cycle_at=parse_datetime(doc.get("last_cycle_at")),
        )


def _count(value: object) -> int | None:
    # Only a JSON number: the checkpoint writes ints, and a string there means the document is not ours.
    return small_count(value) if isinstance(value, int) else None


def _log_pass(raw: object) -> LogPass | None:
    if not isinstance(raw, dict):
        return None
    start = _count(raw.get("start"))
    if start is None:
        return None  # without its position the walk starts again from the top, which is always safe
    return LogPass(start, _count(raw.get("top")), _count(raw.get("low")), _count(raw.get("hold")))
