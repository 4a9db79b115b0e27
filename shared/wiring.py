"""Builds, from a process's settings, the adapters several processes share: the DocSpace client, the store."""

from __future__ import annotations

from typing import Any

from shared.docspace import DocSpaceClient
from shared.idempotency import IdempotencyStore, open_store
from shared.rate_limit import RateLimiter
from shared.settings import CommonSettings, DocSpaceSettings


def docspace_client(settings: DocSpaceSettings, *, pool_size: int = 4, **options: Any) -> DocSpaceClient:
    """A client whose one rate limiter is shared by all the process's threads."""
    return DocSpaceClient(
        settings.docspace_api_host,
        settings.docspace_api_key,
        timeout=(3.05, settings.docspace_timeout),
        pool_size=pool_size,
        max_pause=settings.max_pause_seconds,
        limiter=RateLimiter(
            settings.docspace_rate_limit_per_minute,
            settings.docspace_max_concurrent_writes,
            max_pause=settings.max_pause_seconds,
        ),
        **options,
    )


def idempotency_store(settings: CommonSettings) -> IdempotencyStore:
    # The prefix keeps a staging topology's memory apart from production's on a shared Redis.
    return open_store(
        settings.idempotency_url.get_secret_value(),
        ttl_seconds=settings.idempotency_ttl_days * 86400,
        namespace=settings.topology_prefix,
    )
