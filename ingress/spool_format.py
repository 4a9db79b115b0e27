"""The spool's record format, and a reader that turns any bytes into records or typed damage, never a crash.

A record is ``[u32 header length][u32 body length][u32 crc32 of header+body][header JSON][body]``, the header a
JSON object that starts with ``{"exchange":``. A damaged stretch (a torn write, flipped bits, a file cut short)
is reported as :class:`Damaged` and the reader finds the next intact record after it: the marker narrows the
search, the lengths and the checksum confirm it.
"""

from __future__ import annotations

import json
import struct
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Protocol

from shared.core.outgoing import OutgoingMessage

PREFIX = struct.Struct(">III")
MARKER = b'{"exchange":'
# A header holds a few short fields and headers; anything near this is not a header the ingress wrote.
MAX_HEADER_BYTES = 64 * 1024


class Buffer(Protocol):
    """``bytes`` or an ``mmap``: what the reader needs of the data it scans."""

    def __len__(self) -> int: ...
    def __getitem__(self, index: slice, /) -> bytes: ...
    def find(self, sub: bytes, start: int = ..., /) -> int: ...


@dataclass(frozen=True)
class Record:
    """One readable record: the message it holds and where it lies in the spool file."""

    message: OutgoingMessage
    offset: int
    end: int  # offset just past this record


@dataclass(frozen=True)
class Damaged:
    """``[offset, end)`` holds no readable record: ``reason`` says what was wrong with it."""

    offset: int
    end: int
    reason: str


def encode(message: OutgoingMessage) -> bytes:
    header = json.dumps(
        {
            "exchange": message.exchange,  # first, so every header starts with MARKER
            "routing_key": message.routing_key,
            "message_id": message.message_id,
            "content_type": message.content_type,
            "headers": dict(message.headers),
            "timestamp": message.timestamp,
        },
        separators=(",", ":"),
    ).encode("utf-8")
    return PREFIX.pack(len(header), len(message.body), zlib.crc32(header + message.body)) + header + message.body


def scan(data: Buffer, start: int = 0) -> Iterator[Record | Damaged]:
    """Everything from ``start`` to the end of ``data``, in order, with no gap: records and damaged stretches."""
    position = start
    while position < len(data):
        item = _decode(data, position)
        if isinstance(item, str):
            end = _next_frame(data, position + 1)
            yield Damaged(position, end, item)
            position = end
        else:
            yield item
            position = item.end


def decode_at(data: Buffer, offset: int) -> Record | Damaged | None:
    """The record at ``offset``, damage there (its end found by scanning on), or None at the end of ``data``."""
    if offset >= len(data):
        return None
    return next(scan(data, offset))


def _decode(data: Buffer, offset: int) -> Record | Damaged | str:
    """A record; :class:`Damaged` whose extent is known (its checksum holds); or why there is no frame here."""
    prefix = data[offset : offset + PREFIX.size]
    if len(prefix) < PREFIX.size:
        return "truncated record"
    header_length, body_length, crc = PREFIX.unpack(prefix)
    if not len(MARKER) < header_length <= MAX_HEADER_BYTES:
        return "implausible header length"
    end = offset + PREFIX.size + header_length + body_length
    if end > len(data):
        return "truncated record"
    header_start = offset + PREFIX.size
    if data[header_start : header_start + len(MARKER)] != MARKER:
        return "no record header"
    payload = data[header_start:end]
    if zlib.crc32(payload) != crc:
        return "checksum mismatch"
    try:
        message = _message(json.loads(payload[:header_length]), payload[header_length:])
    except (ValueError, TypeError, KeyError, RecursionError) as exc:
        # The checksum holds, so the extent is right: only this record is unreadable.
        return Damaged(offset, end, f"unreadable record header: {type(exc).__name__}")
    return Record(message, offset, end)


def _message(header: Any, body: bytes) -> OutgoingMessage:
    if not isinstance(header, dict):
        raise TypeError("the header is not an object")
    exchange, routing_key = header["exchange"], header["routing_key"]
    message_id, content_type = header.get("message_id"), header.get("content_type", "application/json")
    headers, timestamp = header.get("headers") or {}, header.get("timestamp")
    if not (isinstance(exchange, str) and isinstance(routing_key, str) and isinstance(headers, dict)):
        raise TypeError("exchange, routing key or headers of the wrong type")
    if not (isinstance(message_id, str | None) and isinstance(content_type, str)):
        raise TypeError("message id or content type of the wrong type")
    if not (timestamp is None or (isinstance(timestamp, int) and not isinstance(timestamp, bool))):
        raise TypeError("timestamp of the wrong type")
    return OutgoingMessage(
        exchange=exchange,
        routing_key=routing_key,
        body=bytes(body),
        message_id=message_id,
        content_type=content_type,
        headers=headers,
        timestamp=timestamp,
    )


def _next_frame(data: Buffer, start: int) -> int:
    """Where the next intact frame begins at or after ``start`` (``len(data)`` if none does)."""
    search = start + PREFIX.size
    while (found := data.find(MARKER, search)) >= 0:
        candidate = found - PREFIX.size
        if not isinstance(_decode(data, candidate), str):
            return candidate
        search = found + 1
    return len(data)
