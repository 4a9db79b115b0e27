"""How long a server asked us to wait: ``Retry-After`` (seconds or an HTTP date) or ``X-RateLimit-Reset``."""

from __future__ import annotations

import time
from collections.abc import Mapping
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime


def parse_retry_after(value: str | None, *, now: datetime | None = None) -> float | None:
    """Seconds to wait per a ``Retry-After`` value (delta-seconds or HTTP date); None if absent or junk."""
    if value is None or not value.strip():
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        pass
    else:
        # Delta-seconds are never negative (RFC 9110); a negative or infinite value is junk, not "now".
        return seconds if 0 <= seconds < float("inf") else None
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:  # HTTP dates are GMT; a naive result means the sender left the zone out
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


def retry_after_from(headers: Mapping[str, str], now: float | None = None) -> float | None:
    """``Retry-After`` if present, else DocSpace's ``X-RateLimit-Reset`` (a delta, or an epoch time when large)."""
    seconds = parse_retry_after(headers.get("Retry-After"))
    if seconds is not None:
        return seconds
    reset = headers.get("X-RateLimit-Reset")
    if not reset:
        return None
    try:
        value = float(reset)
    except ValueError:
        return None
    if value > 1e9:
        value -= time.time() if now is None else now
    return max(value, 0.0)
