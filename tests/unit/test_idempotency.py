"""The SQLite idempotency store, run_once and open_store's URL parsing; the Redis store is in tests/integration."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from shared.core.errors import Deferred, TransientError
from shared.runtime.wiring import open_store
from shared.store.idempotency import AlreadyInProgress, Claim, IdempotencyStore, run_once
from shared.store.sqlite_store import SqliteStore

# The store's contract runs here against SQLite (TestSqliteStoreContract below), in test_redis_store.py on Redis.
from tests.support.clock import FakeClock
from tests.support.store_contract import StoreContract


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "idem.sqlite3"


@pytest.fixture
def store(db_path: Path) -> Iterator[SqliteStore]:
    s = SqliteStore(db_path, ttl_seconds=3600)
    yield s
    s.close()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def contract_store(tmp_path: Path) -> Iterator[IdempotencyStore]:
    backend = SqliteStore(tmp_path / "contract.sqlite3", ttl_seconds=3600)
    yield backend
    backend.close()


@pytest.fixture
def clocked_store(tmp_path: Path, clock: FakeClock) -> Iterator[tuple[IdempotencyStore, FakeClock]]:
    backend = SqliteStore(tmp_path / "clocked.sqlite3", ttl_seconds=3600, clock=clock)
    yield backend, clock
    backend.close()


@pytest.fixture
def make_store(tmp_path: Path) -> Callable[[], IdempotencyStore]:
    """A new instance on one shared file, as every process on a host opens it."""
    return lambda: SqliteStore(tmp_path / "shared.sqlite3", ttl_seconds=3600)


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


def test_sqlite_an_expired_lease_can_be_acquired_again(db_path: Path, clock: FakeClock) -> None:
    store = SqliteStore(db_path, ttl_seconds=3600, clock=clock)
    assert store.claim("k", lease_seconds=15) is Claim.ACQUIRED
    clock.advance(15.1)

    assert store.claim("k", lease_seconds=30) is Claim.ACQUIRED
    assert store.claim("k", lease_seconds=30) is Claim.IN_PROGRESS


def test_sqlite_done_expires_after_the_ttl(db_path: Path, clock: FakeClock) -> None:
    short = SqliteStore(db_path, ttl_seconds=60, clock=clock)
    try:
        short.claim("k", lease_seconds=30)
        short.complete("k")
        assert short.claim("k", lease_seconds=30) is Claim.DONE
        clock.advance(60.1)
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


def test_sqlite_a_mark_expires_after_the_ttl(db_path: Path, clock: FakeClock) -> None:
    short = SqliteStore(db_path, ttl_seconds=60, clock=clock)
    try:
        short.mark("fact")
        assert short.is_done("fact") is True
        clock.advance(60.1)
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


class TestSqliteStoreContract(StoreContract):
    """The idempotency store's contract, on SQLite."""
