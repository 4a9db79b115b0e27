"""Remembers which side effects already happened, so a duplicate delivery never moves, mails or calls twice.

A key is claimed with a lease before the work, completed after it. Another worker (or replica) finds it either
in progress (retry later) or done (skip). A worker that dies mid-work leaves a lease that expires, so the work is
done again: for e-mail that means the same message with the same ``Message-ID``, which mail clients collapse.

Backends: SQLite (default; one host, any number of processes) and Redis (replicas on several hosts).
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

from shared.errors import TransientError

P = ParamSpec("P")
R = TypeVar("R")


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


class AlreadyInProgress(TransientError):
    """Another worker holds a live lease on this key: retry later, when it has finished or let go."""

    reason = "in_progress_elsewhere"


class IdempotencyStore(Protocol):
    """Once-only bookkeeping per key, with leases (port; SQLite and Redis adapters below)."""

    def claim(self, key: str, *, lease_seconds: float, owner: str = "") -> Claim: ...
    def complete(self, key: str) -> None: ...
    def release(self, key: str, owner: str | None = None) -> None: ...
    def mark(self, key: str) -> None: ...
    def is_done(self, key: str) -> bool: ...
    def close(self) -> None: ...


def run_once(
    store: IdempotencyStore,
    key: str,
    work: Callable[[], object],
    *,
    lease_seconds: float = 120.0,
    wait_seconds: float = 0.0,
) -> bool:
    """Run ``work`` unless ``key`` is done; False means it was a duplicate. Raises AlreadyInProgress (transient).

    ``wait_seconds`` > 0 waits that long for another worker's claim to end before giving up: worth it when its
    work is short (a confirmed publish), since a retry would repeat everything done before the claim.
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
        raise AlreadyInProgress(f"{key} is being handled by another worker", retry_after=min(lease_seconds, 5.0))
    try:
        work()
    except BaseException:
        with contextlib.suppress(StoreUnavailable):  # the lease runs out by itself; keep the real error
            store.release(key, owner)
        raise
    store.complete(key)
    return True


class SqliteStore:
    """One file shared by every process on the host; WAL mode and immediate transactions make claims atomic."""

    def __init__(self, path: str | Path, *, ttl_seconds: float) -> None:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        self._ttl = ttl_seconds
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
        now = time.time()
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
    def complete(self, key: str) -> None:
        with self._lock:
            self._db.execute("UPDATE claims SET done = 1, expires_at = ? WHERE key = ?", (time.time() + self._ttl, key))

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
                (key, time.time() + self._ttl),
            )

    @_unavailable_on(sqlite3.Error)
    def is_done(self, key: str) -> bool:
        with self._lock:
            row = self._db.execute(
                "SELECT 1 FROM claims WHERE key = ? AND done = 1 AND expires_at > ?", (key, time.time())
            ).fetchone()
        return row is not None

    def close(self) -> None:
        with self._lock:
            self._db.close()


class RedisStore:
    """For replicas on several hosts: SET NX with an expiry is the claim, a longer-lived 'done' is the mark."""

    # Delete only a pending claim, and only the caller's own (ARGV[1] = "pending:<owner>", or "pending:*" for any).
    _RELEASE = (
        "local v = redis.call('get', KEYS[1]) "
        "if v and (v == ARGV[1] or (ARGV[1] == 'pending:*' and string.sub(v, 1, 8) == 'pending:')) then "
        "return redis.call('del', KEYS[1]) end return 0"
    )

    def __init__(self, url: str, *, ttl_seconds: float, namespace: str = "invoice-pipeline:") -> None:
        self._redis = redis.Redis.from_url(url, socket_timeout=5, socket_connect_timeout=5, decode_responses=True)
        self._ttl = max(1, int(ttl_seconds))
        self._namespace = namespace
        self._release = self._redis.register_script(self._RELEASE)

    @_unavailable_on(redis.RedisError)
    def claim(self, key: str, *, lease_seconds: float, owner: str = "") -> Claim:
        name = self._namespace + key
        if self._redis.set(name, f"pending:{owner}", nx=True, px=max(1, int(lease_seconds * 1000))):
            return Claim.ACQUIRED
        return Claim.DONE if self._redis.get(name) == "done" else Claim.IN_PROGRESS

    @_unavailable_on(redis.RedisError)
    def complete(self, key: str) -> None:
        self._redis.set(self._namespace + key, "done", ex=self._ttl)

    @_unavailable_on(redis.RedisError)
    def release(self, key: str, owner: str | None = None) -> None:
        self._release(keys=[self._namespace + key], args=[f"pending:{owner if owner is not None else '*'}"])

    @_unavailable_on(redis.RedisError)
    def mark(self, key: str) -> None:
        self._redis.set(self._namespace + key, "done", ex=self._ttl)

    @_unavailable_on(redis.RedisError)
    def is_done(self, key: str) -> bool:
        return bool(self._redis.get(self._namespace + key) == "done")

    def close(self) -> None:
        self._redis.close()


def open_store(url: str, *, ttl_seconds: float, namespace: str = "") -> IdempotencyStore:
    """``sqlite:///relative/path.sqlite3``, ``sqlite:////absolute/path``, or ``redis://host:6379/0``."""
    if url.startswith("sqlite:///"):
        return SqliteStore(url.removeprefix("sqlite:///"), ttl_seconds=ttl_seconds)
    if url.startswith(("redis://", "rediss://", "unix://")):
        return RedisStore(url, ttl_seconds=ttl_seconds, namespace=f"invoice-pipeline:{namespace}")
    # Name only the scheme: the rest of a URL may carry a password (and a URL that lost its scheme, a user name).
    scheme = f"{url.split('://', 1)[0]}://…" if "://" in url else "a value without a scheme"
    raise ValueError(f"IDEMPOTENCY_URL must start with sqlite:/// or redis://, got {scheme}")
