"""A bounded, thread-safe cache whose concurrent misses on one key make one call: the others wait for its answer."""

from __future__ import annotations

import enum
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Final, Generic, Literal, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class _Missing(enum.Enum):
    """A miss, as distinct from a cached ``None``; an enum so the type checker narrows it."""

    MISSING = enum.auto()


_MISSING: Final = _Missing.MISSING


class SingleFlightCache(Generic[K, V]):
    """Answers of ``load`` per key: least recently used first out past ``max_entries``, each kept ``ttl`` seconds.

    Worker threads that miss the same key together wait for the first one's call instead of each making it (a
    DocSpace call counts against the portal's rate limit). A call that raises is not cached: the next caller, or
    one of those that waited, calls again. ``None`` is an answer like any other. ``hits`` counts the answers
    given from the cache, those a waiting thread got included. ``expires`` dates an answer that carries its own
    age (one another replica found earlier): it is kept until then, not ``ttl`` from now.
    """

    def __init__(
        self,
        *,
        max_entries: int,
        ttl: float | None = None,
        clock: Callable[[], float] = time.monotonic,
        expires: Callable[[V], float | None] | None = None,
    ) -> None:
        if max_entries < 1:
            raise ValueError("max_entries must be at least 1")
        self._max_entries = max_entries
        self._ttl = ttl
        self._expires = expires
        self._clock = clock
        self._answers: OrderedDict[K, tuple[float, V]] = OrderedDict()
        self._loading: set[K] = set()
        self._changed = threading.Condition()
        self.hits = 0

    def __len__(self) -> int:
        with self._changed:
            return len(self._answers)

    def get(self, key: K, load: Callable[[], V]) -> V:
        """The cached answer for ``key``, or ``load()``'s, called by one thread at a time per key."""
        with self._changed:
            while True:
                answer = self._recall(key)
                if answer is not _MISSING:
                    self.hits += 1
                    return answer
                if key not in self._loading:
                    break
                self._changed.wait()
            self._loading.add(key)
        try:
            value = load()
            with self._changed:
                self._keep(key, value)
            return value
        finally:
            with self._changed:
                self._loading.discard(key)
                self._changed.notify_all()

    def put(self, key: K, value: V) -> None:
        """Keep an answer learnt on the way (the folders below a room, found with the room)."""
        with self._changed:
            self._keep(key, value)

    def forget(self, key: K) -> bool:
        """Drop an answer found wrong (a folder DocSpace says is gone); whether there was one."""
        with self._changed:
            return self._answers.pop(key, None) is not None

    def _recall(self, key: K) -> V | Literal[_Missing.MISSING]:
        entry = self._answers.get(key)
        if entry is None:
            return _MISSING
        expires, value = entry
        if expires < self._clock():
            del self._answers[key]
            return _MISSING
        self._answers.move_to_end(key)
        return value

    def _keep(self, key: K, value: V) -> None:
        expires = self._clock() + self._ttl if self._ttl is not None else float("inf")
        own = self._expires(value) if self._expires is not None else None
        if own is not None:
            expires = min(expires, own)
        self._answers[key] = (expires, value)
        self._answers.move_to_end(key)
        while len(self._answers) > self._max_entries:
            self._answers.popitem(last=False)
