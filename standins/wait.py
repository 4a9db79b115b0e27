"""``wait_for``: what a stand-in has received, once there is enough of it; how the tests wait on stand-ins."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def wait_for(
    count_now: Callable[[], int], items: Callable[[], list[T]], count: int, timeout: float, noun: str
) -> list[T]:
    """``items()`` once ``count_now()`` reaches ``count``; ``AssertionError`` (naming ``noun``) after ``timeout``."""
    deadline = time.monotonic() + timeout
    while count_now() < count and time.monotonic() < deadline:
        time.sleep(0.02)
    received = items()
    if len(received) < count:
        raise AssertionError(f"expected {count} {noun}, got {len(received)}")
    return received
