"""The SQLite adapters (the default): idempotency claims and checkpoints in one file shared by a host's processes."""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from shared.store.checkpoints import decode_checkpoint
from shared.store.idempotency import Claim, StoreUnavailable, unavailable_on


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

    @unavailable_on(sqlite3.Error)
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

    @unavailable_on(sqlite3.Error)
    def renew(self, key: str, owner: str, *, lease_seconds: float) -> bool:
        """Extend the caller's own live claim; False when it is no longer the caller's (or no longer pending)."""
        now = self._clock()
        with self._lock:
            cursor = self._db.execute(
                "UPDATE claims SET expires_at = ? WHERE key = ? AND owner = ? AND done = 0 AND expires_at > ?",
                (now + lease_seconds, key, owner, now),
            )
        return cursor.rowcount == 1

    @unavailable_on(sqlite3.Error)
    def lease_left(self, key: str) -> float | None:
        """Seconds until a pending claim's lease runs out; None when nobody holds one."""
        now = self._clock()
        with self._lock:
            row = self._db.execute(
                "SELECT expires_at FROM claims WHERE key = ? AND done = 0 AND expires_at > ?", (key, now)
            ).fetchone()
        return None if row is None else float(row[0]) - now

    @unavailable_on(sqlite3.Error)
    def complete(self, key: str) -> None:
        with self._lock:
            self._db.execute(
                "UPDATE claims SET done = 1, expires_at = ? WHERE key = ?", (self._clock() + self._ttl, key)
            )

    @unavailable_on(sqlite3.Error)
    def release(self, key: str, owner: str | None = None) -> None:
        with self._lock:
            if owner is None:
                self._db.execute("DELETE FROM claims WHERE key = ? AND done = 0", (key,))
            else:
                self._db.execute("DELETE FROM claims WHERE key = ? AND done = 0 AND owner = ?", (key, owner))

    @unavailable_on(sqlite3.Error)
    def mark(self, key: str) -> None:
        """Record ``key`` as done without a claim (facts such as "this file was routed")."""
        with self._lock:
            self._db.execute(
                "INSERT OR REPLACE INTO claims (key, done, owner, expires_at) VALUES (?, 1, '', ?)",
                (key, self._clock() + self._ttl),
            )

    @unavailable_on(sqlite3.Error)
    def is_done(self, key: str) -> bool:
        with self._lock:
            row = self._db.execute(
                "SELECT 1 FROM claims WHERE key = ? AND done = 1 AND expires_at > ?", (key, self._clock())
            ).fetchone()
        return row is not None

    def close(self) -> None:
        with self._lock:
            self._db.close()


class SqliteCheckpoints:
    """Two tables beside the idempotency store's in the same SQLite file (``IDEMPOTENCY_URL``)."""

    def __init__(self, path: str | Path, *, clock: Callable[[], float] = time.time) -> None:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        self._clock = clock
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
            self._db.execute(
                "CREATE TABLE IF NOT EXISTS quarantine"
                " (name TEXT NOT NULL, key TEXT NOT NULL, value TEXT NOT NULL, saved_at REAL, PRIMARY KEY (name, key))"
            )
        except sqlite3.Error as exc:
            raise StoreUnavailable(f"the checkpoint store failed: {exc}") from exc

    def load(self, name: str) -> dict[str, Any] | None:
        try:
            with self._lock:
                row = self._db.execute("SELECT value FROM checkpoints WHERE name = ?", (name,)).fetchone()
        except sqlite3.Error as exc:
            raise StoreUnavailable(f"the checkpoint store failed: {exc}") from exc
        return decode_checkpoint(row[0] if row else None)

    def save(self, name: str, value: dict[str, Any]) -> None:
        try:
            with self._lock:
                self._db.execute(
                    "INSERT OR REPLACE INTO checkpoints (name, value, saved_at) VALUES (?, ?, ?)",
                    (name, json.dumps(value, sort_keys=True), self._clock()),
                )
        except sqlite3.Error as exc:
            raise StoreUnavailable(f"the checkpoint store failed: {exc}") from exc

    def hold(self, name: str, owner: str, *, seconds: float) -> bool:
        now = self._clock()
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

    def quarantine(self, name: str, key: str, detail: dict[str, Any]) -> None:
        try:
            with self._lock:
                self._db.execute(
                    "INSERT OR REPLACE INTO quarantine (name, key, value, saved_at) VALUES (?, ?, ?, ?)",
                    (name, key, json.dumps(detail, sort_keys=True), self._clock()),
                )
        except sqlite3.Error as exc:
            raise StoreUnavailable(f"the checkpoint store failed: {exc}") from exc

    def quarantined(self, name: str) -> dict[str, dict[str, Any]]:
        try:
            with self._lock:
                rows = self._db.execute("SELECT key, value FROM quarantine WHERE name = ?", (name,)).fetchall()
        except sqlite3.Error as exc:
            raise StoreUnavailable(f"the checkpoint store failed: {exc}") from exc
        # A damaged detail still names its key: the row stays set aside.
        return {key: decode_checkpoint(value) or {} for key, value in rows}

    def close(self) -> None:
        with self._lock:
            self._db.close()
