"""A local durable spool for deliveries the broker cannot take, drained in order once the broker is back.

DocSpace retries a failed delivery for about 31 s and then gives up for good. A broker outage longer than that
would lose invoices, so while the broker is away the ingress appends each verified delivery here (fsynced before
it answers 2xx) and a drainer publishes them, in order, when the broker returns.

Files in ``SPOOL_DIR``: ``deliveries.spool``, an append-only file of records (format: ``ingress/spool_format.py``);
``deliveries.checkpoint``, the offset of the first record the broker has not confirmed, replaced atomically after
each confirm (so a record is published twice only if the process dies between a confirm and that write, and the
classifier's idempotency absorbs it); and ``quarantine/``, where records that cannot be published, and damaged
stretches of the file, are moved so they never block the records behind them.
"""

from __future__ import annotations

import contextlib
import json
import mmap
import os
import threading
import time
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import structlog

from ingress.spool_format import PREFIX, Damaged, Record, encode, scan
from shared.core.outgoing import OutgoingMessage

log = structlog.get_logger("ingress.spool")


class SpoolFull(Exception):
    """No room (or no disk) for another delivery: the ingress answers 503 and DocSpace retries."""


class Spool:
    """The spool's files: append, read the oldest, confirm it, or move it aside into ``quarantine/``."""

    def __init__(
        self,
        directory: str | Path,
        *,
        max_bytes: int,
        on_quarantine: Callable[[str, str | None], None] | None = None,
    ) -> None:
        """``on_quarantine(reason, event_id)`` hears of each record or damaged stretch moved aside."""
        self._dir = Path(directory)
        self._dir.mkdir(parents=True, exist_ok=True)
        self._log_path = self._dir / "deliveries.spool"
        self._checkpoint_path = self._dir / "deliveries.checkpoint"
        self.quarantine_dir = self._dir / "quarantine"
        self._max_bytes = max_bytes
        self._on_quarantine = on_quarantine
        self._quarantined = 0
        self._lock = threading.Lock()
        # A raw descriptor, never a buffered file: a write that fails must leave no bytes behind in a buffer that
        # a later write would flush after another delivery's frame (issue 18, item 3).
        self._fd = _open_log(self._log_path)
        self._size = self._file_size()
        self._offset = self._pending = 0
        with self._lock:
            self._recover(self._read_checkpoint())
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
        frame = encode(message)
        with self._lock:
            try:
                good = self._file_size()
            except OSError as exc:
                raise SpoolFull(f"the spool cannot be read: {exc}") from exc
            self._size = good
            if good + len(frame) > self._max_bytes:
                raise SpoolFull(f"the spool holds {good} bytes; its limit is {self._max_bytes}")
            try:
                _write_all(self._fd, frame)
                os.fsync(self._fd)
            except OSError as exc:
                # ENOSPC, EFBIG, EIO: this delivery gets a 503, so none of its bytes may stay in the file, where the
                # next frame would land behind them. If even the cut fails, the stretch is found damaged and moved
                # aside before the records after it are read (peek recovers when a read does not add up).
                self._cut_back(good, exc)
                raise SpoolFull(f"the spool could not be written: {exc}") from exc
            self._size = good + len(frame)
            self._pending += 1

    def peek(self) -> Record | None:
        """The oldest delivery not yet confirmed by the broker (damage in its way is moved aside first)."""
        with self._lock:
            record = self._read_at(self._offset)
            if record is None and self._offset < self._size:
                # The file changed under us (a disk fault, someone editing it): recover as at start-up.
                self._recover(self._offset)
                record = self._read_at(self._offset)
            return record

    def confirm(self, record: Record) -> None:
        """The broker confirmed ``record``: move the checkpoint past it; empty the files once all are done."""
        with self._lock:
            # Memory first: if the disk fails below, this record is still never handed out again by this process.
            self._offset = record.end
            self._pending = max(0, self._pending - 1)
            self._size = self._file_size()
            if self._offset == self._size:
                # Everything is out (the file itself says so, not a count kept beside it): start the files afresh
                # so the spool never grows without bound.
                os.ftruncate(self._fd, 0)
                os.fsync(self._fd)
                self._size = self._offset = self._pending = 0
            self._write_checkpoint(self._offset)

    def quarantine(self, record: Record, reason: str, error: str) -> Path:
        """Move ``record`` aside (its body byte for byte, and what it was) and go on with the next one."""
        message = record.message
        event_id = message.headers.get("x-docspace-event-id", message.message_id)
        path = self._write_quarantine(
            reason,
            str(event_id) if event_id is not None else None,
            message.body,
            {
                "reason": reason,
                "error": error,
                "event_id": event_id,
                "routing_key": message.routing_key,
                "message_id": message.message_id,
                "content_type": message.content_type,
                "headers": dict(message.headers),
                "timestamp": message.timestamp,
            },
            suffix=".delivery",
        )
        log.error(
            "spool_record_quarantined",
            reason=reason,
            error=error,
            event_id=str(event_id)[:255] if event_id is not None else None,
            path=str(path),
            hint="the body is the delivery as DocSpace sent it; re-send it with 'invoice-pipeline send-test-event "
            "--file' once the cause is fixed",
        )
        self.confirm(record)
        return path

    def close(self) -> None:
        with self._lock:
            if self._fd >= 0:
                os.close(self._fd)
                self._fd = -1

    # ---- under the lock -------------------------------------------------------------------------------------

    def _file_size(self) -> int:
        return os.fstat(self._fd).st_size

    def _cut_back(self, good: int, error: OSError) -> None:
        """Remove whatever a failed append left after ``good`` bytes."""
        try:
            os.ftruncate(self._fd, good)
        except OSError as cut_error:
            log.error("spool_cut_failed", error=str(cut_error), write_error=str(error), size=good)
        with contextlib.suppress(OSError):
            self._size = self._file_size()

    def _read_at(self, offset: int) -> Record | None:
        prefix = os.pread(self._fd, PREFIX.size, offset)
        if len(prefix) < PREFIX.size:
            return None
        header_length, body_length, _crc = PREFIX.unpack(prefix)
        if offset + PREFIX.size + header_length + body_length > self._size:
            return None
        rest = os.pread(self._fd, header_length + body_length, offset + PREFIX.size)
        item = next(scan(prefix + rest), None)
        return replace(item, offset=offset, end=offset + item.end) if isinstance(item, Record) else None

    def _recover(self, checkpoint: int | None) -> None:
        """Find every record and damaged stretch; move the damage after the checkpoint aside; keep the records."""
        self._size = self._file_size()
        items = self._scan_file()
        starts = {item.offset for item in items} | {self._size}
        if checkpoint is None or checkpoint not in starts:
            log.error(
                "spool_checkpoint_damaged",
                checkpoint=checkpoint,
                hint="publishing every record in the spool from the start; the stages' idempotency absorbs those "
                "the broker already had",
            )
            checkpoint = 0
        waiting = [item for item in items if item.offset >= checkpoint]
        records = [item for item in waiting if isinstance(item, Record)]
        damaged = [item for item in waiting if isinstance(item, Damaged)]
        # A torn tail is what a crash mid-append leaves (that delivery was never answered 2xx): cut it off.
        # Damage before intact records is not, and the file is rewritten without it.
        tail = damaged[-1] if damaged and damaged[-1] is waiting[-1] else None
        for stretch in damaged:
            self._quarantine_stretch(stretch, torn_tail=stretch is tail)
        if any(stretch is not tail for stretch in damaged):
            self._rewrite(records)
            checkpoint = 0
        elif tail is not None:
            os.ftruncate(self._fd, tail.offset)
            self._size = tail.offset
        self._offset = checkpoint
        self._pending = len(records)
        self._write_checkpoint(self._offset)

    def _scan_file(self) -> list[Record | Damaged]:
        if self._size == 0:
            return []
        with mmap.mmap(self._fd, 0, access=mmap.ACCESS_READ) as data:
            return list(scan(data))

    def _quarantine_stretch(self, stretch: Damaged, *, torn_tail: bool) -> None:
        raw = os.pread(self._fd, stretch.end - stretch.offset, stretch.offset)
        path = self._write_quarantine(
            "damaged",
            None,
            raw,
            {"reason": "damaged", "error": stretch.reason, "offset": stretch.offset, "length": len(raw)},
            suffix=".bin",
        )
        (log.warning if torn_tail else log.error)(
            "spool_torn_tail_removed" if torn_tail else "spool_damaged",
            offset=stretch.offset,
            bytes=len(raw),
            error=stretch.reason,
            path=str(path),
        )

    def _rewrite(self, records: list[Record]) -> None:
        """Replace the spool file with just ``records``, atomically."""
        temporary = self._log_path.with_suffix(".rewrite")
        with open(temporary, "wb") as handle:
            for record in records:
                handle.write(encode(record.message))
            handle.flush()
            os.fsync(handle.fileno())
        os.close(self._fd)
        os.replace(temporary, self._log_path)
        self._fd = _open_log(self._log_path)
        self._size = self._file_size()

    def _write_quarantine(
        self, reason: str, event_id: str | None, data: bytes, meta: dict[str, Any], *, suffix: str
    ) -> Path:
        self.quarantine_dir.mkdir(exist_ok=True)
        self._quarantined += 1
        stem = f"{datetime.now(UTC):%Y%m%dT%H%M%S}-{time.time_ns() % 10**9:09d}-{self._quarantined}-{reason}"
        path = self.quarantine_dir / (stem + suffix)
        meta = {**meta, "quarantined_at": datetime.now(UTC).isoformat()}
        for target, content in ((path, data), (path.with_suffix(".json"), _json_bytes(meta))):
            with open(target, "wb") as handle:
                handle.write(content)
                handle.flush()
                os.fsync(handle.fileno())
        if self._on_quarantine is not None:
            self._on_quarantine(reason, event_id)
        return path

    def _read_checkpoint(self) -> int | None:
        """The checkpoint's offset: 0 without one, None if it cannot be read."""
        try:
            text = self._checkpoint_path.read_text(encoding="ascii").strip()
        except FileNotFoundError:
            return 0
        except (OSError, UnicodeDecodeError):
            return None
        if not text:
            return 0
        return int(text) if text.isascii() and text.isdigit() and len(text) < 20 else None

    def _write_checkpoint(self, offset: int) -> None:
        temporary = self._checkpoint_path.with_suffix(".tmp")
        with open(temporary, "w", encoding="ascii") as handle:
            handle.write(str(offset))
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, self._checkpoint_path)


def _open_log(path: Path) -> int:
    # O_APPEND: every frame lands at the end, whatever offset a read used last.
    return os.open(path, os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o666)


def _write_all(fd: int, data: bytes) -> None:
    """``os.write`` until every byte is written; a short write is followed by the next, which reports the error."""
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        if written <= 0:
            raise OSError(f"the spool took {written} bytes")
        view = view[written:]


def _json_bytes(value: dict[str, Any]) -> bytes:
    return json.dumps(value, indent=2, default=str, ensure_ascii=False).encode("utf-8", "backslashreplace")
