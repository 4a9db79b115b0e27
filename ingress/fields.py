"""Fits values read from a delivery into AMQP's field limits: short strings of 255 UTF-8 bytes, 64-bit integers.

Whatever a signed body says ends up in AMQP properties and headers. pika refuses a short string (routing key,
message id, header name) over 255 bytes and a header integer beyond 64 bits: such a value must never reach it.
"""

from __future__ import annotations

SHORT_STRING_BYTES = 255
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1


def utf8_length(value: str) -> int | None:
    """How many bytes ``value`` takes in UTF-8; None if it cannot be encoded (a lone surrogate)."""
    try:
        return len(value.encode("utf-8"))
    except UnicodeEncodeError:
        return None


def fitting(value: str | None, limit: int = SHORT_STRING_BYTES) -> str | None:
    """``value`` when it fits in ``limit`` UTF-8 bytes, else None: an id cut short would name another thing."""
    if value is None:
        return None
    length = utf8_length(value)
    return value if length is not None and length <= limit else None


def int64(value: int) -> int:
    """``value`` capped to a signed 64-bit AMQP integer."""
    return max(INT64_MIN, min(INT64_MAX, value))
