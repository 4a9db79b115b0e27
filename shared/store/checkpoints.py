"""Named checkpoints (small JSON documents) and leases, kept in the same place as idempotency (SQLite or Redis).

The reconciler remembers here how far it got (the delivery log, each room's scan) and what its last run found,
so a restart neither redoes everything nor misses a window; a lease around a cycle keeps two replicas from doing
the same work at once; a quarantine keeps the rows a bug met, so the next cycle goes on past them and ``doctor``
lists them. This module is the port: ``SqliteCheckpoints`` (``shared/store/sqlite_store.py``) and
``RedisCheckpoints`` (``shared/store/redis_store.py``) keep them; ``shared/runtime/wiring.py`` opens the one
``IDEMPOTENCY_URL`` names.
"""

from __future__ import annotations

import json
from typing import Any, Protocol


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

    def quarantine(self, name: str, key: str, detail: dict[str, Any]) -> None:
        """Set ``key`` aside in the quarantine ``name`` (a row a bug met), with what happened; again: replaced."""
        ...

    def quarantined(self, name: str) -> dict[str, dict[str, Any]]:
        """Every key set aside in the quarantine ``name``, with its detail (``doctor`` lists them)."""
        ...

    def close(self) -> None: ...


def decode_checkpoint(raw: str | None) -> dict[str, Any] | None:
    """A stored checkpoint's JSON, or None when there is none (or it is damaged)."""
    if raw is None:
        return None
    try:
        value = json.loads(raw)
    except ValueError:
        return None  # a damaged checkpoint is treated as none: the reconciler starts that part afresh
    return value if isinstance(value, dict) else None
