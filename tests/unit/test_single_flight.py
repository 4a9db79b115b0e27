"""The single-flight cache: one call per key however many threads miss together, failures never cached, bounds kept."""

from __future__ import annotations

import threading

import pytest

from shared.core.single_flight import SingleFlightCache
from tests.support.clock import FakeClock
from tests.support.together import Gate, call_together


def test_threads_that_miss_together_make_one_call() -> None:
    cache: SingleFlightCache[str, int] = SingleFlightCache(max_entries=8)
    gate = Gate()
    calls: list[str] = []

    def load() -> int:
        calls.append("load")
        gate.hold()
        return 42

    answers = call_together(8, lambda: cache.get("k", load), gate)
    assert calls == ["load"]
    assert answers == [42] * 8
    assert cache.hits == 7  # every thread but the caller got the answer from the cache


def test_other_keys_do_not_wait_for_a_slow_call() -> None:
    cache: SingleFlightCache[str, str] = SingleFlightCache(max_entries=8)
    started, release = threading.Event(), threading.Event()

    def slow() -> str:
        started.set()
        assert release.wait(5)
        return "slow"

    thread = threading.Thread(target=cache.get, args=("a", slow))
    thread.start()
    assert started.wait(5)
    assert cache.get("b", lambda: "quick") == "quick"  # while "a" is still loading
    release.set()
    thread.join(5)
    assert cache.get("a", lambda: "again") == "slow"


def test_a_failure_is_not_cached_and_a_waiting_thread_calls_again() -> None:
    cache: SingleFlightCache[str, int] = SingleFlightCache(max_entries=8)
    started, release = threading.Event(), threading.Event()
    calls: list[str] = []

    def failing() -> int:
        calls.append("failing")
        started.set()
        assert release.wait(5)
        raise ConnectionError("503")

    def working() -> int:
        calls.append("working")
        return 7

    errors: list[BaseException] = []

    def first() -> None:
        try:
            cache.get("k", failing)
        except ConnectionError as exc:
            errors.append(exc)

    answers: list[int] = []
    one = threading.Thread(target=first)
    one.start()
    assert started.wait(5)
    two = threading.Thread(target=lambda: answers.append(cache.get("k", working)))
    two.start()
    release.set()
    one.join(5)
    two.join(5)
    assert len(errors) == 1 and answers == [7]
    assert calls == ["failing", "working"]
    assert cache.get("k", failing) == 7  # the success is cached; the failure never was


def test_none_is_an_answer() -> None:
    cache: SingleFlightCache[str, str | None] = SingleFlightCache(max_entries=8)
    calls: list[str] = []

    def load() -> str | None:
        calls.append("load")
        return None

    assert cache.get("k", load) is None
    assert cache.get("k", load) is None
    assert calls == ["load"]


def test_an_answer_is_forgotten_after_its_ttl() -> None:
    clock = FakeClock(1000.0)
    cache: SingleFlightCache[str, int] = SingleFlightCache(max_entries=8, ttl=60, clock=clock)
    assert cache.get("k", lambda: 1) == 1
    clock.now += 60
    assert cache.get("k", lambda: 2) == 1  # still within its ttl
    clock.now += 0.001
    assert cache.get("k", lambda: 3) == 3
    assert len(cache) == 1


def test_the_least_recently_used_answer_goes_first() -> None:
    cache: SingleFlightCache[str, str] = SingleFlightCache(max_entries=2)
    cache.get("a", lambda: "a")
    cache.get("b", lambda: "b")
    cache.get("a", lambda: "not called")  # "a" is now the most recently used
    cache.get("c", lambda: "c")  # so "b" goes
    assert len(cache) == 2
    assert cache.get("a", lambda: "a again") == "a"
    assert cache.get("b", lambda: "b again") == "b again"


def test_put_keeps_an_answer_learnt_on_the_way() -> None:
    cache: SingleFlightCache[str, str] = SingleFlightCache(max_entries=8)

    def load() -> str:
        cache.put("below", "room")  # from inside a call, as the room lookup does
        return "room"

    assert cache.get("folder", load) == "room"
    assert cache.get("below", lambda: "not called") == "room"


def test_a_cache_needs_room_for_one_answer() -> None:
    with pytest.raises(ValueError):
        SingleFlightCache(max_entries=0)
