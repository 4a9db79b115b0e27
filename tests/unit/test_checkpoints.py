"""Checkpoints and leases in SQLite, beside the idempotency store; tests/integration runs the same contract on Redis."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from shared.runtime.wiring import open_checkpoints
from shared.store.checkpoints import Checkpoints
from shared.store.sqlite_store import SqliteCheckpoints, SqliteStore
from tests.support.checkpoints_contract import CheckpointsContract, Make
from tests.support.clock import FakeClock


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def make(tmp_path: Path, clock: FakeClock) -> Iterator[Make]:
    """Stores on one SQLite file, as every process on a host opens it, on a clock the test moves."""
    made: list[Checkpoints] = []

    def factory() -> Checkpoints:
        store = SqliteCheckpoints(tmp_path / "idem.sqlite3", clock=clock)
        made.append(store)
        return store

    yield factory
    for store in made:
        store.close()


def test_a_lease_whose_holder_died_lapses(make: Make, clock: FakeClock) -> None:
    a, b = make(), make()
    assert a.hold("reconciler.cycle", "a", seconds=30)
    clock.advance(30.1)
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


def test_the_url_names_the_backend_and_never_echoes_it() -> None:
    with pytest.raises(ValueError, match=r"got postgres://…") as err:
        open_checkpoints("postgres://user:secret@db/x")
    assert "secret" not in str(err.value)


class TestSqliteCheckpointsContract(CheckpointsContract):
    """The checkpoint store's contract, on SQLite."""
