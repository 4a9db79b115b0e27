"""The room scan's paging against the simulator: a room with several pages of changes is read once, page by page,
the rooms after it are not starved, and the calls spent stay close to the pages needed."""

from __future__ import annotations

import math
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from consumers.reconciler.context import Knobs, Replica
from consumers.reconciler.cycle import reconcile
from shared.core.rules import ClientRule, Rules
from shared.docspace.admin import PortalAdmin
from shared.docspace.client import DocSpaceClient
from shared.docspace.webhooks import PAGE_SIZE
from shared.store.sqlite_store import SqliteCheckpoints, SqliteStore
from simulator import DocSpaceSimulator
from tests.support.fakes import MemoryAnnouncer

BIG, SMALL = 350, 3  # four pages in one room, one in the other


@pytest.fixture
def stores(tmp_path: Path) -> Iterator[tuple[SqliteStore, SqliteCheckpoints]]:
    store, marks = (
        SqliteStore(tmp_path / "idem.sqlite3", ttl_seconds=3600),
        SqliteCheckpoints(tmp_path / "idem.sqlite3"),
    )
    yield store, marks
    store.close()
    marks.close()


def test_a_room_of_four_pages_is_read_once_and_the_next_room_is_not_starved(
    docspace_sim: DocSpaceSimulator,
    docspace_client: DocSpaceClient,
    stores: tuple[SqliteStore, SqliteCheckpoints],
) -> None:
    sim = docspace_sim
    big, small = sim.create_room("Bulk Ltd"), sim.create_room("Small Ltd")
    big_uploads, small_uploads = sim.create_folder(big, "Uploads"), sim.create_folder(small, "Uploads")
    rules = Rules(
        clients=(
            ClientRule(name="bulk", room_id=big, manager_email="b@bulk.example"),
            ClientRule(name="small", room_id=small, manager_email="s@small.example"),
        )
    )
    store, marks = stores
    announcer = MemoryAnnouncer()
    # No webhook on the portal (the webhook path is off): only the room scan finds these invoices. A generous
    # cap, so a scan that keeps re-reading pages shows as calls spent rather than a test that never ends.
    knobs = Knobs(
        interval=timedelta(minutes=5),
        grace=timedelta(0),
        log_settle=timedelta(minutes=1),
        overlap=timedelta(0),
        triggers=frozenset({"file.created", "file.uploaded"}),
        webhook_path="/docspace/webhook",
        calls_per_cycle=100,
    )

    def cycle() -> None:
        replica = Replica(PortalAdmin(docspace_client.transport), rules, store, marks, announcer, knobs, "paging-test")
        reconcile(replica, force=True)

    cycle()  # the first run: the history floor
    expected = {sim.upload_file(big_uploads, f"Invoice-{i:04d}.pdf") for i in range(BIG)}
    expected |= {sim.upload_file(small_uploads, f"Invoice-s{i}.pdf") for i in range(SMALL)}
    sim.reset_calls()
    cycle()

    ids = announcer.file_ids()
    assert sorted(ids) == sorted(expected)  # every invoice, each once: none missed, none twice
    needed = 1 + math.ceil(BIG / PAGE_SIZE) + 1  # the webhook list, the big room's pages, the small room's one
    spent = sim.call_count()
    assert spent <= 2 * needed, sim.call_counts()
