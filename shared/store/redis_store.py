"""The Redis adapters, for replicas on several hosts: idempotency claims and checkpoints, made atomic by Lua scripts."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import redis

from shared.store.checkpoints import decode_checkpoint
from shared.store.idempotency import Claim, StoreUnavailable, unavailable_on

# The Redis scripts keep a pending claim as "pending|<expires at, ms>|<owner>", its lease judged by the server's
# clock (every host shares it), or by ARGV's "now" when a test injects a clock. The key's own expiry, a minute
# past the lease, only collects garbage. "done" is a plain value with the TTL of IDEMPOTENCY_TTL_DAYS.
_REDIS_NOW = (
    "local now = tonumber(ARGV[1]) "
    "if not now then local t = redis.call('time') now = t[1] * 1000 + math.floor(t[2] / 1000) end "
)
_REDIS_PENDING = (
    "local function pending(v) "
    "  if not v or string.sub(v, 1, 8) ~= 'pending|' then return nil, nil end "
    "  local bar = string.find(v, '|', 9, true) "
    "  return tonumber(string.sub(v, 9, bar - 1)), string.sub(v, bar + 1) "
    "end "
)
# KEYS[1]; ARGV: now|'', lease ms, owner -> 'acquired' | 'done' | 'in_progress'
_REDIS_CLAIM = (
    _REDIS_NOW + _REDIS_PENDING + "local v = redis.call('get', KEYS[1]) "
    "if v == 'done' then return 'done' end "
    "local expires = pending(v) "
    "if expires and expires > now then return 'in_progress' end "
    "if v and string.sub(v, 1, 8) == 'pending:' then return 'in_progress' end "  # a claim from before 'pending|'
    "local lease = tonumber(ARGV[2]) "
    "redis.call('set', KEYS[1], 'pending|' .. (now + lease) .. '|' .. ARGV[3], 'px', lease + 60000) "
    "return 'acquired'"
)
# KEYS[1]; ARGV: now|'', lease ms, owner -> 1 renewed | 0 not the caller's live claim
_REDIS_RENEW = (
    _REDIS_NOW + _REDIS_PENDING + "local expires, owner = pending(redis.call('get', KEYS[1])) "
    "if not expires or owner ~= ARGV[3] or expires <= now then return 0 end "
    "local lease = tonumber(ARGV[2]) "
    "redis.call('set', KEYS[1], 'pending|' .. (now + lease) .. '|' .. owner, 'px', lease + 60000) "
    "return 1"
)
# KEYS[1]; ARGV: now|'' -> ms left of a live pending claim, or -1
_REDIS_LEASE_LEFT = (
    _REDIS_NOW + _REDIS_PENDING + "local v = redis.call('get', KEYS[1]) "
    "local expires = pending(v) "
    "if expires and expires > now then return expires - now end "
    "if v and string.sub(v, 1, 8) == 'pending:' then return redis.call('pttl', KEYS[1]) end "
    "return -1"
)
# KEYS[1]; ARGV: owner or '*' -> deletes a pending claim, only the caller's own unless '*'
_REDIS_RELEASE = (
    _REDIS_PENDING + "local v = redis.call('get', KEYS[1]) "
    "local expires, owner = pending(v) "
    "if (expires and (ARGV[1] == '*' or owner == ARGV[1])) "
    "or (v and string.sub(v, 1, 8) == 'pending:' and (ARGV[1] == '*' or v == 'pending:' .. ARGV[1])) then "
    "return redis.call('del', KEYS[1]) end return 0"
)


class RedisStore:
    """For replicas on several hosts: small Lua scripts make claim, renewal and release atomic."""

    def __init__(
        self,
        url: str,
        *,
        ttl_seconds: float,
        namespace: str = "invoice-pipeline:",
        clock: Callable[[], float] | None = None,
    ) -> None:
        self._redis = redis.Redis.from_url(url, socket_timeout=5, socket_connect_timeout=5, decode_responses=True)
        self._ttl = max(1, int(ttl_seconds))
        self._namespace = namespace
        self._clock = clock  # None: the Redis server's clock
        self._claim = self._redis.register_script(_REDIS_CLAIM)
        self._renew = self._redis.register_script(_REDIS_RENEW)
        self._lease_left = self._redis.register_script(_REDIS_LEASE_LEFT)
        self._release = self._redis.register_script(_REDIS_RELEASE)

    def _now(self) -> str:
        return "" if self._clock is None else str(int(self._clock() * 1000))

    @unavailable_on(redis.RedisError)
    def claim(self, key: str, *, lease_seconds: float, owner: str = "") -> Claim:
        lease = max(1, int(lease_seconds * 1000))
        answer = self._claim(keys=[self._namespace + key], args=[self._now(), lease, owner])
        return Claim(answer)

    @unavailable_on(redis.RedisError)
    def renew(self, key: str, owner: str, *, lease_seconds: float) -> bool:
        lease = max(1, int(lease_seconds * 1000))
        return bool(self._renew(keys=[self._namespace + key], args=[self._now(), lease, owner]))

    @unavailable_on(redis.RedisError)
    def lease_left(self, key: str) -> float | None:
        left = int(self._lease_left(keys=[self._namespace + key], args=[self._now()]))
        return None if left < 0 else left / 1000

    @unavailable_on(redis.RedisError)
    def complete(self, key: str) -> None:
        self._redis.set(self._namespace + key, "done", ex=self._ttl)

    @unavailable_on(redis.RedisError)
    def release(self, key: str, owner: str | None = None) -> None:
        self._release(keys=[self._namespace + key], args=[owner if owner is not None else "*"])

    @unavailable_on(redis.RedisError)
    def mark(self, key: str) -> None:
        self._redis.set(self._namespace + key, "done", ex=self._ttl)

    @unavailable_on(redis.RedisError)
    def is_done(self, key: str) -> bool:
        return bool(self._redis.get(self._namespace + key) == "done")

    def close(self) -> None:
        self._redis.close()


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
        return decode_checkpoint(raw if isinstance(raw, str) else None)

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

    def quarantine(self, name: str, key: str, detail: dict[str, Any]) -> None:
        try:
            self._redis.hset(f"{self._namespace}quarantine:{name}", key, json.dumps(detail, sort_keys=True))
        except redis.RedisError as exc:
            raise StoreUnavailable(f"the checkpoint store failed: {exc}") from exc

    def quarantined(self, name: str) -> dict[str, dict[str, Any]]:
        try:
            raw = self._redis.hgetall(f"{self._namespace}quarantine:{name}")
        except redis.RedisError as exc:
            raise StoreUnavailable(f"the checkpoint store failed: {exc}") from exc
        # A damaged detail still names its key: the row stays set aside.
        return {
            str(key): decode_checkpoint(value if isinstance(value, str) else None) or {} for key, value in raw.items()
        }

    def close(self) -> None:
        self._redis.close()
