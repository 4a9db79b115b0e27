"""Calls that must overlap: several threads inside one slow call at once, released when the test says so."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


class Gate:
    """What the slow call does inside: say it has started, then wait until the test opens the gate."""

    def __init__(self) -> None:
        self.started = threading.Event()
        self.release = threading.Event()

    def hold(self) -> None:
        self.started.set()
        assert self.release.wait(5)


def call_together(count: int, call: Callable[[], T], gate: Gate) -> list[T]:
    """Run ``call`` on ``count`` threads; once one is held at ``gate``, open it; every answer, in finishing order."""
    answers: list[T] = []
    threads = [threading.Thread(target=lambda: answers.append(call())) for _ in range(count)]
    for thread in threads:
        thread.start()
    assert gate.started.wait(5)
    gate.release.set()
    for thread in threads:
        thread.join(5)
    return answers
