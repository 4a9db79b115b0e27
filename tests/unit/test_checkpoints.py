"""Checkpoints and leases: one contract, run against both backends (SQLite beside the idempotency store, Redis)."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from shared.checkpoints import Checkpoints
from shared.idempotency import StoreUnavailable
from shared.redis_store import RedisCheckpoints
from shared.sqlite_store import SqliteCheckpoints, SqliteStore
from shared.wiring import open_checkpoints

REDIS_URL = "redis://127.0.0.1:6379/15"


@pytest.fixture(params=["sqlite", "redis"])
def make(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[object]:
    """A factory of checkpoint stores that share one place (one SQLite file, or one Redis namespace)."""
    namespace = f"test-checkpoints-{uuid.uuid4().hex}:"
    made: list[Checkpoints] = []

    def factory() -> Checkpoints:
        store: Checkpoints
        if request.param == "sqlite":
            store = SqliteCheckpoints(tmp_path / "idem.sqlite3")
        else:
            store = RedisCheckpoints(REDIS_URL, namespace=namespace)
        made.append(store)
        return store

    yield factory
    for store in made:
        store.close()
    if request.param == "redis":
        client = redis.Redis.from_url(REDIS_URL)
        keys = list(client.scan_iter(match=f"{namespace}*"))
        if keys:
            client.delete(*keys)
        client.close()


def test_a_saved_checkpoint_is_read_back_by_another_process(make) -> None:
    first, second = make(), make()
    assert first.load("reconciler.state") is None
    first.save("reconciler.state", {"log_after_id": 138800, "rooms": {"86193": {"scanned_until": "2026-11-03"}}})
    assert second.load("reconciler.state") == {
        "log_after_id": 138800,
        "rooms": {"86193": {"scanned_until": "2026-11-03"}},
    }
    second.save("reconciler.state", {"log_after_id": 138900})
    assert first.load("reconciler.state") == {"log_after_id": 138900}


def test_a_lease_has_one_holder_who_may_extend_and_release_it(make) -> None:
    a, b = make(), make()
    assert a.hold("reconciler.cycle", "a", seconds=30)
    assert not b.hold("reconciler.cycle", "b", seconds=30)
    assert a.hold("reconciler.cycle", "a", seconds=30)  # extending one's own lease
    b.release("reconciler.cycle", "b")  # not b's to release
    assert not b.hold("reconciler.cycle", "b", seconds=30)
    a.release("reconciler.cycle", "a")
    assert b.hold("reconciler.cycle", "b", seconds=30)


def test_a_lease_whose_holder_died_lapses(make) -> None:
    a, b = make(), make()
    assert a.hold("reconciler.cycle", "a", seconds=0.1)
    time.sleep(0.25)
    assert b.hold("reconciler.cycle", "b", seconds=30)
    assert not a.hold("reconciler.cycle", "a", seconds=30)


def test_checkpoints_live_beside_the_idempotency_keys_in_one_sqlite_file(tmp_path: Path) -> None:
    path = tmp_path / "idem.sqlite3"
    store = SqliteStore(path, ttl_seconds=3600)
    checkpoints = open_checkpoints(f"sqlite:///{path}")
    try:
        store.mark("classifier:1:v1")
        checkpoints.save("reconciler.state", {"x": 1})
        assert store.is_done("classifier:1:v1") and checkpoints.load("reconciler.state") == {"x": 1}
    finally:
        store.close()
        checkpoints.close()


def test_a_damaged_checkpoint_reads_as_none(tmp_path: Path) -> None:
    checkpoints = SqliteCheckpoints(tmp_path / "idem.sqlite3")
    try:
        checkpoints.save("reconciler.state", {"x": 1})
        checkpoints._db.execute("UPDATE checkpoints SET value = '{not json'")
        assert checkpoints.load("reconciler.state") is None
    finally:
        checkpoints.close()


def test_an_unreachable_redis_is_a_transient_failure() -> None:
    checkpoints = RedisCheckpoints("redis://127.0.0.1:1/0")
    with pytest.raises(StoreUnavailable):
        checkpoints.load("reconciler.state")
    with pytest.raises(StoreUnavailable):
        checkpoints.hold("reconciler.cycle", "a", seconds=1)


def test_the_url_names_the_backend_and_never_echoes_it() -> None:
    with pytest.raises(ValueError, match=r"got postgres://…") as err:
        open_checkpoints("postgres://user:secret@db/x")
    assert "secret" not in str(err.value)
