"""The DocSpace limit shared in Redis: several limiters on one key (as replicas on several hosts) keep one budget."""

from __future__ import annotations

import functools
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
import redis

from shared.docspace.client import DocSpaceClient
from shared.limits.rate_limit import KeyLimits, WriteQuotaSpent
from shared.limits.redis_limiter import RedisRateLimiter, limiter_key
from shared.store.idempotency import StoreUnavailable
from simulator import DocSpaceSimulator
from tests.support.redis_keys import REDIS_URL, own_prefix
from tests.support.together import Peak, run_threads


@pytest.fixture
def key() -> Iterator[str]:
    """A limit of this test's own; its keys are deleted afterwards."""
    yield from own_prefix("test-limit")


def replicas(key: str, n: int, per_minute: int, writes: int, **options: Any) -> list[RedisRateLimiter]:
    """``n`` limiters, each with its own connection, as ``n`` processes on different hosts would have."""
    write_lease = options.pop("write_lease", 60.0)
    limits = KeyLimits(per_minute, writes, **options)
    return [
        RedisRateLimiter(redis.Redis.from_url(REDIS_URL, decode_responses=True), key, limits, write_lease=write_lease)
        for _ in range(n)
    ]


def test_three_replicas_together_keep_one_rate(key: str) -> None:
    limiters = replicas(key, 3, per_minute=1200, writes=5)  # 20/s for the key, a one-second burst
    sent: list[float] = []
    lock = threading.Lock()
    stop = time.monotonic() + 3.0

    def hammer(limiter: RedisRateLimiter) -> None:
        while time.monotonic() < stop:
            with limiter.slot("GET"), lock:
                sent.append(time.monotonic())

    threads = [threading.Thread(target=hammer, args=(lim,)) for lim in limiters for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    # Three seconds at 20/s after a burst of 20: about 80 in all, whatever the number of replicas.
    assert 60 <= len(sent) <= 20 * 3 + 20 + 12, len(sent)
    sent.sort()
    for start in sent:  # after the burst, no second holds much more than 20
        in_second = sum(1 for t in sent if start + 1.5 <= t < start + 2.5)
        assert in_second <= 20 + 2


def test_writes_in_flight_are_capped_across_replicas(key: str) -> None:
    limiters = replicas(key, 3, per_minute=60_000, writes=2)
    peak = Peak()

    def write(limiter: RedisRateLimiter) -> None:
        with limiter.slot("PUT"), peak:
            time.sleep(0.15)

    run_threads([functools.partial(write, lim) for lim in limiters for _ in range(3)], timeout=30)
    assert peak.most == 2


def test_a_crashed_writer_cannot_leak_its_slot(key: str) -> None:
    crashed, survivor = replicas(key, 2, per_minute=60_000, writes=1, write_lease=0.5, max_wait=5)
    held = crashed.slot("PUT")
    held.__enter__()  # the process dies here: its lease is never given back ...
    started = time.monotonic()
    with survivor.slot("PUT"):  # ... and lapses on its own
        waited = time.monotonic() - started
    assert 0.3 <= waited <= 2.0


def test_a_429_pauses_every_replica_on_the_key(key: str) -> None:
    first, second = replicas(key, 2, per_minute=60_000, writes=5)
    first.pause(0.5)
    started = time.monotonic()
    with second.slot("GET"):
        pass
    assert time.monotonic() - started >= 0.4


def test_a_long_write_429_that_does_not_name_the_quota_parks_no_replicas_writes(key: str) -> None:
    first, second = replicas(key, 2, per_minute=60_000, writes=5, daily_writes=10, max_pause=0.3)
    for headers in ({"Retry-After": "100000"}, {"X-RateLimit-Reset": "1e12", "X-RateLimit-Limit": "15"}):
        assert first.write_quota_spent("PUT", headers) is None
    first.pause(100_000)  # what the client does with any other 429: capped at max_pause for the whole key
    started = time.monotonic()
    with second.slot("PUT"):
        pass
    assert time.monotonic() - started < 1.0
    assert second.writes_used() == 1  # counted, not shown as spent


def test_a_spent_write_quota_parks_every_replicas_writes_but_no_reads(key: str) -> None:
    first, second = replicas(key, 2, per_minute=60_000, writes=5, daily_writes=10, quota_period=2.0)
    for _ in range(3):
        with first.slot("PUT"):
            pass
    with second.slot("POST"):
        pass
    assert first.writes_used() == second.writes_used() == 4  # one count per key, whoever wrote

    spent = first.write_quota_spent("PUT", {"Retry-After": "1", "X-RateLimit-Limit": "10"})
    assert isinstance(spent, WriteQuotaSpent) and spent.delay == 1
    assert second.writes_used() == 10
    with pytest.raises(WriteQuotaSpent) as held, second.slot("PUT"):
        pass
    # Held until the reset DocSpace named (1 s), measured on Redis's clock in whole milliseconds.
    assert 0 < held.value.delay <= 1.05
    with second.slot("GET"):  # reads are never held back by the quota
        pass
    time.sleep(held.value.delay + 0.25)
    with second.slot("PUT"):  # the reset DocSpace named: a new period
        pass
    assert first.writes_used() == 1


def test_a_quota_spent_for_a_whole_period_keeps_its_count(key: str) -> None:
    # A 429 at the very start of DocSpace's day names a reset one whole period away. With Redis's clock in
    # fractional milliseconds, rounding the reset's time could put "now" a hair before the day that is ending,
    # and the next read started a new day at 0: the write quota's gauge said 0 of 10 while every write waited.
    for n in range(20):
        (limiter,) = replicas(f"{key}{n}:", 1, per_minute=60_000, writes=5, daily_writes=10, quota_period=60.0)
        spent = limiter.write_quota_spent("PUT", {"Retry-After": "60", "X-RateLimit-Limit": "10"})
        assert isinstance(spent, WriteQuotaSpent)
        assert [limiter.writes_used() for _ in range(3)] == [10, 10, 10], n
        with pytest.raises(WriteQuotaSpent), limiter.slot("PUT"):
            pass


def test_redis_away_is_a_transient_failure_never_an_unlimited_call() -> None:
    dead = RedisRateLimiter(redis.Redis.from_url("redis://127.0.0.1:1/0"), "k:", KeyLimits(60, 1))  # nothing on port 1
    with pytest.raises(StoreUnavailable), dead.slot("GET"):
        pytest.fail("a request went out without the shared limit")


def test_replicas_on_one_key_stay_under_the_portals_limit(key: str, docspace_sim: DocSpaceSimulator) -> None:
    """Three clients, three limiters, one key: the simulator's limiter never has to say 429."""
    docspace_sim.faults.set_rate_limit(requests_per_minute=1500, max_concurrent_writes=2, retry_after=1)
    docspace_sim.faults.add(method="PUT", path="/api/2.0/files/fileops/move", latency=0.2)
    room = docspace_sim.create_room("Client A")
    uploads = docspace_sim.create_folder(room, "Uploads")
    incoming = docspace_sim.create_folder(room, "Incoming")
    files = [docspace_sim.upload_file(uploads, f"Invoice-{i}.pdf") for i in range(9)]
    clients = [
        DocSpaceClient(docspace_sim.base_url, docspace_sim.api_key, poll_interval=0.05, limiter=limiter)
        for limiter in replicas(key, 3, per_minute=1400, writes=2)
    ]
    errors: list[BaseException] = []

    def move(client: DocSpaceClient, file_id: str) -> None:
        try:
            client.move_file(file_id, incoming)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=move, args=(clients[i % 3], f)) for i, f in enumerate(files)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert errors == []
    assert docspace_sim.call_count("PUT", "/api/2.0/files/fileops/move") == 9  # not one 429


def test_the_limit_is_named_by_portal_and_key_without_the_key_itself() -> None:
    name = limiter_key("https://portal.example", "sk-s3cr3t")
    assert "s3cr3t" not in name
    assert name == limiter_key("https://portal.example/", "sk-s3cr3t")
    assert name != limiter_key("https://other.example", "sk-s3cr3t")
    assert name != limiter_key("https://portal.example", "sk-other")
