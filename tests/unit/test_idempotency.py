"""Idempotency stores: claim/complete/release semantics, run_once, real contention, and open_store URL parsing."""

from __future__ import annotations

import os
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis

from shared.errors import Deferred, TransientError
from shared.idempotency import AlreadyInProgress, Claim, IdempotencyStore, LeaseKeeper, StoreUnavailable, run_once
from shared.redis_store import RedisStore
from shared.sqlite_store import SqliteStore
from shared.wiring import open_store

REDIS_URL = "redis://127.0.0.1:6379/15"
THREADS = 16


class FakeClock:
    """Wall-clock seconds that move only when a test says so: leases expire without sleeping."""

    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "idem.sqlite3"


@pytest.fixture
def store(db_path: Path) -> Iterator[SqliteStore]:
    s = SqliteStore(db_path, ttl_seconds=3600)
    yield s
    s.close()


@pytest.fixture
def redis_namespace() -> Iterator[str]:
    """A namespace of this test's own on database 15; its keys are deleted afterwards."""
    namespace = f"test-idempotency-{uuid.uuid4().hex}:"
    yield namespace
    client = redis.Redis.from_url(REDIS_URL)
    keys = list(client.scan_iter(match=f"*{namespace}*"))
    if keys:
        client.delete(*keys)
    client.close()


# --- SqliteStore semantics -------------------------------------------------------------------------------------


def test_sqlite_first_claim_is_acquired_and_a_second_sees_it_in_progress(store: SqliteStore) -> None:
    assert store.claim("k", lease_seconds=30) is Claim.ACQUIRED
    assert store.claim("k", lease_seconds=30) is Claim.IN_PROGRESS
    assert store.claim("other", lease_seconds=30) is Claim.ACQUIRED


def test_sqlite_complete_marks_the_key_done(store: SqliteStore) -> None:
    store.claim("k", lease_seconds=30)
    store.complete("k")

    assert store.claim("k", lease_seconds=30) is Claim.DONE


def test_sqlite_release_lets_the_next_claim_acquire(store: SqliteStore) -> None:
    store.claim("k", lease_seconds=30)
    store.release("k")

    assert store.claim("k", lease_seconds=30) is Claim.ACQUIRED


def test_sqlite_release_never_undoes_a_done_key(store: SqliteStore) -> None:
    store.claim("k", lease_seconds=30)
    store.complete("k")
    store.release("k")

    assert store.claim("k", lease_seconds=30) is Claim.DONE


def test_sqlite_an_expired_lease_can_be_acquired_again(store: SqliteStore) -> None:
    assert store.claim("k", lease_seconds=0.05) is Claim.ACQUIRED
    time.sleep(0.1)

    assert store.claim("k", lease_seconds=30) is Claim.ACQUIRED
    assert store.claim("k", lease_seconds=30) is Claim.IN_PROGRESS


def test_sqlite_done_expires_after_the_ttl(db_path: Path) -> None:
    short = SqliteStore(db_path, ttl_seconds=0.1)
    try:
        short.claim("k", lease_seconds=30)
        short.complete("k")
        assert short.claim("k", lease_seconds=30) is Claim.DONE
        time.sleep(0.15)
        assert short.claim("k", lease_seconds=30) is Claim.ACQUIRED
    finally:
        short.close()


def test_sqlite_state_is_shared_between_instances_on_one_file(db_path: Path) -> None:
    first, second = SqliteStore(db_path, ttl_seconds=3600), SqliteStore(db_path, ttl_seconds=3600)
    try:
        assert first.claim("k", lease_seconds=30) is Claim.ACQUIRED
        assert second.claim("k", lease_seconds=30) is Claim.IN_PROGRESS
        first.complete("k")
        assert second.claim("k", lease_seconds=30) is Claim.DONE
    finally:
        first.close()
        second.close()


def test_sqlite_creates_missing_parent_directories(tmp_path: Path) -> None:
    s = SqliteStore(tmp_path / "a" / "b" / "idem.sqlite3", ttl_seconds=60)
    try:
        assert s.claim("k", lease_seconds=1) is Claim.ACQUIRED
    finally:
        s.close()
    assert (tmp_path / "a" / "b" / "idem.sqlite3").exists()


@pytest.fixture(params=["sqlite", "redis"])
def either_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[IdempotencyStore]:
    """The same contract, held by both backends."""
    if request.param == "sqlite":
        backend: IdempotencyStore = SqliteStore(tmp_path / "either.sqlite3", ttl_seconds=3600)
    else:
        backend = RedisStore(REDIS_URL, ttl_seconds=3600, namespace=request.getfixturevalue("redis_namespace"))
    yield backend
    backend.close()


def test_mark_and_is_done(either_store: IdempotencyStore) -> None:
    assert either_store.is_done("fact") is False
    either_store.mark("fact")
    assert either_store.is_done("fact") is True
    assert either_store.claim("fact", lease_seconds=30) is Claim.DONE

    either_store.claim("pending", lease_seconds=30)
    assert either_store.is_done("pending") is False
    either_store.complete("pending")
    assert either_store.is_done("pending") is True


def test_sqlite_a_mark_expires_after_the_ttl(db_path: Path) -> None:
    short = SqliteStore(db_path, ttl_seconds=0.1)
    try:
        short.mark("fact")
        assert short.is_done("fact") is True
        time.sleep(0.15)
        assert short.is_done("fact") is False
    finally:
        short.close()


# --- run_once --------------------------------------------------------------------------------------------------


def test_run_once_runs_the_work_then_reports_duplicates(store: SqliteStore) -> None:
    done: list[int] = []

    assert run_once(store, "k", lambda: done.append(1)) is True
    assert run_once(store, "k", lambda: done.append(2)) is False
    assert done == [1]


def test_run_once_defers_while_another_holds_the_lease_until_its_lease_would_run_out(store: SqliteStore) -> None:
    store.claim("k", lease_seconds=30)
    done: list[int] = []

    with pytest.raises(AlreadyInProgress) as raised:
        run_once(store, "k", lambda: done.append(1), lease_seconds=30)

    # Not a failure: it waits in the broker for the holder's lease, without spending an attempt of the ladder.
    assert isinstance(raised.value, Deferred)
    assert not isinstance(raised.value, TransientError)
    assert raised.value.reason == "in_progress_elsewhere"
    assert 29.5 < raised.value.delay <= 30.5
    assert done == []


def test_run_once_defers_for_what_is_left_of_the_holders_lease(tmp_path: Path) -> None:
    clock = FakeClock()
    store = SqliteStore(tmp_path / "left.sqlite3", ttl_seconds=3600, clock=clock)
    store.claim("k", lease_seconds=15, owner="holder")
    clock.advance(11)

    with pytest.raises(AlreadyInProgress) as raised:
        run_once(store, "k", lambda: None, lease_seconds=15)
    assert raised.value.delay == pytest.approx(4.5)  # 4 s left, and half a second to be sure


def test_run_once_defers_no_longer_than_its_own_lease(store: SqliteStore) -> None:
    store.claim("k", lease_seconds=300)

    with pytest.raises(AlreadyInProgress) as raised:
        run_once(store, "k", lambda: None, lease_seconds=5)
    assert raised.value.delay == pytest.approx(5.5)


def test_run_once_releases_the_claim_when_the_work_fails(store: SqliteStore) -> None:
    def boom() -> None:
        raise TransientError("not now")

    with pytest.raises(TransientError, match="not now"):
        run_once(store, "k", boom)

    assert run_once(store, "k", lambda: None) is True
    assert store.claim("k", lease_seconds=30) is Claim.DONE


def test_run_once_runs_again_after_the_holder_died(store: SqliteStore) -> None:
    store.claim("k", lease_seconds=0.05)  # a worker that claimed and never completed
    time.sleep(0.1)

    assert run_once(store, "k", lambda: None) is True


# --- contention ------------------------------------------------------------------------------------------------


def _race(make_store: Callable[[], IdempotencyStore], key: str) -> tuple[list[str], list[str]]:
    """THREADS workers, each with its own store, start run_once on one key together; returns effects and results."""
    stores = [make_store() for _ in range(THREADS)]
    barrier = threading.Barrier(THREADS)
    effects: list[str] = []
    results: list[str] = []
    lock = threading.Lock()

    def worker(n: int) -> None:
        def work() -> None:
            with lock:
                effects.append(f"worker-{n}")
            time.sleep(0.05)  # long enough for every other worker to find the claim taken

        barrier.wait()
        try:
            outcome = "ran" if run_once(stores[n], key, work, lease_seconds=30) else "duplicate"
        except AlreadyInProgress:
            outcome = "in_progress"
        except Exception as exc:  # anything else is the bug this test is looking for
            outcome = f"error: {type(exc).__name__}: {exc}"
        with lock:
            results.append(outcome)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(THREADS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    for s in stores:
        s.close()
    return effects, results


def test_sqlite_sixteen_instances_racing_on_one_key_do_the_work_once(db_path: Path) -> None:
    effects, results = _race(lambda: SqliteStore(db_path, ttl_seconds=3600), "invoice:1:v1")

    assert len(effects) == 1
    assert len(results) == THREADS
    assert results.count("ran") == 1
    assert all(r in {"ran", "duplicate", "in_progress"} for r in results), results


def test_redis_sixteen_instances_racing_on_one_key_do_the_work_once(redis_namespace: str) -> None:
    effects, results = _race(lambda: RedisStore(REDIS_URL, ttl_seconds=3600, namespace=redis_namespace), "invoice:1:v1")

    assert len(effects) == 1
    assert len(results) == THREADS
    assert results.count("ran") == 1
    assert all(r in {"ran", "duplicate", "in_progress"} for r in results), results


# --- RedisStore semantics --------------------------------------------------------------------------------------


def test_redis_claim_complete_release_semantics(redis_namespace: str) -> None:
    s = RedisStore(REDIS_URL, ttl_seconds=3600, namespace=redis_namespace)
    try:
        assert s.claim("a", lease_seconds=30) is Claim.ACQUIRED
        assert s.claim("a", lease_seconds=30) is Claim.IN_PROGRESS
        s.release("a")
        assert s.claim("a", lease_seconds=30) is Claim.ACQUIRED
        s.complete("a")
        assert s.claim("a", lease_seconds=30) is Claim.DONE
        s.release("a")  # never undoes a done key
        assert s.claim("a", lease_seconds=30) is Claim.DONE

        assert s.claim("b", lease_seconds=0.05) is Claim.ACQUIRED
        time.sleep(0.1)
        assert s.claim("b", lease_seconds=30) is Claim.ACQUIRED
    finally:
        s.close()


def test_redis_done_key_expires_after_the_ttl(redis_namespace: str) -> None:
    s = RedisStore(REDIS_URL, ttl_seconds=3600, namespace=redis_namespace)
    client = redis.Redis.from_url(REDIS_URL)
    try:
        s.claim("a", lease_seconds=30)
        s.complete("a")
        assert 3590 <= client.ttl(f"{redis_namespace}a") <= 3600
    finally:
        s.close()
        client.close()


# --- open_store ------------------------------------------------------------------------------------------------


def test_open_store_sqlite_relative_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    s = open_store("sqlite:///data/idem.sqlite3", ttl_seconds=60)
    try:
        assert isinstance(s, SqliteStore)
        assert s.claim("k", lease_seconds=1) is Claim.ACQUIRED
    finally:
        s.close()
    assert (tmp_path / "data" / "idem.sqlite3").exists()


def test_open_store_sqlite_absolute_path(tmp_path: Path) -> None:
    target = tmp_path / "abs" / "idem.sqlite3"
    assert target.is_absolute()

    s = open_store(f"sqlite:///{target}", ttl_seconds=60)  # four slashes: sqlite:////tmp/...
    try:
        assert isinstance(s, SqliteStore)
        s.claim("k", lease_seconds=30)
    finally:
        s.close()
    assert target.exists()
    assert SqliteStore(target, ttl_seconds=60).claim("k", lease_seconds=30) is Claim.IN_PROGRESS


def test_open_store_redis_prefixes_the_namespace(redis_namespace: str) -> None:
    s = open_store(REDIS_URL, ttl_seconds=60, namespace=redis_namespace)
    client = redis.Redis.from_url(REDIS_URL, decode_responses=True)
    try:
        assert isinstance(s, RedisStore)
        assert s.claim("k", lease_seconds=30) is Claim.ACQUIRED
        assert str(client.get(f"invoice-pipeline:{redis_namespace}k")).startswith("pending")
    finally:
        s.close()
        client.close()


@pytest.mark.parametrize(
    "url",
    [
        "postgresql://admin:s3cr3t-pw@db.internal:5432/idem",
        "http://admin:s3cr3t-pw@cache.internal/",
        "sqlite://admin:s3cr3t-pw@relative.sqlite3",
    ],
)
def test_open_store_rejects_other_schemes_without_echoing_credentials(url: str) -> None:
    with pytest.raises(ValueError, match="IDEMPOTENCY_URL must start with") as raised:
        open_store(url, ttl_seconds=60)

    text = str(raised.value)
    assert "s3cr3t-pw" not in text
    assert "admin" not in text


def test_open_store_does_not_echo_the_user_of_a_url_that_lost_its_scheme() -> None:
    # Forgetting "redis://" leaves "user:password@host": the part before the first colon is the user name.
    with pytest.raises(ValueError, match="IDEMPOTENCY_URL must start with") as raised:
        open_store("invoice-svc:s3cr3t-pw@redis.internal:6379/0", ttl_seconds=60)

    text = str(raised.value)
    assert "s3cr3t-pw" not in text
    assert "invoice-svc" not in text


def test_open_store_does_not_create_files_for_a_bad_url(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ValueError):
        open_store("file:///idem.sqlite3", ttl_seconds=60)
    assert os.listdir(tmp_path) == []


def test_a_worker_whose_lease_ran_out_cannot_release_the_next_workers_claim(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "owners.sqlite3", ttl_seconds=60)
    assert store.claim("k", lease_seconds=0.05, owner="slow") is Claim.ACQUIRED
    time.sleep(0.1)
    assert store.claim("k", lease_seconds=30, owner="fresh") is Claim.ACQUIRED
    store.release("k", "slow")  # the slow worker gives up late
    assert store.claim("k", lease_seconds=30, owner="third") is Claim.IN_PROGRESS
    store.release("k", "fresh")
    assert store.claim("k", lease_seconds=30, owner="third") is Claim.ACQUIRED


def test_redis_release_is_owner_checked_too(redis_namespace: str) -> None:
    store = RedisStore(REDIS_URL, ttl_seconds=60, namespace=redis_namespace)
    try:
        assert store.claim("k", lease_seconds=30, owner="a") is Claim.ACQUIRED
        store.release("k", "b")
        assert store.claim("k", lease_seconds=30, owner="c") is Claim.IN_PROGRESS
        store.release("k", "a")
        assert store.claim("k", lease_seconds=30, owner="c") is Claim.ACQUIRED
    finally:
        store.close()


def test_an_unreachable_store_is_a_transient_failure_not_a_bug() -> None:
    dead = RedisStore("redis://127.0.0.1:1/0", ttl_seconds=60)  # nothing listens on port 1
    ran: list[bool] = []
    with pytest.raises(StoreUnavailable) as raised:
        run_once(dead, "k", lambda: ran.append(True))
    assert isinstance(raised.value, TransientError)
    assert raised.value.reason == "idempotency_store_unavailable"
    assert ran == []  # nothing is done without a claim


# --- leases: renewed while the worker lives, taken over soon after it dies ---------------------------------------


@pytest.fixture(params=["sqlite", "redis"])
def clocked_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[IdempotencyStore, FakeClock]]:
    """Both backends on a clock the test moves."""
    clock = FakeClock()
    if request.param == "sqlite":
        backend: IdempotencyStore = SqliteStore(tmp_path / "clocked.sqlite3", ttl_seconds=3600, clock=clock)
    else:
        namespace = request.getfixturevalue("redis_namespace")
        backend = RedisStore(REDIS_URL, ttl_seconds=3600, namespace=namespace, clock=clock)
    yield backend, clock
    backend.close()


def test_a_lease_expires_on_the_stores_clock(clocked_store: tuple[IdempotencyStore, FakeClock]) -> None:
    store, clock = clocked_store
    assert store.claim("k", lease_seconds=15, owner="dead") is Claim.ACQUIRED
    clock.advance(14.9)
    assert store.claim("k", lease_seconds=15, owner="next") is Claim.IN_PROGRESS
    assert store.lease_left("k") == pytest.approx(0.1, abs=0.01)
    clock.advance(0.2)
    assert store.lease_left("k") is None
    assert store.claim("k", lease_seconds=15, owner="next") is Claim.ACQUIRED


def test_renewing_keeps_a_live_workers_claim(clocked_store: tuple[IdempotencyStore, FakeClock]) -> None:
    store, clock = clocked_store
    store.claim("k", lease_seconds=15, owner="alive")
    for _ in range(10):  # a minute and a half of work, a beat every five seconds
        clock.advance(5)
        assert store.renew("k", "alive", lease_seconds=15) is True
    assert store.claim("k", lease_seconds=15, owner="other") is Claim.IN_PROGRESS
    assert store.lease_left("k") == pytest.approx(15, abs=0.01)


def test_a_renewal_never_revives_a_claim_that_is_gone_or_someone_elses(
    clocked_store: tuple[IdempotencyStore, FakeClock],
) -> None:
    store, clock = clocked_store
    store.claim("k", lease_seconds=15, owner="slow")
    clock.advance(16)  # its lease ran out (the store was away, say) ...
    assert store.claim("k", lease_seconds=15, owner="fresh") is Claim.ACQUIRED  # ... and another took over
    assert store.renew("k", "slow", lease_seconds=15) is False
    assert store.lease_left("k") == pytest.approx(15, abs=0.01)

    store.complete("k")
    assert store.renew("k", "fresh", lease_seconds=15) is False  # done stays done
    assert store.claim("k", lease_seconds=15) is Claim.DONE
    assert store.renew("never-claimed", "x", lease_seconds=15) is False


def test_the_lease_keeper_renews_while_the_work_runs(either_store: IdempotencyStore) -> None:
    """Real time, a one-second lease: the work outlasts it twice over and nobody else gets the claim meanwhile."""
    seen: list[Claim] = []

    def slow_work() -> None:
        for _ in range(5):
            time.sleep(0.5)
            seen.append(either_store.claim("k", lease_seconds=1.0, owner="intruder"))

    assert run_once(either_store, "k", slow_work, lease_seconds=1.0) is True
    assert seen == [Claim.IN_PROGRESS] * 5
    assert either_store.claim("k", lease_seconds=1.0) is Claim.DONE


def test_the_lease_keeper_stops_with_the_work(either_store: IdempotencyStore) -> None:
    either_store.claim("k", lease_seconds=0.6, owner="me")
    with LeaseKeeper(either_store, "k", "me", lease_seconds=0.6) as keeper:
        time.sleep(0.9)
    renewed = keeper.renewals
    assert renewed >= 1
    time.sleep(0.9)  # longer than a lease: a renewal still on the wire at the exit has lapsed too
    assert keeper.renewals == renewed
    assert either_store.claim("k", lease_seconds=5, owner="next") is Claim.ACQUIRED
