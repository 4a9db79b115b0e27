"""The ingress spool: durable, ordered, bounded, and it survives a restart and a torn write."""

from __future__ import annotations

from pathlib import Path

import pytest

from ingress.spool import Spool, SpoolFull
from shared.outgoing import OutgoingMessage


def _message(n: int, size: int = 10) -> OutgoingMessage:
    return OutgoingMessage(
        exchange="docspace.events",
        routing_key="file.uploaded",
        body=f"{n:04d}".encode() + b"x" * size,
        message_id=str(n),
        content_type="application/json; charset=utf-8",
        headers={"x-docspace-event-id": str(n), "x-signature-verified": True},
        timestamp=1_700_000_000 + n,
    )


def _drain(spool: Spool) -> list[OutgoingMessage]:
    out = []
    while (record := spool.peek()) is not None:
        out.append(record.message)
        spool.confirm(record)
    return out


def test_records_come_back_in_order_with_their_properties(tmp_path: Path) -> None:
    spool = Spool(tmp_path, max_bytes=1024 * 1024)
    for n in range(5):
        spool.append(_message(n))
    assert spool.depth == 5
    drained = _drain(spool)
    assert [m.message_id for m in drained] == ["0", "1", "2", "3", "4"]
    assert drained[2].body == _message(2).body
    assert drained[2].headers["x-docspace-event-id"] == "2" and drained[2].headers["x-spooled"] is True
    assert drained[2].routing_key == "file.uploaded" and drained[2].timestamp == 1_700_000_002
    assert spool.depth == 0


def test_a_confirmed_record_is_not_handed_out_again(tmp_path: Path) -> None:
    spool = Spool(tmp_path, max_bytes=1024 * 1024)
    spool.append(_message(1))
    spool.append(_message(2))
    first = spool.peek()
    assert first is not None
    spool.confirm(first)
    reopened = Spool(tmp_path, max_bytes=1024 * 1024)
    assert [m.message_id for m in _drain(reopened)] == ["2"]


def test_it_survives_a_restart(tmp_path: Path) -> None:
    spool = Spool(tmp_path, max_bytes=1024 * 1024)
    for n in range(3):
        spool.append(_message(n))
    spool.close()
    reopened = Spool(tmp_path, max_bytes=1024 * 1024)
    assert reopened.depth == 3
    assert [m.message_id for m in _drain(reopened)] == ["0", "1", "2"]


def test_a_torn_tail_is_cut_off_and_later_records_are_readable(tmp_path: Path) -> None:
    spool = Spool(tmp_path, max_bytes=1024 * 1024)
    spool.append(_message(1))
    spool.close()
    with open(tmp_path / "deliveries.spool", "ab") as log:
        log.write(b"\x00\x00\x00\x10\x00\x00")  # a crash in the middle of the next frame
    reopened = Spool(tmp_path, max_bytes=1024 * 1024)
    assert reopened.depth == 1
    reopened.append(_message(2))
    assert [m.message_id for m in _drain(reopened)] == ["1", "2"]


def test_a_full_spool_refuses(tmp_path: Path) -> None:
    spool = Spool(tmp_path, max_bytes=1024 * 1024)
    spool.append(_message(1, size=1024 * 1024 - 400))
    with pytest.raises(SpoolFull):
        spool.append(_message(2, size=1000))
    assert spool.depth == 1


def test_the_files_are_emptied_once_everything_is_out(tmp_path: Path) -> None:
    spool = Spool(tmp_path, max_bytes=1024 * 1024)
    for n in range(3):
        spool.append(_message(n, size=1000))
    _drain(spool)
    assert (tmp_path / "deliveries.spool").stat().st_size == 0
    spool.append(_message(9))
    assert [m.message_id for m in _drain(spool)] == ["9"]
