"""``Retry-After`` and ``X-RateLimit-Reset``: what a server may ask for, finite and within the cap, or nothing."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from shared.limits.retry_after import DEFAULT_MAX_PAUSE, parse_retry_after, retry_after_from

NOW = datetime(2026, 9, 18, 8, 0, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("5", 5.0),
        (" 2.5 ", 2.5),
        ("0", 0.0),
        ("Fri, 18 Sep 2026 08:00:30 GMT", 30.0),
        ("Fri, 18 Sep 2026 07:00:00 GMT", 0.0),  # in the past: now
        ("100000", DEFAULT_MAX_PAUSE),
        ("1e308", DEFAULT_MAX_PAUSE),
        ("Fri, 31 Dec 9999 23:59:59 GMT", DEFAULT_MAX_PAUSE),
        ("inf", None),
        ("Infinity", None),
        ("nan", None),
        ("-1", None),
        ("1e400", None),  # float() says inf
        ("soon", None),
        ("", None),
        (None, None),
        ("9" * 5000, None),
    ],
)
def test_retry_after(value: str | None, expected: float | None) -> None:
    assert parse_retry_after(value, now=NOW) == expected


def test_the_cap_is_the_callers() -> None:
    assert parse_retry_after("600", now=NOW, cap=60) == 60
    assert retry_after_from({"X-RateLimit-Reset": "600"}, cap=60) == 60


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({"X-RateLimit-Reset": "12"}, 12.0),
        ({"X-RateLimit-Reset": "1789000030"}, 30.0),  # an epoch time: the rest of the window
        ({"X-RateLimit-Reset": "1788999000"}, 0.0),
        ({"X-RateLimit-Reset": "inf"}, None),
        ({"X-RateLimit-Reset": "-inf"}, None),
        ({"X-RateLimit-Reset": "nan"}, None),
        ({"X-RateLimit-Reset": "-5"}, 0.0),
        ({"X-RateLimit-Reset": "1e308"}, DEFAULT_MAX_PAUSE),
        ({"X-RateLimit-Reset": "x"}, None),
        ({"Retry-After": "inf", "X-RateLimit-Reset": "7"}, 7.0),  # junk Retry-After: the other header decides
        ({"Retry-After": "3", "X-RateLimit-Reset": "7"}, 3.0),
        ({}, None),
    ],
)
def test_rate_limit_reset(headers: dict[str, str], expected: float | None) -> None:
    assert retry_after_from(headers, now=1789000000.0) == expected
