"""The client-side DocSpace limiter: spacing, the burst, write slots, a 429 pause, and the bounded wait."""

from __future__ import annotations

import threading
from typing import Any

import pytest

from shared.core.errors import Deferred
from shared.limits.rate_limit import KeyLimits, RateLimiter, RateLimitWait, WithinShare, WriteQuotaSpent


class FakeClock:
    """Time that moves only when someone sleeps: the limiter's schedule is then exact and instant to test."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.sent: list[float] = []
        self._lock = threading.Lock()

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        with self._lock:
            self.now += seconds


def limiter(clock: FakeClock, per_minute: int = 600, writes: int = 2, **kw: Any) -> RateLimiter:
    return RateLimiter(KeyLimits(per_minute, writes, **kw), clock=clock, sleep=clock.sleep)


def send(limit: RateLimiter, clock: FakeClock, method: str = "GET") -> None:
    with limit.slot(method):
        clock.sent.append(clock.now)


def test_requests_are_spaced_evenly_after_a_one_second_burst() -> None:
    clock = FakeClock()
    limit = limiter(clock, per_minute=600)  # 10/s, burst of 10
    for _ in range(30):
        send(limit, clock)
    gaps = [round(b - a, 6) for a, b in zip(clock.sent, clock.sent[1:], strict=False)]
    assert gaps[:9] == [0.0] * 9  # the burst
    assert set(gaps[9:]) == {0.1}  # then one every 60/600 s


def test_no_sixty_second_window_holds_more_than_the_limit_plus_the_burst() -> None:
    clock = FakeClock()
    limit = limiter(clock, per_minute=1400, max_wait=1e9)
    for _ in range(5000):
        send(limit, clock)
    sent = clock.sent
    j = 0
    busiest = 0
    for i, t in enumerate(sent):
        while sent[j] <= t - 60:
            j += 1
        busiest = max(busiest, i - j + 1)
    assert busiest <= 1400 + 1400 // 60 + 1 < 1500  # the portal's limit is never reached


def test_a_429_pauses_every_caller() -> None:
    clock = FakeClock()
    limit = limiter(clock)
    send(limit, clock)
    limit.pause(3.0)
    send(limit, clock)
    assert clock.sent[1] - clock.sent[0] == pytest.approx(3.0)


def test_waiting_longer_than_max_wait_is_a_transient_error_with_retry_after() -> None:
    clock = FakeClock()
    limit = limiter(clock, max_wait=2.0)
    limit.pause(30.0)
    with pytest.raises(RateLimitWait) as caught:
        send(limit, clock)
    assert caught.value.retry_after == pytest.approx(30.0)
    assert clock.sent == []  # nothing was sent, and no slot was used up


def test_writes_beyond_the_concurrent_limit_wait_for_a_free_slot() -> None:
    limit = RateLimiter(KeyLimits(60_000, 2, max_wait=5.0))
    inside = 0
    most = 0
    lock = threading.Lock()
    release = threading.Event()

    def write() -> None:
        nonlocal inside, most
        with limit.slot("PUT"):
            with lock:
                inside += 1
                most = max(most, inside)
            release.wait(0.2)
            with lock:
                inside -= 1

    threads = [threading.Thread(target=write) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert most == 2


def test_gets_do_not_take_write_slots() -> None:
    limit = RateLimiter(KeyLimits(60_000, 1, max_wait=0.2))
    with limit.slot("PUT"), limit.slot("GET"):
        pass  # a GET goes while the only write slot is taken


def test_a_write_slot_that_never_frees_is_a_transient_error() -> None:
    limit = RateLimiter(KeyLimits(60_000, 1, max_wait=0.1))
    with limit.slot("POST"), pytest.raises(RateLimitWait), limit.slot("PUT"):
        pass


@pytest.mark.parametrize(
    ("pause", "held"), [(float("inf"), 1.0), (float("nan"), 1.0), (-5.0, 1.0), (1e12, 300.0), (42.0, 42.0)]
)
def test_a_pause_is_finite_and_capped(pause: float, held: float) -> None:
    clock = FakeClock()
    limit = limiter(clock, max_wait=1e9)
    send(limit, clock)
    limit.pause(pause)  # junk (inf, nan, negative) is a 429 without a hint: one second
    send(limit, clock)
    assert clock.sent[1] - clock.sent[0] == pytest.approx(held)


def test_the_cap_is_a_setting() -> None:
    clock = FakeClock()
    limit = limiter(clock, max_wait=1e9, max_pause=7.0)
    send(limit, clock)
    limit.pause(3600.0)
    send(limit, clock)
    assert clock.sent[1] - clock.sent[0] == pytest.approx(7.0)


# --- the daily write quota ---------------------------------------------------------------------------------------


class WallClock:
    """Wall-clock seconds that move only when the test says so."""

    def __init__(self) -> None:
        self.now = 1_800_000_000.0  # a whole number of days since the epoch: a period starts here

    def __call__(self) -> float:
        return self.now


def quota_limiter(wall: WallClock, daily_writes: int = 10, period: float = 60.0) -> RateLimiter:
    return RateLimiter(KeyLimits(60_000, 5, daily_writes=daily_writes, quota_period=period), wall_clock=wall)


SPENT = {"Retry-After": "42", "X-RateLimit-Limit": "10", "X-RateLimit-Remaining": "0", "X-RateLimit-Reset": "42"}


def test_writes_are_counted_per_quota_period_and_reads_are_not() -> None:
    wall = WallClock()
    limit = quota_limiter(wall)
    for method in ("PUT", "POST", "GET", "GET", "PUT"):
        with limit.slot(method):
            pass
    assert limit.writes_used() == 3
    wall.now += 60  # the next period
    assert limit.writes_used() == 0


def test_a_429_naming_the_daily_quota_holds_back_writes_until_the_reset_but_never_reads() -> None:
    wall = WallClock()
    limit = quota_limiter(wall)

    spent = limit.write_quota_spent("PUT", SPENT)

    assert isinstance(spent, WriteQuotaSpent) and isinstance(spent, Deferred)
    assert spent.delay == 42 and spent.reason == "docspace_write_quota_spent"
    assert limit.writes_used() == 10  # shown as spent
    wall.now += 30
    with pytest.raises(WriteQuotaSpent) as held, limit.slot("PUT"):
        pass
    assert held.value.delay == pytest.approx(12)
    with limit.slot("GET"):  # reads go on: the quota is for writes
        pass
    wall.now += 12
    with limit.slot("PUT"):  # reset: DocSpace's own period starts here
        pass
    assert limit.writes_used() == 1


@pytest.mark.parametrize(
    ("method", "headers", "is_quota"),
    [
        ("PUT", {"Retry-After": "42", "X-RateLimit-Limit": "10"}, True),  # names the quota
        ("POST", {"X-RateLimit-Limit": " 10 "}, True),  # names it, without a reset: ask again in a minute
        ("POST", {"Retry-After": "3600"}, False),  # a long wait alone names no quota
        ("PUT", {"Retry-After": "100000", "X-RateLimit-Limit": "1500"}, False),
        ("PUT", {"X-RateLimit-Reset": "1e12"}, False),
        ("PUT", {"Retry-After": "100000", "X-RateLimit-Limit": "10000"}, False),  # DocSpace's default, not ours
        ("PUT", {"Retry-After": "1", "X-RateLimit-Limit": "1500"}, False),  # the per-minute window
        ("PUT", {"Retry-After": "1", "X-RateLimit-Limit": "15"}, False),  # concurrent writes
        ("GET", {"Retry-After": "3600", "X-RateLimit-Limit": "10"}, False),  # reads never spend the quota
    ],
)
def test_which_429s_mean_the_daily_quota(method: str, headers: dict[str, str], is_quota: bool) -> None:
    limit = quota_limiter(WallClock())
    assert (limit.write_quota_spent(method, headers) is not None) is is_quota
    if not is_quota:
        with limit.slot("PUT"):  # nothing was held back
            pass


def test_a_quota_reset_is_parked_for_at_most_one_period_and_junk_for_a_minute() -> None:
    limit = RateLimiter(KeyLimits(60_000, 5, daily_writes=10_000, quota_period=86_400), wall_clock=WallClock())
    far = limit.write_quota_spent("PUT", {"Retry-After": str(3 * 86_400), "X-RateLimit-Limit": "10000"})
    assert far is not None and far.delay == 86_400
    junk = limit.write_quota_spent("PUT", {"Retry-After": "inf", "X-RateLimit-Limit": "10000"})
    assert junk is not None and junk.delay == 60


def test_a_share_within_a_shared_limit_keeps_to_the_share_and_counts_in_both() -> None:
    clock = FakeClock()
    own, shared = limiter(clock, per_minute=60), limiter(clock, per_minute=6000)  # 1/s inside 100/s
    within = WithinShare(own, shared)
    for _ in range(5):
        with within.slot("GET"):
            clock.sent.append(clock.now)
    gaps = [round(b - a, 6) for a, b in zip(clock.sent, clock.sent[1:], strict=False)]
    assert gaps == [1.0] * 4  # the share's pace, not the key's
    paused_at = clock.now
    within.pause(3)
    with shared.slot("GET"):
        pass
    assert clock.now >= paused_at + 3  # a 429 holds back the shared limit too


def test_a_write_429_asking_for_a_day_without_naming_the_quota_pauses_at_most_max_pause() -> None:
    clock, wall = FakeClock(), WallClock()
    limit = RateLimiter(
        KeyLimits(60_000, 5, max_pause=5, daily_writes=10, quota_period=86_400),
        clock=clock,
        sleep=clock.sleep,
        wall_clock=wall,
    )
    for headers in ({"Retry-After": "100000"}, {"X-RateLimit-Reset": "1e12", "X-RateLimit-Limit": "1500"}):
        assert limit.write_quota_spent("PUT", headers) is None
        limit.pause(100_000)  # what the client does with any other 429 (it caps the wait it reads, too)
        started = clock.now
        with limit.slot("PUT"):  # writes are not held back for a day: only for the capped pause
            pass
        assert clock.now - started == pytest.approx(5)
