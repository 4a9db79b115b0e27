"""Answers of DocSpace lookups (a folder's room, a room's Incoming folder) shared by every replica through Redis.

Each process keeps its own answers for a while; with several replicas each would also ask DocSpace itself, and
every one of those asks counts against the API key's limit. With Redis as the store, the first replica to ask
leaves its answer here, dated, for the others. An unreachable Redis is only a miss: the lookup asks DocSpace.
"""

from __future__ import annotations

from typing import Protocol

import redis
import structlog

log = structlog.get_logger(__name__)


class SharedLookups(Protocol):
    """Where replicas leave lookup answers for each other (port; ``RedisLookups`` is the real one)."""

    def recall(self, key: str) -> str | None: ...
    def keep(self, key: str, answer: str, *, seconds: float) -> None: ...


class RedisLookups:
    """Lookup answers under ``<namespace>:lookup:<key>``, each expiring with the answer it holds."""

    def __init__(self, client: redis.Redis, *, namespace: str) -> None:
        self._client = client
        self._prefix = f"{namespace}:lookup:"

    def recall(self, key: str) -> str | None:
        try:
            answer = self._client.get(self._prefix + key)
        except redis.RedisError as exc:
            log.warning("shared_lookup_unavailable", key=key, error=type(exc).__name__)
            return None
        if isinstance(answer, bytes):
            return answer.decode("utf-8", "replace")
        return answer if isinstance(answer, str) else None

    def keep(self, key: str, answer: str, *, seconds: float) -> None:
        if seconds <= 0:
            return
        try:
            self._client.set(self._prefix + key, answer, px=max(int(seconds * 1000), 1))
        except redis.RedisError as exc:
            log.warning("shared_lookup_unavailable", key=key, error=type(exc).__name__)

    def close(self) -> None:
        self._client.close()
