"""A local durable spool for deliveries the broker cannot take, drained in order once the broker is back.

DocSpace retries a failed delivery for about 31 s and then gives up for good. A broker outage longer than that
would lose invoices, so while the broker is away the ingress appends each verified delivery here (fsynced before
it answers 2xx) and a drainer publishes them, in order, when the broker returns.

Format: one append-only file of records ``[u32 header length][u32 body length][u32 crc32][header JSON][body]``
and a checkpoint file holding the offset of the first record not yet confirmed by the broker. The checkpoint is
replaced atomically after each confirm, so a record is published again only if the process dies between the
broker's confirm and that write (a window of microseconds; the classifier's idempotency absorbs it).
"""

from __future__ import annotations

import json
import os
import struct
import threading
import zlib
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import structlog

from shared.errors import BrokerUnavailable
from shared.outgoing import OutgoingMessage

log = structlog.get_logger("ingress.spool")

_FRAME = struct.Struct(">III")


class SpoolFull(Exception):
    """No room (or no disk) for another delivery: the ingress answers 503 and DocSpace retries."""


@dataclass(frozen=True)
class _Record:
    message: OutgoingMessage
    end: int  # offset just past this record


class Spool:
    def __init__(self, directory: str | Path, *, max_bytes: int) -> None:
        self._dir = Path(directory)
        self._dir.mkdir(parents=True, exist_ok=True)
        self._log_path = self._dir / "deliveries.spool"
        self._checkpoint_path = self._dir / "deliveries.checkpoint"
        self._max_bytes = max_bytes
        self._lock = threading.Lock()
        self._log = open(self._log_path, "a+b")  # noqa: SIM115 - held open for the process's life
        self._size = self._log.seek(0, os.SEEK_END)
        self._offset = min(self._read_checkpoint(), self._size)
        self._pending, valid_end = self._scan(self._offset)
        if valid_end < self._size:
            # A torn record at the tail (the process died mid-write, before answering): cut it off, or every
            # later append would sit behind it unread.
            log.warning("spool_torn_tail_removed", bytes=self._size - valid_end)
            self._log.truncate(valid_end)
            self._size = valid_end
        if self._pending:
            log.warning("spool_recovered", pending=self._pending, path=str(self._log_path))

    @property
    def depth(self) -> int:
        """Deliveries waiting for the broker."""
        return self._pending

    @property
    def has_room(self) -> bool:
        return self._size < self._max_bytes

    def append(self, message: OutgoingMessage) -> None:
        """Durably add a delivery; returns only once it is on disk. Raises SpoolFull."""
        header = json.dumps(
            {
                "exchange": message.exchange,
                "routing_key": message.routing_key,
                "message_id": message.message_id,
                "content_type": message.content_type,
                "headers": dict(message.headers),
                "timestamp": message.timestamp,
            },
            separators=(",", ":"),
        ).encode("utf-8")
        frame = _FRAME.pack(len(header), len(message.body), zlib.crc32(header + message.body)) + header + message.body
        with self._lock:
            if self._size + len(frame) > self._max_bytes:
                raise SpoolFull(f"the spool holds {self._size} bytes; its limit is {self._max_bytes}")
            try:
                self._log.write(frame)
                self._log.flush()
                os.fsync(self._log.fileno())
            except OSError as exc:
                # A partial frame would be cut off at the next read (its length or crc does not match).
                raise SpoolFull(f"the spool could not be written: {exc}") from exc
            self._size += len(frame)
            self._pending += 1

    def peek(self) -> _Record | None:
        """The oldest delivery not yet confirmed by the broker."""
        with self._lock:
            return self._read_at(self._offset)

    def confirm(self, record: _Record) -> None:
        """The broker confirmed ``record``: move the checkpoint past it; empty the files once all are done."""
        with self._lock:
            self._offset = record.end
            self._pending -= 1
            if self._offset >= self._size:
                # Everything is out: start the files afresh so the spool never grows without bound.
                self._log.truncate(0)
                self._log.flush()
                os.fsync(self._log.fileno())
                self._size = self._offset = self._pending = 0
            self._write_checkpoint(self._offset)

    def close(self) -> None:
        with self._lock:
            self._log.close()

    def _read_at(self, offset: int) -> _Record | None:
        self._log.seek(offset)
        prefix = self._log.read(_FRAME.size)
        if len(prefix) < _FRAME.size:
            return None
        header_len, body_len, crc = _FRAME.unpack(prefix)
        payload = self._log.read(header_len + body_len)
        if len(payload) < header_len + body_len or zlib.crc32(payload) != crc:
            log.error("spool_torn_record", offset=offset, hint="a crash mid-write; the record was never answered 2xx")
            return None
        header: dict[str, Any] = json.loads(payload[:header_len])
        message = OutgoingMessage(
            exchange=header["exchange"],
            routing_key=header["routing_key"],
            body=payload[header_len:],
            message_id=header["message_id"],
            content_type=header["content_type"],
            headers={**header["headers"], "x-spooled": True},
            timestamp=header["timestamp"],
        )
        return _Record(message, offset + _FRAME.size + header_len + body_len)

    def _scan(self, offset: int) -> tuple[int, int]:
        """How many whole records follow ``offset``, and where the last one ends."""
        count, end = 0, offset
        with self._lock:
            record = self._read_at(offset)
            while record is not None:
                count, end = count + 1, record.end
                record = self._read_at(record.end)
        return count, end

    def _read_checkpoint(self) -> int:
        try:
            return int(self._checkpoint_path.read_text(encoding="ascii").strip() or 0)
        except FileNotFoundError:
            return 0

    def _write_checkpoint(self, offset: int) -> None:
        temporary = self._checkpoint_path.with_suffix(".tmp")
        with open(temporary, "w", encoding="ascii") as handle:
            handle.write(str(offset))
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, self._checkpoint_path)


class SpoolDrainer:
    """Publishes spooled deliveries, oldest first, one confirmed publish at a time, whenever the broker is up."""

    def __init__(
        self,
        spool: Spool,
        *,
        publish_and_wait: Callable[[OutgoingMessage], None],
        is_connected: Callable[[], bool],
        exchange: str,
        idle_wait: float = 0.5,
    ) -> None:
        self._spool = spool
        self._exchange = exchange
        self._publish = publish_and_wait
        self._is_connected = is_connected
        self._idle_wait = idle_wait
        self._stopping = threading.Event()
        self._wake = threading.Event()
        self._thread = threading.Thread(target=self._run, name="spool-drainer", daemon=True)

    def start(self) -> SpoolDrainer:
        self._thread.start()
        return self

    def wake(self) -> None:
        self._wake.set()

    def stop(self) -> None:
        self._stopping.set()
        self._wake.set()
        self._thread.join(5)

    def _run(self) -> None:
        while not self._stopping.is_set():
            record = self._spool.peek() if self._is_connected() else None
            if record is None:
                self._wake.wait(self._idle_wait)
                self._wake.clear()
                continue
            try:
                # To today's events exchange: a spool written under another TOPOLOGY_PREFIX must not stall.
                self._publish(replace(record.message, exchange=self._exchange))
            except BrokerUnavailable as exc:
                log.warning("spool_drain_paused", error=str(exc), pending=self._spool.depth)
                self._stopping.wait(1.0)
                continue
            self._spool.confirm(record)
            if self._spool.depth == 0:
                log.info("spool_drained")
