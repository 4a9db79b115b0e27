"""The Redis idempotency store against the real Redis: the store's contract, its key layout and its failures."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
import redis

from shared.core.errors import TransientError
from shared.runtime.wiring import open_store
from shared.store.idempotency import Claim, IdempotencyStore, StoreUnavailable, run_once
from shared.store.redis_store import RedisStore
from tests.support.clock import FakeClock
from tests.support.redis_keys import REDIS_URL, own_prefix
from tests.support.store_contract import StoreContract


@pytest.fixture
def redis_namespace() -> Iterator[str]:
    """A namespace of this test's own on database 15; its keys are deleted afterwards."""
    yield from own_prefix("test-idempotency")


@pytest.fixture
def contract_store(redis_namespace: str) -> Iterator[IdempotencyStore]:
    backend = RedisStore(REDIS_URL, ttl_seconds=3600, namespace=redis_namespace)
    yield backend
    backend.close()


@pytest.fixture
def clocked_store(redis_namespace: str) -> Iterator[tuple[IdempotencyStore, FakeClock]]:
    clock = FakeClock()
    backend = RedisStore(REDIS_URL, ttl_seconds=3600, namespace=redis_namespace, clock=clock)
    yield backend, clock
    backend.close()


@pytest.fixture
def make_store(redis_namespace: str) -> Callable[[], IdempotencyStore]:
    """A new client per call, as replicas on several hosts have."""
    return lambda: RedisStore(REDIS_URL, ttl_seconds=3600, namespace=redis_namespace)


def test_redis_claim_complete_release_semantics(
    contract_store: IdempotencyStore, clocked_store: tuple[IdempotencyStore, FakeClock]
) -> None:
    s = contract_store
    assert s.claim("a", lease_seconds=30) is Claim.ACQUIRED
    assert s.claim("a", lease_seconds=30) is Claim.IN_PROGRESS
    s.release("a")
    assert s.claim("a", lease_seconds=30) is Claim.ACQUIRED
    s.complete("a")
    assert s.claim("a", lease_seconds=30) is Claim.DONE
    s.release("a")  # never undoes a done key
    assert s.claim("a", lease_seconds=30) is Claim.DONE

    clocked, clock = clocked_store
    assert clocked.claim("b", lease_seconds=15) is Claim.ACQUIRED
    clock.advance(15.1)
    assert clocked.claim("b", lease_seconds=30) is Claim.ACQUIRED


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


def test_an_unreachable_store_is_a_transient_failure_not_a_bug() -> None:
    dead = RedisStore("redis://127.0.0.1:1/0", ttl_seconds=60)  # nothing listens on port 1
    ran: list[bool] = []
    with pytest.raises(StoreUnavailable) as raised:
        run_once(dead, "k", lambda: ran.append(True))
    assert isinstance(raised.value, TransientError)
    assert raised.value.reason == "idempotency_store_unavailable"
    assert ran == []  # nothing is done without a claim


class TestRedisStoreContract(StoreContract):
    """The idempotency store's contract, on Redis."""
