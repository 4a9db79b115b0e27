"""The mover, on the real DocSpace client and the simulator, never carries a file into a room its folder has left."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from consumers.mover.handler import move_invoice
from shared.core.errors import PermanentError
from shared.core.events import IncomingFolder, InvoiceDetected
from shared.docspace.client import DocSpaceClient
from shared.store.sqlite_store import SqliteStore
from simulator import DocSpaceSimulator
from tests.support.fakes import RecordingEmitter
from tests.support.message_builders import invoice_detected

ROOM_TTL = 300.0


def decided(file_id: str, *, folder: str, room: str, incoming: str, seconds_ago: float) -> InvoiceDetected:
    """The classifier's decision about ``file_id`` in ``folder``, its room read ``seconds_ago``."""
    return invoice_detected(
        invoice_id=f"{file_id}:v1",
        file_id=file_id,
        folder_id=folder,
        room_id=room,
        incoming=IncomingFolder(id=incoming),
        room_seen_at=datetime.now(UTC) - timedelta(seconds=seconds_ago),
    )


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SqliteStore]:
    s = SqliteStore(str(tmp_path / "idempotency.sqlite3"), ttl_seconds=60)
    yield s
    s.close()


def test_an_invoice_decided_before_its_folder_changed_rooms_is_not_moved_into_the_old_room(
    docspace_sim: DocSpaceSimulator, docspace_client: DocSpaceClient, store: SqliteStore
) -> None:
    acme, globex = docspace_sim.create_room("Acme Ltd"), docspace_sim.create_room("Globex")
    acme_incoming = docspace_sim.create_folder(acme, "Incoming")
    scans = docspace_sim.create_folder(acme, "Scans")
    file_id = docspace_sim.upload_file(scans, "Invoice-7.pdf")
    # The classifier placed Scans in Acme's room longer ago than the TTL; the message then waited (retries, a
    # backlog); meanwhile the folder was dragged into Globex's room.
    detected = decided(file_id, folder=scans, room=acme, incoming=acme_incoming, seconds_ago=ROOM_TTL + 60)
    docspace_sim.move_folder(scans, globex)
    docspace_sim.reset_calls()
    emit = RecordingEmitter()

    with pytest.raises(PermanentError) as raised:
        move_invoice(detected, files=docspace_client, emit=emit, store=store, room_ttl=ROOM_TTL)

    assert raised.value.reason == "room_changed"
    assert str(docspace_sim.file(file_id)["folderId"]) == scans  # still in Globex's room, untouched
    assert docspace_sim.files_in(acme_incoming) == []
    assert emit.events == []
    assert docspace_sim.call_counts() == {"GET /api/2.0/files/folder/{folder_id}/path": 1}


def test_a_fresh_decision_moves_with_no_path_read(
    docspace_sim: DocSpaceSimulator, docspace_client: DocSpaceClient, store: SqliteStore
) -> None:
    acme = docspace_sim.create_room("Acme Ltd")
    acme_incoming = docspace_sim.create_folder(acme, "Incoming")
    file_id = docspace_sim.upload_file(acme, "Invoice-8.pdf")
    detected = decided(file_id, folder=acme, room=acme, incoming=acme_incoming, seconds_ago=2)
    docspace_sim.reset_calls()

    move_invoice(detected, files=docspace_client, emit=RecordingEmitter(), store=store, room_ttl=ROOM_TTL)

    assert str(docspace_sim.file(file_id)["folderId"]) == acme_incoming
    assert not any("/path" in call for call in docspace_sim.call_counts())
