"""The reconciler's cycle with fakes for DocSpace and the broker, and real SQLite stores: webhook health,
delivery-log recovery, the room scan, checkpoints, budget, leases, backfills and dry runs."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from falcon import testing
from prometheus_client import REGISTRY
from structlog.testing import capture_logs

from consumers.reconciler import metrics
from consumers.reconciler.context import Knobs, Replica
from consumers.reconciler.cycle import LAST_RUN, STATE, last_known, reconcile
from consumers.reconciler.model import MAX_WALK_PAGES, CycleReport, State
from ops.doctor import check_quarantine
from shared.core.errors import BrokerUnavailable
from shared.core.rules import ClientRule, Rules
from shared.docspace.delivery import parse_delivery
from shared.docspace.errors import DocSpaceAccessDenied, DocSpaceUnavailable
from shared.docspace.webhooks import FAILED_DELIVERIES, LoggedDelivery, UnreadableRow
from shared.store.idempotency import StoreUnavailable
from shared.store.sqlite_store import SqliteCheckpoints, SqliteStore
from simulator import DocSpaceSimulator
from simulator.webhooks.registry import group_of
from tests.support.fakes import FakePortal, MemoryAnnouncer

T0 = datetime(2026, 11, 3, 9, 0, tzinfo=UTC)
CREATED, UPLOADED, UPDATED = 128, 256, 512


class Clock:
    """A clock the test moves by hand."""

    def __init__(self, now: datetime = T0) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


@pytest.fixture
def checkpoints(tmp_path: Path) -> Iterator[SqliteCheckpoints]:
    c = SqliteCheckpoints(tmp_path / "idem.sqlite3")
    yield c
    c.close()


def rules_for(*rooms: str) -> Rules:
    return Rules(
        clients=tuple(
            ClientRule(name=f"client{room}", room_id=room, manager_email=f"m{room}@example.com") for room in rooms
        )
    )


def knobs(**overrides: object) -> Knobs:
    values: dict[str, object] = {
        "interval": timedelta(minutes=5),
        "grace": timedelta(minutes=10),
        "log_settle": timedelta(minutes=1),
        "overlap": timedelta(minutes=5),
        "triggers": frozenset({"file.created", "file.uploaded"}),
        "webhook_path": "/docspace/webhook",
    }
    return Knobs(**(values | overrides))  # type: ignore[arg-type]


class Reconciler:
    """One replica: the same stores and portal as the others, its own lease owner."""

    def __init__(self, portal: FakePortal, store: SqliteStore, checkpoints: SqliteCheckpoints, clock: Clock, **kw):
        self.portal, self.store, self.checkpoints, self.clock = portal, store, checkpoints, clock
        self.announcer = MemoryAnnouncer()
        self.rules = kw.pop("rules", rules_for("100"))
        self.knobs = kw.pop("knobs", knobs())
        self.owner = kw.pop("owner", "replica-a")

    def run(self, **kw):
        replica = Replica(
            portal=self.portal,
            rules=self.rules,
            store=self.store,
            checkpoints=self.checkpoints,
            announce=self.announcer,
            knobs=self.knobs,
            owner=self.owner,
            clock=self.clock,
        )
        return reconcile(replica, **kw)


@pytest.fixture
def portal() -> FakePortal:
    p = FakePortal()
    p.add_webhook()
    return p


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def rec(portal: FakePortal, store: SqliteStore, checkpoints: SqliteCheckpoints, clock: Clock) -> Reconciler:
    return Reconciler(portal, store, checkpoints, clock)


def _first_cycle_then_invoices(rec: Reconciler, portal: FakePortal, clock: Clock, count: int) -> None:
    """A first cycle sets the history floor; then ``count`` invoices (7000 on) land in room 100, a second apart."""
    rec.run()
    for i in range(count):
        portal.add_file("100", str(7000 + i), f"Invoice-{i}.pdf", at=clock.now + timedelta(seconds=1 + i))


def _failed_uploads_logged(portal: FakePortal, clock: Clock, count: int, *, first_log_id: int) -> None:
    """``count`` failed upload deliveries (files 6000 on) land in DocSpace's log a second from now."""
    for i in range(count):
        portal.add_failure(
            first_log_id + i, trigger=UPLOADED, at=clock.now + timedelta(seconds=1), file_id=str(6000 + i)
        )


class _EditedLog(FakePortal):
    """A portal whose delivery-log pages pass through ``edit(portal, start, rows)``: DocSpace's log as it changes."""

    def __init__(self, edit: Callable[[FakePortal, int, list[Any]], list[Any]]) -> None:
        super().__init__()
        self.edit = edit

    def failed_deliveries(self, config_id: str, *, start: int = 0, count: int = 100) -> list[Any]:
        return self.edit(self, start, super().failed_deliveries(config_id, start=start, count=count))


def _log_read_through(
    edit: Callable[[FakePortal, int, list[Any]], list[Any]], rec: Reconciler, portal: FakePortal
) -> FakePortal:
    """Give ``rec`` an ``_EditedLog`` portal with ``portal``'s webhooks, and return it."""
    edited = _EditedLog(edit)
    edited.webhooks, rec.portal = portal.webhooks, edited
    return edited


@pytest.fixture
def backlog(portal: FakePortal, store: SqliteStore, checkpoints: SqliteCheckpoints, clock: Clock) -> Reconciler:
    """A reconciler allowed 3 calls a cycle, past its first cycle; 450 invoices have landed in room 100 since."""
    rec = Reconciler(portal, store, checkpoints, clock, knobs=knobs(calls_per_cycle=3))
    _first_cycle_then_invoices(rec, portal, clock, 450)
    clock.advance(minutes=30)
    return rec


# --- webhook health ------------------------------------------------------------------------------------------


def test_an_enabled_webhook_is_left_alone(rec: Reconciler, portal: FakePortal) -> None:
    report = rec.run()
    assert report.ok and report.webhook == "enabled"
    assert portal.calls_to("enable_webhook") == []


def test_a_disabled_webhook_is_enabled_again_once_docspace_reaches_the_ingress(
    rec: Reconciler, portal: FakePortal, clock: Clock
) -> None:
    portal.webhooks = []
    portal.add_webhook(enabled=False)
    portal.enable_refused = True  # DocSpace's HEAD to the ingress fails
    first = rec.run()
    assert first.ok and first.webhook == "disabled"
    assert [f.action for f in first.findings if f.kind == "webhook"] == ["still disabled"]

    portal.enable_refused = False
    clock.advance(minutes=5)
    second = rec.run()
    assert second.webhook == "reenabled"
    assert portal.calls_to("enable_webhook") == [("2621",), ("2621",)]
    assert portal.webhooks[0].enabled


def test_a_missing_webhook_is_reported_with_the_command_and_never_recreated(
    rec: Reconciler, portal: FakePortal
) -> None:
    portal.webhooks = []
    portal.add_webhook(uri="https://other.example/elsewhere")
    report = rec.run()
    assert report.webhook == "missing"
    finding = next(f for f in report.findings if f.kind == "webhook")
    assert "invoice-pipeline docspace register-webhook --url" in finding.detail
    # No delivery log (no config to read it for), no create; no listing either on a first run (nothing is old enough).
    assert [name for name, _ in portal.calls] == ["list_webhooks"]


def test_a_key_without_global_scope_still_scans_the_rooms(rec: Reconciler, portal: FakePortal, clock: Clock) -> None:
    portal.fail_next("list_webhooks", DocSpaceAccessDenied("DocSpace GET settings/webhook -> 403: Access denied"))
    rec.run()  # the first run sets the history floor
    portal.add_file("100", "5001", "Invoice-1.pdf", at=clock.now + timedelta(minutes=1))
    clock.advance(minutes=20)
    portal.fail_next("list_webhooks", DocSpaceAccessDenied("DocSpace GET settings/webhook -> 403: Access denied"))
    report = rec.run()
    assert report.ok and report.webhook == "unknown"
    assert rec.announcer.file_ids() == ["5001"]


# --- delivery-log recovery -----------------------------------------------------------------------------------


def test_failed_deliveries_are_fed_back_once_as_docspace_sent_them(
    rec: Reconciler, portal: FakePortal, clock: Clock, store: SqliteStore
) -> None:
    rec.run()  # first run: the history floor is now
    portal.add_failure(138800, trigger=CREATED, at=clock.now + timedelta(seconds=10), file_id="5001")
    portal.add_failure(138801, trigger=UPLOADED, at=clock.now + timedelta(seconds=10), file_id="5001", status=503)
    portal.add_failure(138802, trigger=UPDATED, at=clock.now + timedelta(seconds=20), file_id="5001")
    clock.advance(minutes=5)
    report = rec.run()
    assert report.recovered["delivery_log"] == 2
    assert report.skipped["delivery_wrong_trigger"] == 1
    announced = rec.announcer.announced
    assert [(a.log_id, a.trigger, a.source) for a in announced] == [
        (138801, "file.uploaded", "delivery_log"),
        (138800, "file.created", "delivery_log"),
    ]
    # The exact body DocSpace logged, which the classifier parses like any delivery.
    assert announced[0].body == portal.log[1].request_payload.encode()
    assert parse_delivery(announced[0].body).file_id == "5001"
    assert State.from_json(rec.checkpoints.load(STATE)).log_after_id == 138802

    clock.advance(minutes=5)
    again = rec.run()
    assert again.recovered["delivery_log"] == 0 and len(rec.announcer.announced) == 2
    assert store.is_done("reconciler:log:138800")


def test_a_delivery_the_ingress_refused_as_stale_is_recovered_from_the_log(
    rec: Reconciler, portal: FakePortal, clock: Clock
) -> None:
    # The ingress answers 422 to a delivery older than its replay window (a DocSpace backlog, a manual
    # redelivery, which keeps the old createOn): DocSpace logs it as failed, and this is how it still arrives.
    rec.run()
    portal.add_failure(138900, trigger=UPLOADED, at=clock.now + timedelta(seconds=10), file_id="5009", status=422)
    clock.advance(minutes=5)
    assert rec.run().recovered["delivery_log"] == 1
    assert [a.log_id for a in rec.announcer.announced] == [138900]


def test_a_failure_docspace_may_still_retry_waits_and_holds_the_checkpoint(
    rec: Reconciler, portal: FakePortal, clock: Clock
) -> None:
    rec.run()
    clock.advance(minutes=5)
    portal.add_failure(138800, trigger=UPLOADED, at=clock.now - timedelta(minutes=2), file_id="5001")
    portal.add_failure(138801, trigger=UPLOADED, at=clock.now - timedelta(seconds=5), file_id="5002")
    portal.add_failure(138802, trigger=UPLOADED, at=clock.now - timedelta(minutes=3), file_id="5003")  # ids vs times
    report = rec.run()
    assert sorted(a.file_id for a in rec.announcer.announced) == ["5001", "5003"]
    assert State.from_json(rec.checkpoints.load(STATE)).log_after_id == 138800  # below the unsettled 138801
    assert report.ok

    clock.advance(minutes=5)
    rec.run()
    assert sorted(a.file_id for a in rec.announcer.announced) == ["5001", "5002", "5003"]
    assert State.from_json(rec.checkpoints.load(STATE)).log_after_id == 138802


def test_failures_from_before_the_first_run_are_history(rec: Reconciler, portal: FakePortal, clock: Clock) -> None:
    portal.add_failure(138000, trigger=UPLOADED, at=clock.now - timedelta(days=40), file_id="4001")
    portal.add_failure(138001, trigger=UPLOADED, at=clock.now - timedelta(minutes=10), file_id="4002")
    rec.run()
    clock.advance(minutes=5)
    rec.run()
    assert rec.announcer.announced == []


def test_the_log_is_paged_to_the_checkpoint(rec: Reconciler, portal: FakePortal, clock: Clock) -> None:
    rec.run()
    _failed_uploads_logged(portal, clock, 250, first_log_id=200000)
    clock.advance(minutes=5)
    portal.calls.clear()
    rec.run()
    assert sorted(int(a.file_id) for a in rec.announcer.announced) == list(range(6000, 6250))
    pages = [args for args in portal.calls_to("failed_deliveries")]
    assert [start for _, start in pages] == [0, 90, 180]  # each page starts a little early (rows may leave)


def test_a_broker_failure_stops_the_cycle_and_nothing_is_lost(
    rec: Reconciler, portal: FakePortal, clock: Clock, store: SqliteStore
) -> None:
    rec.run()
    portal.add_failure(138800, trigger=UPLOADED, at=clock.now + timedelta(seconds=1), file_id="5001")
    clock.advance(minutes=5)

    def broken(_item: object) -> None:
        raise BrokerUnavailable("not connected to the broker")

    announcer, rec.announcer = rec.announcer, broken  # type: ignore[assignment]
    failed = rec.run()
    assert failed.error is not None and failed.error.startswith("broker_unavailable")
    assert not store.is_done("reconciler:log:138800")
    rec.announcer = announcer
    clock.advance(minutes=5)
    assert rec.run().recovered["delivery_log"] == 1


# --- room scan -----------------------------------------------------------------------------------------------


def test_files_from_before_the_first_run_are_never_announced(rec: Reconciler, portal: FakePortal, clock: Clock) -> None:
    portal.add_file("100", "4001", "Invoice-old.pdf", at=clock.now - timedelta(days=300))
    portal.add_file("100", "4002", "Invoice-yesterday.pdf", at=clock.now - timedelta(hours=20))
    for _ in range(3):
        rec.run()
        clock.advance(minutes=30)
    assert rec.announcer.announced == []


def test_an_invoice_no_delivery_announced_is_announced_once_in_docspaces_shape(
    rec: Reconciler, portal: FakePortal, clock: Clock
) -> None:
    rec.run()
    portal.add_file("100", "5001", "Invoice-0042.pdf", at=clock.now + timedelta(minutes=1))
    portal.add_file("100", "5002", "Team photo.jpg", at=clock.now + timedelta(minutes=1))
    clock.advance(minutes=5)
    assert rec.run().recovered["room_scan"] == 0  # still inside the grace period: the webhook path's turn
    clock.advance(minutes=10)
    report = rec.run()
    assert report.recovered["room_scan"] == 1
    [item] = rec.announcer.announced
    assert (item.file_id, item.trigger, item.source) == ("5001", "file.uploaded", "room_scan")
    delivery = parse_delivery(item.body)
    assert (delivery.trigger, delivery.file_id, delivery.folder_id, delivery.entry_type) == (
        "file.uploaded",
        "5001",
        "100-uploads",
        2,
    )
    assert delivery.created_on == T0 + timedelta(minutes=1)
    for _ in range(3):
        clock.advance(minutes=5)
        rec.run()
    assert len(rec.announcer.announced) == 1


def test_processed_and_edited_invoices_are_not_announced(
    rec: Reconciler, portal: FakePortal, clock: Clock, store: SqliteStore
) -> None:
    rec.run()
    portal.add_file("100", "5001", "Invoice-1.pdf", at=clock.now + timedelta(minutes=1))
    portal.add_file("100", "5002", "Invoice-2.pdf", at=clock.now + timedelta(minutes=1), version=2)
    store.mark("classifier:5001:v1")  # the webhook path handled it
    store.mark("routed-file:5002")  # v1 was routed; v2 is an edit (file.updated), not a new invoice
    clock.advance(minutes=20)
    report = rec.run()
    assert rec.announcer.announced == []
    assert report.skipped["file_already_processed"] == 1
    assert report.skipped["file_edited_after_routing"] == 1


def test_a_restart_continues_from_the_checkpoint(
    portal: FakePortal, store: SqliteStore, tmp_path: Path, clock: Clock
) -> None:
    first = SqliteCheckpoints(tmp_path / "checkpoints.sqlite3")
    rec = Reconciler(portal, store, first, clock)
    rec.run()
    portal.add_file("100", "5001", "Invoice-1.pdf", at=clock.now + timedelta(minutes=1))
    clock.advance(minutes=20)
    rec.run()
    first.close()

    portal.calls.clear()
    again = SqliteCheckpoints(tmp_path / "checkpoints.sqlite3")  # a new process, the same store
    restarted = Reconciler(portal, store, again, clock)
    portal.add_file("100", "5002", "Invoice-2.pdf", at=clock.now + timedelta(minutes=1))
    clock.advance(minutes=20)
    report = restarted.run()
    assert restarted.announcer.file_ids() == ["5002"]  # not 5001 again, and 5002 not missed
    assert report.files_scanned == 1  # the window starts at the last scan minus the overlap, not at the floor
    again.close()


def test_a_room_with_many_changes_is_paged_and_resumed_where_the_budget_stopped(
    backlog: Reconciler, clock: Clock
) -> None:
    rec = backlog
    cycles = 0
    while len(rec.announcer.announced) < 450 and cycles < 10:
        rec.run(force=True)
        clock.advance(minutes=5)
        cycles += 1
    assert sorted(int(f) for f in rec.announcer.file_ids()) == list(range(7000, 7450))
    # One page per cycle: 100 files, then 80 more each (a resumed pass re-reads 20 in case entries moved).
    assert cycles == 6


def test_fifty_rooms_share_one_budget_and_a_scan_continues_next_cycle(
    store: SqliteStore, checkpoints: SqliteCheckpoints, clock: Clock
) -> None:
    portal = FakePortal()
    portal.add_webhook()
    rooms = [str(100 + i) for i in range(50)]
    rec = Reconciler(portal, store, checkpoints, clock, rules=rules_for(*rooms), knobs=knobs(calls_per_cycle=12))
    rec.run()
    for room in rooms:
        portal.add_file(room, f"{room}1", "Invoice-A.pdf", at=clock.now + timedelta(minutes=1))
    clock.advance(minutes=20)
    reports: list[CycleReport] = []
    while len(rec.announcer.announced) < 50 and len(reports) < 10:
        portal.calls.clear()
        reports.append(rec.run(force=True))
        assert len(portal.calls) <= 12  # never more than its budget, however many rooms
        clock.advance(minutes=5)
    assert sorted(rec.announcer.file_ids()) == sorted(f"{room}1" for room in rooms)
    assert len(reports) == 5  # 50 rooms at 10 per cycle (the webhook and the log take 2 of the 12)
    assert [r.rooms_scanned for r in reports] == [10] * 5
    assert not any(r.scan_complete for r in reports)  # no cycle reached every room: each went on from the last


# --- replicas, backfill, dry run -----------------------------------------------------------------------------


def test_two_replicas_never_run_a_cycle_at_once_nor_one_after_the_other(
    portal: FakePortal, store: SqliteStore, checkpoints: SqliteCheckpoints, clock: Clock
) -> None:
    a = Reconciler(portal, store, checkpoints, clock, owner="replica-a")
    b = Reconciler(portal, store, checkpoints, clock, owner="replica-b")
    assert checkpoints.hold("reconciler.cycle", "replica-a", seconds=60)  # a is mid-cycle
    stood_back = b.run()
    assert stood_back.not_run == "another reconciler is running a cycle" and stood_back.error is None
    checkpoints.release("reconciler.cycle", "replica-a")
    assert a.run().ok
    clock.advance(minutes=1)
    assert b.run().not_run == "another reconciler finished a cycle less than an interval ago"
    clock.advance(minutes=4)
    assert b.run().ok


def test_since_backfills_exactly_what_the_dry_run_lists_and_the_dry_run_changes_nothing(
    rec: Reconciler, portal: FakePortal, clock: Clock, store: SqliteStore
) -> None:
    rec.run()  # the service's first run: the history floor
    portal.add_file("100", "4001", "Invoice-a.pdf", at=clock.now - timedelta(days=2))
    portal.add_file("100", "4002", "Invoice-b.pdf", at=clock.now - timedelta(hours=5))
    portal.add_file("100", "4003", "Invoice-c.pdf", at=clock.now - timedelta(days=5))  # before --since
    portal.add_file("100", "4004", "Team.jpg", at=clock.now - timedelta(hours=5))
    portal.add_failure(138800, trigger=UPLOADED, at=clock.now - timedelta(days=1), file_id="4005")
    store.mark("classifier:4002:v1")
    clock.advance(minutes=1)
    before = rec.checkpoints.load(STATE)
    since = clock.now - timedelta(days=3)

    dry = rec.run(since=since, dry_run=True)
    listed = sorted((f.kind, f.ref) for f in dry.findings if f.action.startswith("would"))
    assert listed == [("delivery", "138800"), ("file", "4001")]
    assert rec.announcer.announced == []
    assert rec.checkpoints.load(STATE) == before
    assert not store.is_done("reconciler:announced:4001:v1")

    real = rec.run(since=since)
    announced = sorted((f.kind, f.ref) for f in real.findings if f.action in ("announced", "recovered"))
    assert announced == listed
    assert sorted(a.file_id for a in rec.announcer.announced) == ["4001", "4005"]
    assert State.from_json(rec.checkpoints.load(STATE)).rooms == State.from_json(before).rooms


def test_a_dry_run_would_re_enable_but_does_not(rec: Reconciler, portal: FakePortal) -> None:
    portal.webhooks = []
    portal.add_webhook(enabled=False)
    report = rec.run(dry_run=True)
    assert [f.action for f in report.findings if f.kind == "webhook"] == ["would re-enable"]
    assert portal.calls_to("enable_webhook") == []
    assert rec.checkpoints.load(LAST_RUN) is None


def test_an_unreadable_checkpoint_store_is_never_overwritten(
    portal: FakePortal, store: SqliteStore, checkpoints: SqliteCheckpoints, clock: Clock
) -> None:
    rec = Reconciler(portal, store, checkpoints, clock)
    rec.run()
    saved = checkpoints.load(STATE)

    class FlakyCheckpoints:
        def load(self, name: str) -> None:
            raise StoreUnavailable("the checkpoint store failed: database is locked")

        def __getattr__(self, name: str) -> object:
            return getattr(checkpoints, name)

    rec.checkpoints = FlakyCheckpoints()  # type: ignore[assignment]
    clock.advance(minutes=5)
    report = rec.run()
    assert report.error is not None and report.error.startswith("idempotency_store_unavailable")
    assert checkpoints.load(STATE) == saved


def test_the_state_survives_a_round_trip() -> None:
    state = State(first_run_at=T0, log_config_id="2621", log_after_id=138800, next_room=3, last_cycle_at=T0)
    state.room("100").scanned_until = T0
    assert State.from_json(state.to_json()) == state
    assert State.from_json({"rooms": {"1": "junk"}, "log_after_id": "x"}) == State()


# --- what the audit found ------------------------------------------------------------------------------------


def test_an_unreadable_log_row_is_a_counted_skip_and_the_page_still_reads_on(
    rec: Reconciler, portal: FakePortal, clock: Clock
) -> None:
    def odd_row_first(_log: FakePortal, start: int, rows: list[Any]) -> list[Any]:
        return [UnreadableRow("a delivery-log row without a readable id"), *rows[:-1]] if start == 0 else rows

    odd = _log_read_through(odd_row_first, rec, portal)
    rec.run()
    _failed_uploads_logged(odd, clock, 150, first_log_id=200000)
    clock.advance(minutes=5)
    report = rec.run()
    assert report.ok and report.skipped["delivery_unreadable"] == 1
    # A full first page (the odd row in it) is not the last one: the second page is read, nothing is lost.
    assert sorted(int(a.file_id) for a in rec.announcer.announced) == list(range(6000, 6150))


def test_a_room_docspace_refuses_is_reported_and_the_scan_goes_on(
    portal: FakePortal, store: SqliteStore, checkpoints: SqliteCheckpoints, clock: Clock
) -> None:
    rec = Reconciler(portal, store, checkpoints, clock, rules=rules_for("100", "101"))
    rec.run()
    portal.add_file("100", "5001", "Invoice-1.pdf", at=clock.now + timedelta(minutes=1))
    portal.add_file("101", "5002", "Invoice-2.pdf", at=clock.now + timedelta(minutes=1))
    clock.advance(minutes=20)
    portal.fail_next("files_by_date", DocSpaceAccessDenied("DocSpace GET files/100 -> 403: Access denied"))
    refused_before = _gauge("reconciler_rooms_not_scanned_total") or 0.0
    report = rec.run()
    metrics.observe(report)
    assert report.ok and report.skipped["room_not_readable"] == 1
    # The cycle succeeds, so the counter is what the WatchedRoomNotReadable alert reads.
    assert _gauge("reconciler_rooms_not_scanned_total") == refused_before + 1
    assert [(f.kind, f.ref, f.action) for f in report.findings if f.kind == "room"] == [("room", "100", "not scanned")]
    assert rec.announcer.file_ids() == ["5002"]
    clock.advance(minutes=5)
    rec.run()  # access is back: the room's window waited for it
    assert sorted(rec.announcer.file_ids()) == ["5001", "5002"]


def test_a_room_that_keeps_failing_does_not_pin_the_round_robin(
    portal: FakePortal, store: SqliteStore, checkpoints: SqliteCheckpoints, clock: Clock
) -> None:
    rec = Reconciler(portal, store, checkpoints, clock, rules=rules_for("100", "101", "102"))
    rec.run()
    clock.advance(minutes=20)
    portal.fail_next("files_by_date", DocSpaceUnavailable("DocSpace GET files/100 -> 503"))
    failed = rec.run()
    assert failed.error is not None and failed.error.startswith("docspace_unavailable")
    portal.calls.clear()
    clock.advance(minutes=5)
    rec.run()
    assert [args[0] for args in portal.calls_to("files_by_date")] == ["101", "102", "100"]


def test_a_failing_delivery_log_does_not_keep_the_room_scan_from_running(
    rec: Reconciler, portal: FakePortal, clock: Clock
) -> None:
    rec.run()
    portal.add_file("100", "5001", "Invoice-1.pdf", at=clock.now + timedelta(minutes=1))
    clock.advance(minutes=20)
    portal.fail_next("failed_deliveries", DocSpaceUnavailable("DocSpace GET settings/webhooks/log -> 500"))
    report = rec.run()
    assert report.error is not None and report.error.startswith("docspace_unavailable")
    assert rec.announcer.file_ids() == ["5001"]  # the backstop ran all the same


def test_a_room_added_later_is_watched_from_when_it_is_first_seen(
    rec: Reconciler, portal: FakePortal, clock: Clock
) -> None:
    rec.run()  # the first run: only room 100 is watched
    portal.add_file("200", "4001", "Invoice-old.pdf", at=clock.now + timedelta(minutes=1))
    clock.advance(days=30)
    rec.rules = rules_for("100", "200")
    rec.run()  # room 200 first seen: its floor
    portal.add_file("200", "5001", "Invoice-new.pdf", at=clock.now + timedelta(minutes=1))
    clock.advance(minutes=20)
    rec.run()
    assert rec.announcer.file_ids() == ["5001"]  # not the month-old invoice
    rec.run(since=clock.now - timedelta(days=31))
    assert sorted(rec.announcer.file_ids()) == ["4001", "5001"]  # --since still reaches it


def test_an_old_invoice_edited_after_its_marks_expired_is_not_announced_again(
    rec: Reconciler, portal: FakePortal, clock: Clock, store: SqliteStore, tmp_path: Path
) -> None:
    rec.run()
    old = portal.add_file("100", "4001", "Invoice-1.pdf", at=clock.now + timedelta(minutes=1))
    store.mark("classifier:4001:v1")  # routed by the webhook path
    store.mark("routed-file:4001")
    clock.advance(minutes=20)
    rec.run()
    clock.advance(days=40)
    rec.run()
    rec.store = SqliteStore(tmp_path / "expired.sqlite3", ttl_seconds=3600)  # its marks' 30 days are over
    portal.room_files["100"] = [dataclasses.replace(old, updated=clock.now, title="Invoice-1 (paid).pdf")]
    clock.advance(minutes=20)
    report = rec.run()
    rec.store.close()
    assert rec.announcer.announced == []
    assert report.skipped["file_changed_not_uploaded"] == 1


def test_an_invoice_edited_within_its_grace_period_is_still_announced(
    rec: Reconciler, portal: FakePortal, clock: Clock
) -> None:
    rec.run()
    new = portal.add_file("100", "5001", "Invoice-1.pdf", at=clock.now + timedelta(minutes=1))
    clock.advance(minutes=15)
    # Renamed just now: changed after this pass's window, uploaded inside it: this pass covers the upload.
    portal.room_files["100"] = [dataclasses.replace(new, updated=clock.now, title="Invoice-1b.pdf")]
    rec.run()
    assert rec.announcer.file_ids() == ["5001"]
    clock.advance(minutes=20)
    rec.run()
    assert rec.announcer.file_ids() == ["5001"]


def test_a_log_backlog_goes_on_next_cycle_and_leaves_calls_for_the_room_scan(
    portal: FakePortal, store: SqliteStore, checkpoints: SqliteCheckpoints, clock: Clock
) -> None:
    rec = Reconciler(portal, store, checkpoints, clock, knobs=knobs(calls_per_cycle=6))
    rec.run()
    _failed_uploads_logged(portal, clock, 600, first_log_id=200000)
    portal.add_file("100", "9001", "Invoice-scan.pdf", at=clock.now + timedelta(minutes=1))
    clock.advance(minutes=20)
    portal.calls.clear()
    rec.run()
    # Of 6 calls: the webhook 1, the log 3 (half of the 5 left is kept for the scan), the room 1.
    assert [start for _, start in portal.calls_to("failed_deliveries")] == [0, 90, 180]
    assert "9001" in rec.announcer.file_ids()
    for _ in range(2):
        clock.advance(minutes=5)
        rec.run()
    recovered = sorted(int(a.file_id) for a in rec.announcer.announced if a.source == "delivery_log")
    assert recovered == list(range(6000, 6600))
    assert [start for _, start in portal.calls_to("failed_deliveries")] == [0, 90, 180, 270, 360, 450, 540]
    state = State.from_json(rec.checkpoints.load(STATE))
    assert (state.log_after_id, state.log_pass) == (200599, None)


def test_rows_leaving_the_failed_filter_between_pages_are_not_skipped(
    rec: Reconciler, portal: FakePortal, clock: Clock
) -> None:
    def delivering(log: FakePortal, _start: int, rows: list[Any]) -> list[Any]:
        """DocSpace delivers the 20 newest pending rows just after the first page was read."""
        if len(log.calls_to("failed_deliveries")) == 1:
            log.log = sorted(log.log, key=lambda r: r.id)[:-20]
        return rows

    moving = _log_read_through(delivering, rec, portal)
    rec.run()
    moving.calls.clear()
    _failed_uploads_logged(moving, clock, 150, first_log_id=300000)
    clock.advance(minutes=5)
    rec.run()
    assert sorted(int(a.file_id) for a in rec.announcer.announced) == list(range(6000, 6150))
    assert State.from_json(rec.checkpoints.load(STATE)).log_after_id == 300149


def test_a_log_row_docspace_has_not_sent_yet_holds_the_checkpoint_until_it_has(
    rec: Reconciler, portal: FakePortal, clock: Clock
) -> None:
    rec.run()
    portal.add_failure(138800, trigger=UPLOADED, at=clock.now + timedelta(seconds=1), file_id="5001")
    portal.add_failure(138801, trigger=UPLOADED, at=clock.now + timedelta(seconds=2), file_id="5002")
    portal.add_failure(138802, trigger=UPLOADED, at=clock.now + timedelta(seconds=3), file_id="5003")
    sent = portal.log[1]
    portal.log[1] = dataclasses.replace(sent, request_payload="")  # still queued in DocSpace's sender
    clock.advance(minutes=5)
    report = rec.run()
    assert sorted(rec.announcer.file_ids()) == ["5001", "5003"] and report.skipped["delivery_without_payload"] == 0
    assert State.from_json(rec.checkpoints.load(STATE)).log_after_id == 138800
    portal.log[1] = sent  # sent (and failed) since
    clock.advance(minutes=5)
    rec.run()
    assert sorted(rec.announcer.file_ids()) == ["5001", "5002", "5003"]
    assert State.from_json(rec.checkpoints.load(STATE)).log_after_id == 138802


def test_a_log_row_never_sent_is_given_up_after_a_day(rec: Reconciler, portal: FakePortal, clock: Clock) -> None:
    rec.run()
    portal.add_failure(138800, trigger=UPLOADED, at=clock.now + timedelta(seconds=1), file_id="5001")
    portal.log[0] = dataclasses.replace(portal.log[0], request_payload="")
    clock.advance(days=1, minutes=5)
    report = rec.run()
    assert report.skipped["delivery_without_payload"] == 1
    assert State.from_json(rec.checkpoints.load(STATE)).log_after_id == 138800  # the room scan is the backstop


def test_failed_deliveries_include_3xx_which_docspace_does_not_follow() -> None:
    assert FAILED_DELIVERIES == 29  # not sent | 3xx | 4xx | 5xx; the contract's 25 leaves out 3xx
    assert [status for status in (0, 200, 302, 404, 503) if group_of(status) & FAILED_DELIVERIES] == [0, 302, 404, 503]


def test_a_replica_that_stands_back_exports_what_the_last_cycle_found(
    portal: FakePortal, store: SqliteStore, checkpoints: SqliteCheckpoints, clock: Clock
) -> None:
    portal.webhooks = []
    portal.add_webhook(enabled=False)
    portal.enable_refused = True
    a = Reconciler(portal, store, checkpoints, clock, owner="replica-a")
    b = Reconciler(portal, store, checkpoints, clock, owner="replica-b")
    done = a.run()
    metrics.prepare(300)  # b has just started
    metrics.show_stored(*last_known(checkpoints))
    assert _gauge("reconciler_last_success_timestamp_seconds") == done.finished_at.timestamp()
    clock.advance(minutes=1)
    stood_back = b.run()
    assert stood_back.not_run is not None
    metrics.observe(stood_back)
    metrics.show_stored(*last_known(checkpoints))
    assert _gauge("reconciler_webhook_enabled") == 0  # not -1: min() over the replicas still sees it disabled


def test_a_failing_cycle_keeps_the_last_success_of_the_one_before(
    rec: Reconciler, portal: FakePortal, clock: Clock
) -> None:
    ok = rec.run()
    clock.advance(minutes=5)
    portal.fail_next("list_webhooks", DocSpaceUnavailable("DocSpace GET settings/webhook -> 503"))
    assert rec.run().error is not None
    assert last_known(rec.checkpoints)[1] == ok.started_at  # a restart exports it, not its own start


def test_a_checkpoint_store_that_fails_to_lease_is_a_failed_cycle_not_a_crash(
    rec: Reconciler, checkpoints: SqliteCheckpoints
) -> None:
    class Unleasable:
        def hold(self, name: str, owner: str, *, seconds: float) -> bool:
            raise StoreUnavailable("the checkpoint store failed: Redis is down")

        def __getattr__(self, name: str) -> object:
            return getattr(checkpoints, name)

    rec.checkpoints = Unleasable()  # type: ignore[assignment]
    report = rec.run()
    assert report.error is not None and report.error.startswith("idempotency_store_unavailable")
    assert checkpoints.load(STATE) is None


def test_a_lost_state_falls_back_to_the_last_runs_start_and_says_so(
    rec: Reconciler, portal: FakePortal, clock: Clock
) -> None:
    rec.run()
    portal.add_file("100", "5001", "Invoice-1.pdf", at=clock.now + timedelta(minutes=1))
    rec.checkpoints.save(STATE, {"rooms": "damaged"})
    clock.advance(minutes=20)
    with capture_logs() as logs:
        rec.run()
    assert rec.announcer.file_ids() == ["5001"]  # not lost behind a new floor of now
    lost = [e for e in logs if e["event"] == "reconciler_state_lost"]
    assert lost and lost[0]["log_level"] == "critical" and lost[0]["history_floor"] == T0.isoformat()


@pytest.mark.parametrize(("triggers", "announced"), [({"file.created"}, "file.created"), ({"file.updated"}, None)])
def test_the_scan_announces_with_a_trigger_the_classifier_takes(
    portal: FakePortal,
    store: SqliteStore,
    checkpoints: SqliteCheckpoints,
    clock: Clock,
    triggers: set[str],
    announced: str | None,
) -> None:
    rec = Reconciler(portal, store, checkpoints, clock, knobs=knobs(triggers=frozenset(triggers)))
    rec.run()
    portal.add_file("100", "5001", "Invoice-1.pdf", at=clock.now + timedelta(minutes=1))
    clock.advance(minutes=20)
    rec.run()
    assert [a.trigger for a in rec.announcer.announced] == ([announced] if announced else [])
    if announced:
        delivery = parse_delivery(rec.announcer.announced[0].body)
        assert delivery.trigger == announced
    else:
        assert not store.is_done("reconciler:announced:5001:v1")  # nothing marked that nobody took


def test_the_simulated_enable_endpoint_requires_name_and_uri_like_docspace() -> None:
    sim = DocSpaceSimulator()
    config = sim.webhooks.create(
        name="invoice-pipeline", uri="https://hooks.example/docspace/webhook", secret="s", check=False
    )
    client = testing.TestClient(sim.app, headers={"Authorization": f"Bearer {sim.api_key}"})
    path = "/api/2.0/settings/webhook/enable"
    assert client.simulate_put(path, json={"id": config.id, "enabled": False}).status_code == 400
    full = {"id": config.id, "enabled": False, "name": config.name, "uri": config.uri}
    assert client.simulate_put(path, json=full).status_code == 200  # disabling sends no HEAD


def _gauge(name: str) -> float | None:
    return REGISTRY.get_sample_value(name)


# --- bugs fail the cycle, the row is set aside, the next cycle goes on (issue 18) ------------------------------


def _surrogate_row(log_id: int, at: datetime) -> LoggedDelivery:
    # DocSpace's log listing is JSON: a lone "\ud800" escape in it decodes to a str that cannot be UTF-8.
    body = (
        f'{{"event":{{"id":{log_id},"trigger":"file.uploaded"}},"payload":{{"id":5009,"title":"Invoice-\ud800.pdf"}}}}'
    )
    return LoggedDelivery(id=log_id, trigger=UPLOADED, created=at, status=0, request_payload=body)


def test_a_bug_on_a_log_row_fails_the_cycle_sets_the_row_aside_and_the_next_cycle_goes_on_past_it(
    rec: Reconciler, portal: FakePortal, clock: Clock, checkpoints: SqliteCheckpoints
) -> None:
    first = rec.run()
    portal.add_failure(138800, trigger=UPLOADED, at=clock.now + timedelta(seconds=10), file_id="5001")
    portal.log.append(_surrogate_row(138801, clock.now + timedelta(seconds=20)))
    portal.add_file("100", "5002", "Invoice-B.pdf", at=clock.now + timedelta(minutes=1))
    clock.advance(minutes=15)
    bugs_before = _gauge("reconciler_bugs_total") or 0.0

    with capture_logs() as logs:
        failed = rec.run()
    metrics.observe(failed)
    assert failed.error is not None and failed.error.startswith("bug: UnicodeEncodeError on delivery:138801")
    assert failed.bugs == 1 and _gauge("reconciler_bugs_total") == bugs_before + 1
    assert [e["log_id"] for e in logs if e["event"] == "reconcile_failed"] == [138801]  # logged with its ids
    assert rec.announcer.file_ids() == ["5002"]  # the room scan, the backstop, still ran
    # Recorded as failed: the last success is still the first run's, so ReconcilerStale is not masked.
    assert checkpoints.load(LAST_RUN)["error"] == failed.error  # type: ignore[index]
    assert last_known(checkpoints)[1] == first.started_at
    assert set(checkpoints.quarantined("reconciler")) == {"delivery:138801"}

    clock.advance(minutes=5)
    again = rec.run()
    assert again.ok and again.skipped["delivery_quarantined"] == 1
    assert rec.announcer.file_ids() == ["5002", "5001"]  # past the bad row, each once
    assert State.from_json(checkpoints.load(STATE)).log_after_id == 138801


def test_a_title_orjson_cannot_encode_sets_that_file_aside_and_the_rest_of_the_room_is_announced(
    rec: Reconciler, portal: FakePortal, clock: Clock, checkpoints: SqliteCheckpoints
) -> None:
    rec.run()
    portal.add_file("100", "5001", "Invoice-A.pdf", at=clock.now + timedelta(minutes=1))
    portal.add_file("100", "5002", "Invoice-\ud800.pdf", at=clock.now + timedelta(minutes=2))
    portal.add_file("100", "5003", "Invoice-C.pdf", at=clock.now + timedelta(minutes=3))
    clock.advance(minutes=15)
    failed = rec.run()
    assert failed.error is not None and failed.error.startswith(
        "bug: TypeError on file:5002:v1: str is not valid UTF-8"
    )
    assert set(checkpoints.quarantined("reconciler")) == {"file:5002:v1"}

    clock.advance(minutes=5)
    again = rec.run()
    assert again.ok and again.skipped["file_quarantined"] == 1
    assert sorted(rec.announcer.file_ids()) == ["5001", "5003"]


def test_a_bug_outside_any_row_is_a_failed_cycle_not_a_crash_and_the_next_cycle_runs(
    rec: Reconciler, portal: FakePortal, clock: Clock, checkpoints: SqliteCheckpoints
) -> None:
    first = rec.run()
    clock.advance(minutes=5)
    portal.fail_next("list_webhooks", RecursionError("maximum recursion depth exceeded"))
    failed = rec.run()
    assert failed.error == "bug: RecursionError: maximum recursion depth exceeded" and failed.bugs == 1
    assert last_known(checkpoints)[1] == first.started_at
    assert checkpoints.quarantined("reconciler") == {}  # no row to set aside
    assert rec.run().ok  # not skipped as "ran recently": the failure was not saved as a success


def test_a_cycle_interrupted_half_way_keeps_its_progress_but_is_not_saved_as_a_success(
    rec: Reconciler, portal: FakePortal, clock: Clock, checkpoints: SqliteCheckpoints
) -> None:
    first = rec.run()
    portal.add_file("100", "5001", "Invoice-A.pdf", at=clock.now + timedelta(minutes=1))
    clock.advance(minutes=15)

    def interrupted(_item: object) -> None:
        raise KeyboardInterrupt

    rec.announcer = interrupted  # type: ignore[assignment]
    with pytest.raises(KeyboardInterrupt):
        rec.run()
    assert checkpoints.load(LAST_RUN)["error"] == "interrupted: the cycle did not finish"  # type: ignore[index]
    assert State.from_json(checkpoints.load(STATE)).last_cycle_at == first.started_at


def test_the_doctor_lists_the_rows_set_aside(checkpoints: SqliteCheckpoints) -> None:
    assert check_quarantine(checkpoints.quarantined("reconciler")).status == "ok"
    checkpoints.quarantine("reconciler", "delivery:138801", {"error_type": "UnicodeEncodeError", "at": "2026-11-03"})
    check = check_quarantine(checkpoints.quarantined("reconciler"))
    assert check.status == "fail" and "delivery:138801 (UnicodeEncodeError at 2026-11-03)" in check.detail


# --- paging (issue 18) ---------------------------------------------------------------------------------------


def test_an_absurd_log_id_is_refused_and_never_pins_the_checkpoint(
    rec: Reconciler, portal: FakePortal, clock: Clock
) -> None:
    rec.run()
    portal.add_failure(138800, trigger=UPLOADED, at=clock.now + timedelta(seconds=10), file_id="5001")
    portal.add_failure(987654321987654321, trigger=UPLOADED, at=clock.now + timedelta(seconds=20), file_id="5002")
    clock.advance(minutes=5)
    report = rec.run()
    assert report.skipped["delivery_implausible_id"] == 1
    assert rec.announcer.file_ids() == ["5001"]
    assert State.from_json(rec.checkpoints.load(STATE)).log_after_id == 138800  # only over ids settled

    portal.add_failure(138801, trigger=UPLOADED, at=clock.now + timedelta(seconds=10), file_id="5003")
    clock.advance(minutes=5)
    rec.run()
    assert rec.announcer.file_ids() == ["5001", "5003"]  # a real row after it is still recovered


def test_a_room_of_several_pages_is_read_page_by_page_in_one_cycle(
    portal: FakePortal, store: SqliteStore, checkpoints: SqliteCheckpoints, clock: Clock
) -> None:
    rec = Reconciler(portal, store, checkpoints, clock, rules=rules_for("100", "200"), knobs=knobs(calls_per_cycle=50))
    _first_cycle_then_invoices(rec, portal, clock, 350)
    portal.add_file("200", "9001", "Invoice-X.pdf", at=clock.now + timedelta(seconds=1))
    clock.advance(minutes=30)
    portal.calls.clear()
    report = rec.run()
    assert report.ok and report.scan_complete
    assert sorted(rec.announcer.file_ids()) == sorted([str(7000 + i) for i in range(350)] + ["9001"])
    # Each page starts a margin early (entries may be pushed down), never from the first page again.
    assert [start for room, start in portal.calls_to("files_by_date") if room == "100"] == [0, 80, 160, 240, 320]


def test_a_page_whose_top_was_never_seen_steps_back_one_page_not_to_the_first(
    backlog: Reconciler, clock: Clock, portal: FakePortal
) -> None:
    rec = backlog
    rec.run(force=True)  # reads page 0 (7449 down to 7350), then the budget stops the pass
    rec.run(force=True)  # reads from 80 (7369 down to 7270)
    # 100 entries above where the pass stopped are deleted: the rest move up past the 20-entry margin.
    portal.room_files["100"] = [f for f in portal.room_files["100"] if not 7300 <= int(f.id) < 7400]
    portal.calls.clear()
    rec.knobs = knobs(calls_per_cycle=20)
    assert rec.run(force=True).scan_complete
    # From 160 the top (7189) is below every entry seen (7270): one page back, then on; never page one again.
    assert [start for _room, start in portal.calls_to("files_by_date")] == [160, 60, 140, 220, 300]
    assert sorted(int(f) for f in rec.announcer.file_ids()) == list(range(7000, 7450))  # each once


def test_a_listing_that_never_ends_stops_at_the_page_cap_and_says_so(
    rec: Reconciler, portal: FakePortal, clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    _first_cycle_then_invoices(rec, portal, clock, 100)
    clock.advance(minutes=30)

    def same_page_for_ever(folder_id: str, *, start: int = 0, count: int = 100) -> list[Any]:
        portal._record("files_by_date", folder_id, start)
        return list(reversed(portal.room_files[folder_id]))[:count]  # newest first, whatever the start

    portal.files_by_date = same_page_for_ever  # type: ignore[method-assign]
    before = REGISTRY.get_sample_value("reconciler_page_cap_hits_total", {"listing": "room_files"}) or 0.0
    with capture_logs() as logs:
        report = rec.run()
    metrics.observe(report)
    assert len(portal.calls_to("files_by_date")) == MAX_WALK_PAGES
    assert report.skipped["room_page_cap"] == 1
    assert [e["listing"] for e in logs if e["event"] == "docspace_listing_page_cap_hit"] == ["room_files"]
    assert REGISTRY.get_sample_value("reconciler_page_cap_hits_total", {"listing": "room_files"}) == before + 1
