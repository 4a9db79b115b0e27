"""Named checkpoints (small JSON documents) and leases, kept in the same store as idempotency (SQLite or Redis).

The reconciler remembers here how far it got (the delivery log, each room's scan) and what its last run found,
so a restart neither redoes everything nor misses a window; a lease around a cycle keeps two replicas from doing
the same work at once.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any, Protocol

import redis

from shared.idempotency import StoreUnavailable


class Checkpoints(Protocol):
    """Named JSON checkpoints and named leases, shared by every process on the same store."""

    def load(self, name: str) -> dict[str, Any] | None: ...
    def save(self, name: str, value: dict[str, Any]) -> None: ...
    def hold(self, name: str, owner: str, *, seconds: float) -> bool:
        """Take the lease ``name`` for ``owner``, or extend it if ``owner`` holds it; False if another does."""
        ...

    def release(self, name: str, owner: str) -> None:
        """Give the lease back, if ``owner`` still holds it."""
        ...

    def close(self) -> None: ...


def _decode(raw: str | None) -> dict[str, Any] | None:
    if raw is None:
        return None
    try:
        value = json.loads(raw)
    except ValueError:
        return None  # a damaged checkpoint is treated as none: the reconciler starts that part afresh
    return value if isinstance(value, dict) else None


class SqliteCheckpoints:
    """Two tables beside the idempotency store's in the same SQLite file (``IDEMPOTENCY_URL``)."""

    def __init__(self, path: str | Path) -> None:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(str(path), timeout=30, isolation_level=None, check_same_thread=False)
        try:
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute(
                "CREATE TABLE IF NOT EXISTS checkpoints (name TEXT PRIMARY KEY, value TEXT NOT NULL, saved_at REAL)"
            )
            self._db.execute(
                "CREATE TABLE IF NOT EXISTS leases (name TEXT PRIMARY KEY, owner TEXT NOT NULL, expires_at REAL)"
            )
        except sqlite3.Error as exc:
            raise StoreUnavailable(f"the checkpoint store failed: {exc}") from exc

    def load(self, name: str) -> dict[str, Any] | None:
        try:
            with self._lock:
                row = self._db.execute("SELECT value FROM checkpoints WHERE name = ?", (name,)).fetchone()
        except sqlite3.Error as exc:
            raise StoreUnavailable(f"the checkpoint store failed: {exc}") from exc
        return _decode(row[0] if row else None)

    def save(self, name: str, value: dict[str, Any]) -> None:
        try:
            with self._lock:
                self._db.execute(
                    "INSERT OR REPLACE INTO checkpoints (name, value, saved_at) VALUES (?, ?, ?)",
                    (name, json.dumps(value, sort_keys=True), time.time()),
                )
        except sqlite3.Error as exc:
            raise StoreUnavailable(f"the checkpoint store failed: {exc}") from exc

    def hold(self, name: str, owner: str, *, seconds: float) -> bool:
        now = time.time()
        try:
            with self._lock:
                self._db.execute("BEGIN IMMEDIATE")
                try:
                    row = self._db.execute("SELECT owner, expires_at FROM leases WHERE name = ?", (name,)).fetchone()
                    if row is not None and row[0] != owner and row[1] > now:
                        return False
                    self._db.execute(
                        "INSERT OR REPLACE INTO leases (name, owner, expires_at) VALUES (?, ?, ?)",
                        (name, owner, now + seconds),
                    )
                    return True
                finally:
                    self._db.execute("COMMIT")
        except sqlite3.Error as exc:
            raise StoreUnavailable(f"the checkpoint store failed: {exc}") from exc

    def release(self, name: str, owner: str) -> None:
        try:
            with self._lock:
                self._db.execute("DELETE FROM leases WHERE name = ? AND owner = ?", (name, owner))
        except sqlite3.Error as exc:
            raise StoreUnavailable(f"the checkpoint store failed: {exc}") from exc

    def close(self) -> None:
        with self._lock:
            self._db.close()


class RedisCheckpoints:
    """Checkpoints as plain keys (no expiry); a lease is ``SET NX PX``, extended or released only by its owner."""

    _EXTEND = (
        "local v = redis.call('get', KEYS[1]) "
        "if v == ARGV[1] then redis.call('pexpire', KEYS[1], ARGV[2]) return 1 end "
        "if v then return 0 end "
        "return redis.call('set', KEYS[1], ARGV[1], 'px', ARGV[2]) and 1 or 0"
    )
    _RELEASE = "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) end return 0"

    def __init__(self, url: str, *, namespace: str = "invoice-pipeline:") -> None:
        self._redis = redis.Redis.from_url(url, socket_timeout=5, socket_connect_timeout=5, decode_responses=True)
        self._namespace = namespace
        self._extend = self._redis.register_script(self._EXTEND)
        self._release = self._redis.register_script(self._RELEASE)

    def load(self, name: str) -> dict[str, Any] | None:
        try:
            raw = self._redis.get(f"{self._namespace}checkpoint:{name}")
        except redis.RedisError as exc:
            raise StoreUnavailable(f"the checkpoint store failed: {exc}") from exc
        return _decode(raw if isinstance(raw, str) else None)

    def save(self, name: str, value: dict[str, Any]) -> None:
        try:
            self._redis.set(f"{self._namespace}checkpoint:{name}", json.dumps(value, sort_keys=True))
        except redis.RedisError as exc:
            raise StoreUnavailable(f"the checkpoint store failed: {exc}") from exc

    def hold(self, name: str, owner: str, *, seconds: float) -> bool:
        try:
            held = self._extend(keys=[f"{self._namespace}lease:{name}"], args=[owner, max(1, int(seconds * 1000))])
        except redis.RedisError as exc:
            raise StoreUnavailable(f"the checkpoint store failed: {exc}") from exc
        return bool(held)

    def release(self, name: str, owner: str) -> None:
        try:
            self._release(keys=[f"{self._namespace}lease:{name}"], args=[owner])
        except redis.RedisError as exc:
            raise StoreUnavailable(f"the checkpoint store failed: {exc}") from exc

    def close(self) -> None:
        self._redis.close()


def open_checkpoints(url: str, *, namespace: str = "") -> Checkpoints:
    """The same URL forms as ``IDEMPOTENCY_URL`` (``shared.idempotency.open_store``), the same place."""
    if url.startswith("sqlite:///"):
        return SqliteCheckpoints(url.removeprefix("sqlite:///"))
    if url.startswith(("redis://", "rediss://", "unix://")):
        return RedisCheckpoints(url, namespace=f"invoice-pipeline:{namespace}")
    scheme = f"{url.split('://', 1)[0]}://…" if "://" in url else "a value without a scheme"
    raise ValueError(f"IDEMPOTENCY_URL must start with sqlite:/// or redis://, got {scheme}")
