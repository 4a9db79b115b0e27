"""The idempotency store's contract, as tests both adapters run: SQLite in tests/unit, Redis in tests/integration.

An adapter's test module subclasses ``StoreContract`` as a ``Test…`` class (so pytest collects every contract test,
new ones too, with nothing to import by name) and defines the fixtures they ask for: ``contract_store`` (a fresh
store), ``clocked_store`` (a fresh store on a ``FakeClock``; leases expire when a test moves the clock) and
``make_store`` (a factory of stores on one place, as replicas share it).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import pytest

from shared.store.idempotency import AlreadyInProgress, Claim, IdempotencyStore, LeaseKeeper, run_once
from tests.support.clock import FakeClock

THREADS = 16
_WAIT = 30.0  # seconds a test waits for a lease keeper's beat before it fails (each beat comes every lease / 3)


class CountingRenewals:
    """Wraps a store and lets a test wait for the lease keeper's next renewal instead of sleeping for it."""

    def __init__(self, store: IdempotencyStore) -> None:
        self.store = store
        self.renewals = 0
        self._renewed = threading.Condition()

    def claim(self, key: str, *, lease_seconds: float, owner: str = "") -> Claim:
        return self.store.claim(key, lease_seconds=lease_seconds, owner=owner)

    def lease_left(self, key: str) -> float | None:
        return self.store.lease_left(key)

    def complete(self, key: str) -> None:
        self.store.complete(key)

    def release(self, key: str, owner: str | None = None) -> None:
        self.store.release(key, owner)

    def mark(self, key: str) -> None:
        self.store.mark(key)

    def is_done(self, key: str) -> bool:
        return self.store.is_done(key)

    def close(self) -> None:
        self.store.close()

    def renew(self, key: str, owner: str, *, lease_seconds: float) -> bool:
        renewed = self.store.renew(key, owner, lease_seconds=lease_seconds)
        with self._renewed:
            self.renewals += 1
            self._renewed.notify_all()
        return renewed

    def wait_for_renewal_after(self, seen: int) -> int:
        with self._renewed:
            assert self._renewed.wait_for(lambda: self.renewals > seen, timeout=_WAIT), "the lease keeper never beat"
            return self.renewals


def race(make_store: Callable[[], IdempotencyStore], key: str) -> tuple[list[str], list[str]]:
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


class StoreContract:
    """The idempotency store's contract, for an adapter's test module to subclass (as ``Test…``)."""

    def test_mark_and_is_done(self, contract_store: IdempotencyStore) -> None:
        assert contract_store.is_done("fact") is False
        contract_store.mark("fact")
        assert contract_store.is_done("fact") is True
        assert contract_store.claim("fact", lease_seconds=30) is Claim.DONE

        contract_store.claim("pending", lease_seconds=30)
        assert contract_store.is_done("pending") is False
        contract_store.complete("pending")
        assert contract_store.is_done("pending") is True

    def test_release_is_owner_checked(self, contract_store: IdempotencyStore) -> None:
        assert contract_store.claim("k", lease_seconds=30, owner="a") is Claim.ACQUIRED
        contract_store.release("k", "b")
        assert contract_store.claim("k", lease_seconds=30, owner="c") is Claim.IN_PROGRESS
        contract_store.release("k", "a")
        assert contract_store.claim("k", lease_seconds=30, owner="c") is Claim.ACQUIRED

    def test_a_worker_whose_lease_ran_out_cannot_release_the_next_workers_claim(
        self,
        clocked_store: tuple[IdempotencyStore, FakeClock],
    ) -> None:
        store, clock = clocked_store
        assert store.claim("k", lease_seconds=15, owner="slow") is Claim.ACQUIRED
        clock.advance(16)
        assert store.claim("k", lease_seconds=30, owner="fresh") is Claim.ACQUIRED
        store.release("k", "slow")  # the slow worker gives up late
        assert store.claim("k", lease_seconds=30, owner="third") is Claim.IN_PROGRESS
        store.release("k", "fresh")
        assert store.claim("k", lease_seconds=30, owner="third") is Claim.ACQUIRED

    def test_run_once_runs_again_after_the_holder_died(self, clocked_store: tuple[IdempotencyStore, FakeClock]) -> None:
        store, clock = clocked_store
        store.claim("k", lease_seconds=15, owner="dead")  # a worker that claimed and never completed
        clock.advance(15.1)

        assert run_once(store, "k", lambda: None) is True

    def test_a_lease_expires_on_the_stores_clock(self, clocked_store: tuple[IdempotencyStore, FakeClock]) -> None:
        store, clock = clocked_store
        assert store.claim("k", lease_seconds=15, owner="dead") is Claim.ACQUIRED
        clock.advance(14.9)
        assert store.claim("k", lease_seconds=15, owner="next") is Claim.IN_PROGRESS
        assert store.lease_left("k") == pytest.approx(0.1, abs=0.01)
        clock.advance(0.2)
        assert store.lease_left("k") is None
        assert store.claim("k", lease_seconds=15, owner="next") is Claim.ACQUIRED

    def test_renewing_keeps_a_live_workers_claim(self, clocked_store: tuple[IdempotencyStore, FakeClock]) -> None:
        store, clock = clocked_store
        store.claim("k", lease_seconds=15, owner="alive")
        for _ in range(10):  # a minute and a half of work, a beat every five seconds
            clock.advance(5)
            assert store.renew("k", "alive", lease_seconds=15) is True
        assert store.claim("k", lease_seconds=15, owner="other") is Claim.IN_PROGRESS
        assert store.lease_left("k") == pytest.approx(15, abs=0.01)

    def test_a_renewal_never_revives_a_claim_that_is_gone_or_someone_elses(
        self,
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

    def test_the_lease_keeper_renews_while_the_work_runs(
        self, clocked_store: tuple[IdempotencyStore, FakeClock]
    ) -> None:
        """The work outlasts its lease five times over on the store's clock; nobody else gets the claim meanwhile."""
        store, clock = clocked_store
        counting = CountingRenewals(store)
        lease = 0.3  # the keeper beats every 0.1 s of real time; between beats the store's clock moves 0.25 s
        seen: list[Claim] = []

        def long_work() -> None:
            renewals = 0
            for _ in range(6):
                renewals = counting.wait_for_renewal_after(renewals)
                clock.advance(0.25)  # most of a lease: without the next renewal, the claim would be gone after this
                seen.append(store.claim("k", lease_seconds=lease, owner="intruder"))

        assert run_once(counting, "k", long_work, lease_seconds=lease) is True
        assert seen == [Claim.IN_PROGRESS] * 6
        assert store.claim("k", lease_seconds=lease) is Claim.DONE

    def test_the_lease_keeper_stops_with_the_work(self, contract_store: IdempotencyStore) -> None:
        counting = CountingRenewals(contract_store)
        contract_store.claim("k", lease_seconds=0.3, owner="me")
        with LeaseKeeper(counting, "k", "me", lease_seconds=0.3) as keeper:
            counting.wait_for_renewal_after(0)
        renewed = keeper.renewals
        assert renewed >= 1
        time.sleep(0.4)  # four beats of a keeper that did not stop; a renewal still on the wire at the exit lands too
        assert counting.renewals <= renewed + 1
        assert keeper.renewals <= renewed + 1

    def test_sixteen_instances_racing_on_one_key_do_the_work_once(
        self, make_store: Callable[[], IdempotencyStore]
    ) -> None:
        effects, results = race(make_store, "invoice:1:v1")

        assert len(effects) == 1
        assert len(results) == THREADS
        assert results.count("ran") == 1
        assert all(r in {"ran", "duplicate", "in_progress"} for r in results), results
