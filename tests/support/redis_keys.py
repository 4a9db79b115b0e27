"""Keys of one test's own on the shared Redis (database 15): a fresh prefix, and every key with it deleted after."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import redis

REDIS_URL = "redis://127.0.0.1:6379/15"


def own_prefix(label: str) -> Iterator[str]:
    """Yield ``label-<uuid>:``; afterwards delete every key containing it (never a flush: Redis is shared)."""
    prefix = f"{label}-{uuid.uuid4().hex}:"
    yield prefix
    delete_containing(prefix)


def delete_containing(fragment: str) -> None:
    client = redis.Redis.from_url(REDIS_URL)
    keys = list(client.scan_iter(match=f"*{fragment}*"))
    if keys:
        client.delete(*keys)
    client.close()
