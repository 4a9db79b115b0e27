"""Calls that must overlap: threads inside one slow call at once, and how many were inside together."""

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


class Peak:
    """A region threads enter with ``with peak:``; ``most`` is how many were ever inside at once."""

    def __init__(self) -> None:
        self.inside = 0
        self.most = 0
        self._lock = threading.Lock()

    def __enter__(self) -> None:
        with self._lock:
            self.inside += 1
            self.most = max(self.most, self.inside)

    def __exit__(self, *exc: object) -> None:
        with self._lock:
            self.inside -= 1


def run_threads(targets: list[Callable[[], object]], timeout: float) -> None:
    """Start one thread per target, then wait for all of them (each at most ``timeout`` seconds)."""
    threads = [threading.Thread(target=target) for target in targets]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout)
