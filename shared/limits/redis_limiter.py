"""One DocSpace rate limit for every process and replica on one API key, kept in Redis.

DocSpace counts per user (API key), so replicas on several hosts must share one budget instead of each taking a
hand-divided share. Three small Lua scripts, each atomic in Redis and timed by the Redis server's clock (every
host shares it):

- **requests per minute**: GCRA, as the in-process limiter does: one theoretical arrival time per key, each caller
  reserving the next slot and sleeping until it. No 60-second window holds more than the limit plus a one-second
  burst.
- **concurrent writes**: a semaphore of leases (a sorted set of tokens scored by when they lapse). A write holds
  a lease while it runs; a process that dies holding one loses it when the lease lapses, so a crash can never leak
  a slot for good.
- **the daily write quota**: writes counted per quota period, and, once a 429 names that quota (its
  ``X-RateLimit-Limit`` is ``DOCSPACE_DAILY_WRITE_QUOTA``), the time they reset, so every replica parks its writes
  without asking DocSpace again. Reads are never held back by it.

A 429 that is not the daily quota pauses every process on the key for its ``Retry-After``, at most ``max_pause``.
"""

from __future__ import annotations

import contextlib
import hashlib
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager

import redis

from shared.limits.rate_limit import KeyLimits, RateLimitWait, WriteQuotaSpent, counts_against_quota, quota_rejection
from shared.limits.retry_after import cap_pause
from shared.store.idempotency import StoreUnavailable

_NOW = "local t = redis.call('time') local now = t[1] * 1000 + t[2] / 1000 "
# The quota's windows in whole milliseconds: the reset's time is stored as a whole number, and a fractional "now"
# beside its rounded value could fall a hair before the period that is ending, and the next read would then start
# a new period at 0 while every write waits for the reset.
_NOW_WHOLE_MS = "local t = redis.call('time') local now = t[1] * 1000 + math.floor(t[2] / 1000) "

# KEYS: tat, paused. ARGV: interval ms, tolerance ms, budget ms -> {1, wait ms} reserved | {0, wait ms} too long
_RATE = (
    _NOW + "local tat = tonumber(redis.call('get', KEYS[1])) or 0 "
    "local paused = tonumber(redis.call('get', KEYS[2])) or 0 "
    "local at = math.max(now, tat - tonumber(ARGV[2]), paused) "
    "local wait = at - now "
    "if wait > tonumber(ARGV[3]) then return {0, math.ceil(wait)} end "
    "local next = math.max(tat, at) + tonumber(ARGV[1]) "
    "redis.call('set', KEYS[1], string.format('%.3f', next), 'px', math.ceil(next - now) + 60000) "
    "return {1, math.ceil(wait)}"
)
# KEYS: paused. ARGV: ms -> nothing
_PAUSE = (
    _NOW + "local resume = now + tonumber(ARGV[1]) "
    "local current = tonumber(redis.call('get', KEYS[1])) or 0 "
    "if resume > current then "
    "redis.call('set', KEYS[1], string.format('%.3f', resume), 'px', math.ceil(tonumber(ARGV[1])) + 1000) end "
    "return 0"
)
# KEYS: writes (zset). ARGV: limit, lease ms, token -> 1 acquired | 0 full
_ACQUIRE = (
    _NOW + "redis.call('zremrangebyscore', KEYS[1], '-inf', now) "
    "if redis.call('zcard', KEYS[1]) >= tonumber(ARGV[1]) then return 0 end "
    "redis.call('zadd', KEYS[1], now + tonumber(ARGV[2]), ARGV[3]) "
    "redis.call('pexpire', KEYS[1], 2 * tonumber(ARGV[2])) "
    "return 1"
)
# KEYS: quota (hash: anchor, window, count, spent). ARGV: period ms, increment
#   -> {count, 0} | {-1, ms until the quota resets} when it is spent
_QUOTA = (
    _NOW_WHOLE_MS + "local period = tonumber(ARGV[1]) "
    "local spent = tonumber(redis.call('hget', KEYS[1], 'spent')) or 0 "
    "if now < spent and tonumber(ARGV[2]) > 0 then return {-1, math.ceil(spent - now)} end "
    "local anchor = tonumber(redis.call('hget', KEYS[1], 'anchor')) or 0 "
    "local window = anchor + math.floor((now - anchor) / period) * period "
    "if tonumber(redis.call('hget', KEYS[1], 'window')) ~= window then "
    "redis.call('hset', KEYS[1], 'window', string.format('%.0f', window), 'count', 0) end "
    "local count = redis.call('hincrby', KEYS[1], 'count', ARGV[2]) "
    "redis.call('pexpire', KEYS[1], 2 * period) "
    "return {count, 0}"
)
# KEYS: quota. ARGV: period ms, ms until reset, daily writes -> nothing. The reset is DocSpace's period boundary.
_SPENT = (
    _NOW_WHOLE_MS + "local period = tonumber(ARGV[1]) "
    "local spent = now + tonumber(ARGV[2]) "
    "local current = tonumber(redis.call('hget', KEYS[1], 'spent')) or 0 "
    "if spent > current then redis.call('hset', KEYS[1], 'spent', string.format('%.0f', spent), "
    "'anchor', string.format('%.0f', spent)) end "
    "local anchor = tonumber(redis.call('hget', KEYS[1], 'anchor')) "
    "local window = anchor + math.floor((now - anchor) / period) * period "
    "local count = tonumber(redis.call('hget', KEYS[1], 'count')) or 0 "
    "if tonumber(redis.call('hget', KEYS[1], 'window')) ~= window or count < tonumber(ARGV[3]) then "
    "redis.call('hset', KEYS[1], 'window', string.format('%.0f', window), 'count', ARGV[3]) end "
    "redis.call('pexpire', KEYS[1], 2 * period + tonumber(ARGV[2])) "
    "return 0"
)


def limiter_key(api_host: str, api_key: str) -> str:
    """Names the limit by portal and key without putting the key itself into Redis."""
    digest = hashlib.sha256(f"{api_host.rstrip('/')}\n{api_key}".encode()).hexdigest()[:16]
    return f"invoice-pipeline:docspace-limit:{digest}:"


class RedisRateLimiter:
    """``RateLimiter``'s contract, with the limit kept in Redis for every process on the same portal and key.

    ``per_minute`` and ``max_concurrent_writes`` are the whole key's budget here, not a process's share. A Redis
    that does not answer is an outage of our own store (``idempotency_store_unavailable``): the message waits in
    the parking queue until it answers (``shared/broker/follow_ups.py``), never sent unlimited.
    """

    def __init__(
        self,
        client: redis.Redis,
        key: str,
        limits: KeyLimits,
        *,
        write_lease: float = 60.0,
        poll_interval: float = 0.02,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        per_minute = self.per_minute = limits.per_minute
        self.max_concurrent_writes = limits.max_concurrent_writes
        self.daily_writes = limits.daily_writes
        self._redis = client
        self._keys = {name: key + name for name in ("tat", "paused", "writes", "quota")}
        interval = 60_000.0 / per_minute
        self._interval_ms = interval
        self._tolerance_ms = max(limits.burst_seconds * per_minute / 60.0 - 1, 0.0) * interval
        self._period_ms = limits.quota_period * 1000
        self._max_wait = limits.max_wait
        self._lease_ms = write_lease * 1000  # longer than any one write can take (connect + read timeouts)
        self._max_pause = limits.max_pause
        self._poll = poll_interval
        self._sleep = sleep
        self._rate = client.register_script(_RATE)
        self._pause = client.register_script(_PAUSE)
        self._acquire = client.register_script(_ACQUIRE)
        self._quota = client.register_script(_QUOTA)
        self._spent = client.register_script(_SPENT)
        self._wait_lock = threading.Lock()
        self.waited_seconds = 0.0

    @contextmanager
    def slot(self, method: str) -> Iterator[None]:
        """Hold a slot for one request: the quota and a write lease for writes, then the key's rate."""
        write = method.upper() not in ("GET", "HEAD")
        started = time.monotonic()
        token = None
        try:
            if counts_against_quota(method):
                self._count_write()
            if write:
                token = self._acquire_write(started)
            self._wait_for_rate(self._max_wait - (time.monotonic() - started))
            yield
        except redis.RedisError as exc:
            raise StoreUnavailable(f"the shared DocSpace rate limit in Redis failed: {exc}") from exc
        finally:
            if token is not None:
                self._release_write(token)

    def pause(self, seconds: float) -> None:
        """The portal said 429: no process on this key sends anything for ``seconds`` (at most ``max_pause``)."""
        capped = cap_pause(seconds, self._max_pause) if seconds >= 0 else None
        seconds = capped if capped is not None else 1.0  # junk is a 429 without a hint: one second
        try:
            self._pause(keys=[self._keys["paused"]], args=[round(seconds * 1000)])
        except redis.RedisError as exc:
            raise StoreUnavailable(f"the shared DocSpace rate limit in Redis failed: {exc}") from exc

    def write_quota_spent(self, method: str, headers: Mapping[str, str]) -> WriteQuotaSpent | None:
        """A 429 came back: when it says the day's writes are spent, tell every replica and return the deferral."""
        reset = quota_rejection(method, headers, self.daily_writes, self._period_ms / 1000)
        if reset is None:
            return None
        try:
            self._spent(keys=[self._keys["quota"]], args=[self._period_ms, round(reset * 1000), self.daily_writes])
        except redis.RedisError as exc:
            raise StoreUnavailable(f"the shared DocSpace rate limit in Redis failed: {exc}") from exc
        return WriteQuotaSpent(f"DocSpace's write quota is spent; it resets in {reset:.0f}s", delay=reset)

    def writes_used(self) -> int:
        """Writes every process on the key made in the current quota period."""
        count, _ = self._quota(keys=[self._keys["quota"]], args=[self._period_ms, 0])
        return int(count)

    def close(self) -> None:
        self._redis.close()

    # --- internals -------------------------------------------------------------------------------------------

    def _count_write(self) -> None:
        count, wait_ms = self._quota(keys=[self._keys["quota"]], args=[self._period_ms, 1])
        if int(count) < 0:
            wait = int(wait_ms) / 1000
            raise WriteQuotaSpent(f"DocSpace's write quota is spent; it resets in {wait:.0f}s", delay=wait)

    def _acquire_write(self, started: float) -> str:
        token = uuid.uuid4().hex
        while not self._acquire(keys=[self._keys["writes"]], args=[self.max_concurrent_writes, self._lease_ms, token]):
            if time.monotonic() - started > self._max_wait:
                raise RateLimitWait(
                    f"no DocSpace write slot within {self._max_wait:g}s "
                    f"({self.max_concurrent_writes} in flight on this key)",
                    retry_after=1.0,
                )
            self._sleep(self._poll)
        return token

    def _release_write(self, token: str) -> None:
        with contextlib.suppress(redis.RedisError):  # the lease lapses by itself
            self._redis.zrem(self._keys["writes"], token)

    def _wait_for_rate(self, budget: float) -> None:
        reserved, wait_ms = self._rate(
            keys=[self._keys["tat"], self._keys["paused"]],
            args=[self._interval_ms, self._tolerance_ms, max(budget, 0) * 1000],
        )
        wait = int(wait_ms) / 1000
        if not reserved:
            raise RateLimitWait(
                f"the shared DocSpace rate limit ({self.per_minute}/min) has no slot within {max(budget, 0):g}s",
                retry_after=max(wait, 1.0),
            )
        if wait > 0:
            with self._wait_lock:
                self.waited_seconds += wait
            self._sleep(wait)
