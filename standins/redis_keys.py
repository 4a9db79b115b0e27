"""A run's keys on a shared Redis (its claims and marks, the simulator key's limit), deleted by the tests and bench."""

from __future__ import annotations

import redis

from shared.limits.redis_limiter import limiter_key
from simulator import DocSpaceSimulator


def forget_redis_keys(redis_url: str, prefix: str, sim: DocSpaceSimulator) -> None:
    """Delete the keys of topology prefix ``prefix`` and the simulator key's shared limit, so the next run starts
    clean (never a flush: Redis is shared)."""
    client = redis.Redis.from_url(redis_url)
    try:
        keys = list(client.scan_iter(match=f"invoice-pipeline:{prefix}*"))
        keys += list(client.scan_iter(match=limiter_key(sim.base_url, sim.api_key) + "*"))
        if keys:
            client.delete(*keys)
    finally:
        client.close()
