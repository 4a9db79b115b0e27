"""Remembers which side effects already happened, so a duplicate delivery never moves, mails or calls twice.

A key is claimed with a lease before the work, completed after it. Another worker (or replica) finds it either
in progress (it comes back when the lease would run out) or done (skip). While the work runs its lease is renewed
every third of its length, so a live worker keeps its claim however long DocSpace takes, and a worker that died
loses it within one lease: the work is then done again by another. For e-mail that means the same message with
the same ``Message-ID``, which mail clients collapse.

Backends: SQLite (default; one host, any number of processes) and Redis (replicas on several hosts). Both take an
injectable clock, so lease tests need no sleeping; Redis by default uses the server's clock, which every host
shares.
"""

from __future__ import annotations

import contextlib
import functools
import sqlite3
import threading
import time
import uuid
from collections.abc import Callable
from enum import Enum
from pathlib import Path
from typing import ParamSpec, Protocol, TypeVar

import redis
import structlog

from shared.errors import Deferred, TransientError

log = structlog.get_logger(__name__)

P = ParamSpec("P")
R = TypeVar("R")

# Short, because it is renewed while the worker lives: a dead worker's invoices are taken over within it.
DEFAULT_LEASE_SECONDS = 15.0


class Claim(Enum):
    """What ``claim`` found for a key: ours to do, someone else's in progress, or already done."""

    ACQUIRED = "acquired"  # ours: do the work, then complete() or release()
    IN_PROGRESS = "in_progress"  # someone else holds a live lease
    DONE = "done"  # already done: skip


class StoreUnavailable(TransientError):
    """The store did not answer (Redis down, SQLite locked too long): retry later, never treat it as a bug."""

    reason = "idempotency_store_unavailable"


def _unavailable_on(*errors: type[BaseException]) -> Callable[[Callable[P, R]], Callable[P, R]]:
    def wrap(method: Callable[P, R]) -> Callable[P, R]:
        @functools.wraps(method)
        def guarded(*args: P.args, **kwargs: P.kwargs) -> R:
            try:
                return method(*args, **kwargs)
            except errors as exc:
                raise StoreUnavailable(f"the idempotency store failed: {exc}") from exc

        return guarded

    return wrap


class AlreadyInProgress(Deferred):
    """Another worker holds the claim: come back when its lease would run out (sooner if it finishes)."""

    reason = "in_progress_elsewhere"


class IdempotencyStore(Protocol):
    """Once-only bookkeeping per key, with leases (port; SQLite and Redis adapters below)."""

    def claim(self, key: str, *, lease_seconds: float, owner: str = "") -> Claim: ...
    def renew(self, key: str, owner: str, *, lease_seconds: float) -> bool: ...
    def lease_left(self, key: str) -> float | None: ...
    def complete(self, key: str) -> None: ...
    def release(self, key: str, owner: str | None = None) -> None: ...
    def mark(self, key: str) -> None: ...
    def is_done(self, key: str) -> bool: ...
    def close(self) -> None: ...


class LeaseKeeper:
    """Renews one claim every third of its lease until the work is over (a context manager around the work).

    One small thread per claim in hand: at most ``CONCURRENCY`` per process. A renewal that fails (store away)
    is retried at the next beat; one that finds the claim gone (the lease ran out while the store was away and
    another worker took it) is logged, and the work goes on: the stages' side effects are safe to repeat.
    """

    def __init__(self, store: IdempotencyStore, key: str, owner: str, *, lease_seconds: float) -> None:
        self._store, self._key, self._owner, self._lease = store, key, owner, lease_seconds
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._beat, name="lease-keeper", daemon=True)
        self.renewals = 0

    def __enter__(self) -> LeaseKeeper:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        # No join: a renewal still on the wire is harmless (a completed or released claim is never renewed).
        self._done.set()

    def _beat(self) -> None:
        while not self._done.wait(self._lease / 3):
            try:
                renewed = self._store.renew(self._key, self._owner, lease_seconds=self._lease)
            except StoreUnavailable as exc:
                log.warning("claim_renewal_failed", key=self._key, error=str(exc))
                continue
            if not renewed and not self._done.is_set():
                log.warning("claim_lost", key=self._key, hint="the lease ran out; another worker may repeat this")
                return
            self.renewals += 1


def run_once(
    store: IdempotencyStore,
    key: str,
    work: Callable[[], object],
    *,
    lease_seconds: float = DEFAULT_LEASE_SECONDS,
    wait_seconds: float = 0.0,
) -> bool:
    """Run ``work`` unless ``key`` is done; False means it was a duplicate. Raises AlreadyInProgress (deferred).

    The claim's lease is renewed while ``work`` runs. ``wait_seconds`` > 0 waits that long for another worker's
    claim to end before giving up: worth it when its work is short (a confirmed publish), since coming back later
    would repeat everything done before the claim.
    """
    # The owner token keeps a worker whose lease ran out from releasing the claim another worker took since.
    owner = uuid.uuid4().hex
    claim = store.claim(key, lease_seconds=lease_seconds, owner=owner)
    deadline = time.monotonic() + wait_seconds
    while claim is Claim.IN_PROGRESS and time.monotonic() < deadline:
        time.sleep(0.05)
        claim = store.claim(key, lease_seconds=lease_seconds, owner=owner)
    if claim is Claim.DONE:
        return False
    if claim is Claim.IN_PROGRESS:
        left = store.lease_left(key)
        # Back just after the holder's lease would run out: at once if it died, a duplicate if it finished.
        delay = min(lease_seconds, left if left is not None else 0.0) + 0.5
        raise AlreadyInProgress(f"{key} is being handled by another worker", delay=delay)
    try:
        with LeaseKeeper(store, key, owner, lease_seconds=lease_seconds):
            work()
    except BaseException:
        with contextlib.suppress(StoreUnavailable):  # the lease runs out by itself; keep the real error
            store.release(key, owner)
        raise
    store.complete(key)
    return True


class SqliteStore:
    """One file shared by every process on the host; WAL mode and immediate transactions make claims atomic."""

    def __init__(self, path: str | Path, *, ttl_seconds: float, clock: Callable[[], float] = time.time) -> None:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        self._ttl = ttl_seconds
        self._clock = clock
        self._lock = threading.Lock()
        self._db = sqlite3.connect(str(path), timeout=30, isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS claims ("
            " key TEXT PRIMARY KEY, done INTEGER NOT NULL, owner TEXT NOT NULL, expires_at REAL NOT NULL)"
        )
        self._claims = 0

    @_unavailable_on(sqlite3.Error)
    def claim(self, key: str, *, lease_seconds: float, owner: str = "") -> Claim:
        now = self._clock()
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                row = self._db.execute("SELECT done, expires_at FROM claims WHERE key = ?", (key,)).fetchone()
                if row is not None and row[1] > now:
                    return Claim.DONE if row[0] else Claim.IN_PROGRESS
                self._db.execute(
                    "INSERT OR REPLACE INTO claims (key, done, owner, expires_at) VALUES (?, 0, ?, ?)",
                    (key, owner, now + lease_seconds),
                )
                self._claims += 1
                if self._claims % 1000 == 0:
                    self._db.execute("DELETE FROM claims WHERE expires_at < ?", (now,))
                return Claim.ACQUIRED
            finally:
                self._db.execute("COMMIT")

    @_unavailable_on(sqlite3.Error)
    def renew(self, key: str, owner: str, *, lease_seconds: float) -> bool:
        """Extend the caller's own live claim; False when it is no longer the caller's (or no longer pending)."""
        now = self._clock()
        with self._lock:
            cursor = self._db.execute(
                "UPDATE claims SET expires_at = ? WHERE key = ? AND owner = ? AND done = 0 AND expires_at > ?",
                (now + lease_seconds, key, owner, now),
            )
        return cursor.rowcount == 1

    @_unavailable_on(sqlite3.Error)
    def lease_left(self, key: str) -> float | None:
        """Seconds until a pending claim's lease runs out; None when nobody holds one."""
        now = self._clock()
        with self._lock:
            row = self._db.execute(
                "SELECT expires_at FROM claims WHERE key = ? AND done = 0 AND expires_at > ?", (key, now)
            ).fetchone()
        return None if row is None else float(row[0]) - now

    @_unavailable_on(sqlite3.Error)
    def complete(self, key: str) -> None:
        with self._lock:
            self._db.execute(
                "UPDATE claims SET done = 1, expires_at = ? WHERE key = ?", (self._clock() + self._ttl, key)
            )

    @_unavailable_on(sqlite3.Error)
    def release(self, key: str, owner: str | None = None) -> None:
        with self._lock:
            if owner is None:
                self._db.execute("DELETE FROM claims WHERE key = ? AND done = 0", (key,))
            else:
                self._db.execute("DELETE FROM claims WHERE key = ? AND done = 0 AND owner = ?", (key, owner))

    @_unavailable_on(sqlite3.Error)
    def mark(self, key: str) -> None:
        """Record ``key`` as done without a claim (facts such as "this file was routed")."""
        with self._lock:
            self._db.execute(
                "INSERT OR REPLACE INTO claims (key, done, owner, expires_at) VALUES (?, 1, '', ?)",
                (key, self._clock() + self._ttl),
            )

    @_unavailable_on(sqlite3.Error)
    def is_done(self, key: str) -> bool:
        with self._lock:
            row = self._db.execute(
                "SELECT 1 FROM claims WHERE key = ? AND done = 1 AND expires_at > ?", (key, self._clock())
            ).fetchone()
        return row is not None

    def close(self) -> None:
        with self._lock:
            self._db.close()


# The Redis scripts keep a pending claim as "pending|<expires at, ms>|<owner>", its lease judged by the server's
# clock (every host shares it), or by ARGV's "now" when a test injects a clock. The key's own expiry, a minute
# past the lease, only collects garbage. "done" is a plain value with the TTL of IDEMPOTENCY_TTL_DAYS.
_REDIS_NOW = (
    "local now = tonumber(ARGV[1]) "
    "if not now then local t = redis.call('time') now = t[1] * 1000 + math.floor(t[2] / 1000) end "
)
_REDIS_PENDING = (
    "local function pending(v) "
    "  if not v or string.sub(v, 1, 8) ~= 'pending|' then return nil, nil end "
    "  local bar = string.find(v, '|', 9, true) "
    "  return tonumber(string.sub(v, 9, bar - 1)), string.sub(v, bar + 1) "
    "end "
)
# KEYS[1]; ARGV: now|'', lease ms, owner -> 'acquired' | 'done' | 'in_progress'
_REDIS_CLAIM = (
    _REDIS_NOW + _REDIS_PENDING + "local v = redis.call('get', KEYS[1]) "
    "if v == 'done' then return 'done' end "
    "local expires = pending(v) "
    "if expires and expires > now then return 'in_progress' end "
    "if v and string.sub(v, 1, 8) == 'pending:' then return 'in_progress' end "  # a claim from before 'pending|'
    "local lease = tonumber(ARGV[2]) "
    "redis.call('set', KEYS[1], 'pending|' .. (now + lease) .. '|' .. ARGV[3], 'px', lease + 60000) "
    "return 'acquired'"
)
# KEYS[1]; ARGV: now|'', lease ms, owner -> 1 renewed | 0 not the caller's live claim
_REDIS_RENEW = (
    _REDIS_NOW + _REDIS_PENDING + "local expires, owner = pending(redis.call('get', KEYS[1])) "
    "if not expires or owner ~= ARGV[3] or expires <= now then return 0 end "
    "local lease = tonumber(ARGV[2]) "
    "redis.call('set', KEYS[1], 'pending|' .. (now + lease) .. '|' .. owner, 'px', lease + 60000) "
    "return 1"
)
# KEYS[1]; ARGV: now|'' -> ms left of a live pending claim, or -1
_REDIS_LEASE_LEFT = (
    _REDIS_NOW + _REDIS_PENDING + "local v = redis.call('get', KEYS[1]) "
    "local expires = pending(v) "
    "if expires and expires > now then return expires - now end "
    "if v and string.sub(v, 1, 8) == 'pending:' then return redis.call('pttl', KEYS[1]) end "
    "return -1"
)
# KEYS[1]; ARGV: owner or '*' -> deletes a pending claim, only the caller's own unless '*'
_REDIS_RELEASE = (
    _REDIS_PENDING + "local v = redis.call('get', KEYS[1]) "
    "local expires, owner = pending(v) "
    "if (expires and (ARGV[1] == '*' or owner == ARGV[1])) "
    "or (v and string.sub(v, 1, 8) == 'pending:' and (ARGV[1] == '*' or v == 'pending:' .. ARGV[1])) then "
    "return redis.call('del', KEYS[1]) end return 0"
)


class RedisStore:
    """For replicas on several hosts: small Lua scripts make claim, renewal and release atomic."""

    def __init__(
        self,
        url: str,
        *,
        ttl_seconds: float,
        namespace: str = "invoice-pipeline:",
        clock: Callable[[], float] | None = None,
    ) -> None:
        self._redis = redis.Redis.from_url(url, socket_timeout=5, socket_connect_timeout=5, decode_responses=True)
        self._ttl = max(1, int(ttl_seconds))
        self._namespace = namespace
        self._clock = clock  # None: the Redis server's clock
        self._claim = self._redis.register_script(_REDIS_CLAIM)
        self._renew = self._redis.register_script(_REDIS_RENEW)
        self._lease_left = self._redis.register_script(_REDIS_LEASE_LEFT)
        self._release = self._redis.register_script(_REDIS_RELEASE)

    def _now(self) -> str:
        return "" if self._clock is None else str(int(self._clock() * 1000))

    @_unavailable_on(redis.RedisError)
    def claim(self, key: str, *, lease_seconds: float, owner: str = "") -> Claim:
        lease = max(1, int(lease_seconds * 1000))
        answer = self._claim(keys=[self._namespace + key], args=[self._now(), lease, owner])
        return Claim(answer)

    @_unavailable_on(redis.RedisError)
    def renew(self, key: str, owner: str, *, lease_seconds: float) -> bool:
        lease = max(1, int(lease_seconds * 1000))
        return bool(self._renew(keys=[self._namespace + key], args=[self._now(), lease, owner]))

    @_unavailable_on(redis.RedisError)
    def lease_left(self, key: str) -> float | None:
        left = int(self._lease_left(keys=[self._namespace + key], args=[self._now()]))
        return None if left < 0 else left / 1000

    @_unavailable_on(redis.RedisError)
    def complete(self, key: str) -> None:
        self._redis.set(self._namespace + key, "done", ex=self._ttl)

    @_unavailable_on(redis.RedisError)
    def release(self, key: str, owner: str | None = None) -> None:
        self._release(keys=[self._namespace + key], args=[owner if owner is not None else "*"])

    @_unavailable_on(redis.RedisError)
    def mark(self, key: str) -> None:
        self._redis.set(self._namespace + key, "done", ex=self._ttl)

    @_unavailable_on(redis.RedisError)
    def is_done(self, key: str) -> bool:
        return bool(self._redis.get(self._namespace + key) == "done")

    def close(self) -> None:
        self._redis.close()


def is_redis_url(url: str) -> bool:
    return url.startswith(("redis://", "rediss://", "unix://"))


def open_store(url: str, *, ttl_seconds: float, namespace: str = "") -> IdempotencyStore:
    """``sqlite:///relative/path.sqlite3``, ``sqlite:////absolute/path``, or ``redis://host:6379/0``."""
    if url.startswith("sqlite:///"):
        return SqliteStore(url.removeprefix("sqlite:///"), ttl_seconds=ttl_seconds)
    if is_redis_url(url):
        return RedisStore(url, ttl_seconds=ttl_seconds, namespace=f"invoice-pipeline:{namespace}")
    # Name only the scheme: the rest of a URL may carry a password (and a URL that lost its scheme, a user name).
    scheme = f"{url.split('://', 1)[0]}://…" if "://" in url else "a value without a scheme"
    raise ValueError(f"IDEMPOTENCY_URL must start with sqlite:/// or redis://, got {scheme}")
