"""Builds, from a process's settings, the adapters several processes share: the DocSpace client, the stores."""

from __future__ import annotations

import hashlib
import math
from typing import Any

import redis

from shared.config.settings import CommonSettings, DocSpaceSettings
from shared.docspace.client import DocSpaceClient, LookupCaching
from shared.docspace.lookups import RedisLookups
from shared.docspace.transport import HttpOptions
from shared.limits.rate_limit import WRITE_QUOTA_LIMIT, WRITE_QUOTA_USED, KeyLimits, Limiter, RateLimiter, WithinShare
from shared.limits.redis_limiter import RedisRateLimiter, limiter_key
from shared.store.checkpoints import Checkpoints
from shared.store.idempotency import IdempotencyStore
from shared.store.redis_store import RedisCheckpoints, RedisStore
from shared.store.sqlite_store import SqliteCheckpoints, SqliteStore


def docspace_client(
    settings: DocSpaceSettings,
    *,
    pool_size: int = 4,
    per_minute: int | None = None,
    process: str | None = None,
    **options: Any,
) -> DocSpaceClient:
    """A client whose one rate limiter is shared by all the process's threads (and, with Redis, all replicas).

    ``per_minute`` caps this process at its own share inside that limit (the reconciler's budget); ``process``
    names the caller in its ``User-Agent``.
    """
    return DocSpaceClient(
        settings.docspace_api_host,
        settings.docspace_api_key,
        http=HttpOptions(
            timeout=(3.05, settings.docspace_timeout),
            pool_size=pool_size,
            user_agent=f"invoice-pipeline/{process}" if process else None,
            max_pause=settings.max_pause_seconds,
        ),
        limiter=rate_limiter(settings, per_minute=per_minute),
        lookups=LookupCaching(ttl=settings.room_cache_ttl_seconds, shared=shared_lookups(settings)),
        **options,
    )


def shared_lookups(settings: DocSpaceSettings) -> RedisLookups | None:
    """With Redis as the store, replicas share their folder -> room and Incoming-folder answers (per portal)."""
    url = settings.idempotency_url.get_secret_value()
    if not is_redis_url(url):
        return None
    portal = hashlib.sha256(settings.docspace_api_host.encode("utf-8")).hexdigest()[:12]
    return RedisLookups(
        redis.Redis.from_url(url, socket_timeout=2, socket_connect_timeout=2),
        namespace=f"invoice-pipeline:{settings.topology_prefix}:{portal}",
    )


def rate_limiter(settings: DocSpaceSettings, *, per_minute: int | None = None) -> Limiter:
    """With Redis as the store, one limit for every process on the key; with SQLite, this process's share.

    ``per_minute`` is a process's own cap (the reconciler's budget): its whole rate with SQLite, and a cap within
    the key's shared limit with Redis.
    """
    limiter: Limiter
    shared = shared_rate_limiter(settings)
    if shared is not None:
        limiter = shared
        if per_minute is not None:
            own = RateLimiter(
                KeyLimits(per_minute, settings.docspace_max_concurrent_writes, max_pause=settings.max_pause_seconds)
            )
            limiter = WithinShare(own, shared)
    else:
        limiter = RateLimiter(
            KeyLimits(
                per_minute or settings.docspace_rate_limit_per_minute,
                settings.docspace_max_concurrent_writes,
                daily_writes=settings.docspace_daily_write_quota,
                quota_period=settings.docspace_write_quota_period,
                max_pause=settings.max_pause_seconds,
            )
        )
    WRITE_QUOTA_LIMIT.set(settings.docspace_daily_write_quota)
    WRITE_QUOTA_USED.set_function(lambda: _or_nan(limiter.writes_used))
    return limiter


def shared_rate_limiter(settings: DocSpaceSettings, *, timeout: float = 5.0) -> RedisRateLimiter | None:
    """The key's limit in Redis, as every process on the key keeps it; None when the store is not Redis."""
    url = settings.idempotency_url.get_secret_value()
    if not is_redis_url(url):
        return None
    return RedisRateLimiter(
        redis.Redis.from_url(url, socket_timeout=timeout, socket_connect_timeout=timeout, decode_responses=True),
        limiter_key(settings.docspace_api_host, settings.docspace_api_key.get_secret_value()),
        KeyLimits(
            settings.docspace_shared_rate_limit_per_minute,
            settings.docspace_shared_max_concurrent_writes,
            daily_writes=settings.docspace_daily_write_quota,
            quota_period=settings.docspace_write_quota_period,
            max_pause=settings.max_pause_seconds,
        ),
        # A write's lease outlasts the longest a write can take, so only a dead process's lease lapses.
        write_lease=3.05 + settings.docspace_timeout + 30,
    )


def _or_nan(read: Any) -> float:
    # A scrape while Redis is away shows "unknown", and must not fail the whole /metrics page.
    try:
        return float(read())
    except redis.RedisError:
        return math.nan


def idempotency_store(settings: CommonSettings) -> IdempotencyStore:
    # The prefix keeps a staging topology's memory apart from production's on a shared Redis.
    return open_store(
        settings.idempotency_url.get_secret_value(),
        ttl_seconds=settings.idempotency_ttl_days * 86400,
        namespace=settings.topology_prefix,
    )


def checkpoints(settings: CommonSettings) -> Checkpoints:
    """Checkpoints and leases in the idempotency store's place, under the same prefix."""
    return open_checkpoints(settings.idempotency_url.get_secret_value(), namespace=settings.topology_prefix)


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


def open_checkpoints(url: str, *, namespace: str = "") -> Checkpoints:
    """The same URL forms as ``IDEMPOTENCY_URL`` (``open_store``), the same place."""
    if url.startswith("sqlite:///"):
        return SqliteCheckpoints(url.removeprefix("sqlite:///"))
    if is_redis_url(url):
        return RedisCheckpoints(url, namespace=f"invoice-pipeline:{namespace}")
    scheme = f"{url.split('://', 1)[0]}://…" if "://" in url else "a value without a scheme"
    raise ValueError(f"IDEMPOTENCY_URL must start with sqlite:/// or redis://, got {scheme}")
