"""Checkpoints and leases in the real Redis: the checkpoint store's contract, a lease lapsing, an unreachable server."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator

import pytest

from shared.store.checkpoints import Checkpoints
from shared.store.idempotency import StoreUnavailable
from shared.store.redis_store import RedisCheckpoints
from tests.support.checkpoints_contract import CheckpointsContract, Make
from tests.support.redis_keys import REDIS_URL, delete_containing


@pytest.fixture
def make() -> Iterator[Make]:
    """Stores on one Redis namespace of this test's own, as replicas on several hosts share it; cleaned after."""
    namespace = f"test-checkpoints-{uuid.uuid4().hex}:"
    made: list[Checkpoints] = []

    def factory() -> Checkpoints:
        store = RedisCheckpoints(REDIS_URL, namespace=namespace)
        made.append(store)
        return store

    yield factory
    for store in made:
        store.close()
    delete_containing(namespace)


def test_a_lease_whose_holder_died_lapses(make: Make) -> None:
    # Redis expires the lease on its own clock (SET PX): a short one and a real wait are the honest test here.
    a, b = make(), make()
    assert a.hold("reconciler.cycle", "a", seconds=0.1)
    time.sleep(0.25)
    assert b.hold("reconciler.cycle", "b", seconds=30)
    assert not a.hold("reconciler.cycle", "a", seconds=30)


def test_an_unreachable_redis_is_a_transient_failure() -> None:
    checkpoints = RedisCheckpoints("redis://127.0.0.1:1/0")
    with pytest.raises(StoreUnavailable):
        checkpoints.load("reconciler.state")
    with pytest.raises(StoreUnavailable):
        checkpoints.hold("reconciler.cycle", "a", seconds=1)


class TestRedisCheckpointsContract(CheckpointsContract):
    """The checkpoint store's contract, on Redis."""
