"""How long a server asked us to wait: ``Retry-After`` (seconds or an HTTP date) or ``X-RateLimit-Reset``.

The answer is always ``None`` or a finite number of seconds between 0 and a cap: a server (or whoever sits in
front of it) must not be able to stop the pipeline with ``inf``, ``nan`` or a date in the year 9999.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

__all__ = ["DEFAULT_MAX_PAUSE", "cap_pause", "parse_retry_after", "retry_after_from"]

# The longest pause a server's answer may impose (MAX_PAUSE_SECONDS). DocSpace's own windows are a minute.
DEFAULT_MAX_PAUSE = 300.0
# Longer values are no number of seconds anyone means; float() of them is slow or overflows anyway.
_MAX_TEXT = 64


def cap_pause(seconds: float | None, cap: float = DEFAULT_MAX_PAUSE) -> float | None:
    """``seconds`` within ``[0, cap]``; ``None`` when it is absent or not a finite number."""
    if seconds is None or not math.isfinite(seconds):
        return None
    return min(max(seconds, 0.0), cap)


def parse_retry_after(
    value: str | None, *, now: datetime | None = None, cap: float = DEFAULT_MAX_PAUSE
) -> float | None:
    """Seconds to wait per a ``Retry-After`` value (delta-seconds or HTTP date), at most ``cap``; None if junk."""
    if value is None or not value.strip() or len(value) > _MAX_TEXT:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        pass
    else:
        # Delta-seconds are never negative (RFC 9110); a negative or non-finite value is junk, not "now".
        return cap_pause(seconds, cap) if seconds >= 0 else None
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if when.tzinfo is None:  # HTTP dates are GMT; a naive result means the sender left the zone out
        when = when.replace(tzinfo=UTC)
    try:
        return cap_pause((when - (now or datetime.now(UTC))).total_seconds(), cap)
    except OverflowError:
        return None


def retry_after_from(
    headers: Mapping[str, str], now: float | None = None, *, cap: float = DEFAULT_MAX_PAUSE
) -> float | None:
    """``Retry-After`` if present, else DocSpace's ``X-RateLimit-Reset`` (a delta, or an epoch time when large).

    Either way the result is ``None`` or finite seconds in ``[0, cap]``.
    """
    seconds = parse_retry_after(headers.get("Retry-After"), cap=cap)
    if seconds is not None:
        return seconds
    reset = headers.get("X-RateLimit-Reset")
    if not reset or len(reset) > _MAX_TEXT:
        return None
    try:
        value = float(reset)
    except ValueError:
        return None
    if not math.isfinite(value):
        return None
    if value > 1e9:
        value -= time.time() if now is None else now
    return cap_pause(value, cap)
