"""A small thread-safe in-process cache with a time-to-live per entry.

The control plane is read on the hot path of every ingest request and every streamed
record; these caches keep those reads off the database. Entries expire on their own, so
another process's writes become visible after at most one TTL.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class TtlCache(Generic[K, V]):
    """Maps keys to values for ``ttl`` seconds each; holds at most ``maxsize`` entries."""

    def __init__(
        self, maxsize: int = 10_000, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._maxsize = maxsize
        self._clock = clock
        self._data: dict[K, tuple[float, V]] = {}
        self._lock = threading.Lock()

    def get(self, key: K) -> tuple[bool, V | None]:
        """``(True, value)`` for a live entry, ``(False, None)`` when absent or expired."""
        with self._lock:
            hit = self._data.get(key)
            if hit is None:
                return False, None
            expires, value = hit
            if expires <= self._clock():
                del self._data[key]
                return False, None
            return True, value

    def entry(self, key: K) -> tuple[V, float] | None:
        """``(value, seconds it has left)`` for a live entry, None when absent or expired."""
        with self._lock:
            hit = self._data.get(key)
            if hit is None:
                return None
            left = hit[0] - self._clock()
            if left <= 0:
                del self._data[key]
                return None
            return hit[1], left

    def put(self, key: K, value: V, ttl: float) -> None:
        """Keep ``value`` under ``key`` for ``ttl`` seconds (nothing when ``ttl`` <= 0)."""
        if ttl <= 0:
            return
        with self._lock:
            now = self._clock()
            if key not in self._data and len(self._data) >= self._maxsize:
                self._evict(now)
            self._data[key] = (now + ttl, value)

    def discard(self, predicate: Callable[[K], bool]) -> None:
        """Drop every entry whose key satisfies ``predicate``."""
        with self._lock:
            for key in [k for k in self._data if predicate(k)]:
                del self._data[key]

    def clear(self) -> None:
        """Drop every entry."""
        with self._lock:
            self._data.clear()

    def __len__(self) -> int:
        return len(self._data)

    def _evict(self, now: float) -> None:
        # Expired entries first; when none, the oldest insertions (dicts keep order).
        for key in [k for k, (exp, _) in self._data.items() if exp <= now]:
            del self._data[key]
        while len(self._data) >= self._maxsize:
            del self._data[next(iter(self._data))]


class RecentRefusals(Generic[K]):
    """What was refused in the last ``ttl`` seconds, at most ``maxsize`` keys: a negative cache.

    Every entry lives the same ``ttl``, so insertion order is expiry order: the oldest entry
    is the first to expire and the first to go when the cache is full. Adding and looking up
    are O(1) whatever the number of keys a hostile client cycles through.
    """

    def __init__(
        self, ttl: float, maxsize: int = 4096, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._ttl = ttl
        self._maxsize = maxsize
        self._clock = clock
        self._data: OrderedDict[K, tuple[float, str]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: K) -> str | None:
        """The reason ``key`` was refused, if that was less than ``ttl`` seconds ago."""
        with self._lock:
            hit = self._data.get(key)
            if hit is None:
                return None
            if hit[0] <= self._clock():
                del self._data[key]
                return None
            return hit[1]

    def add(self, key: K, reason: str) -> None:
        """Remember that ``key`` was refused for ``reason`` (nothing when ``ttl`` <= 0)."""
        if self._ttl <= 0 or self._maxsize <= 0:
            return
        with self._lock:
            now = self._clock()
            self._data.pop(key, None)
            self._data[key] = (now + self._ttl, reason)
            while self._data:
                oldest = next(iter(self._data.values()))
                if oldest[0] > now and len(self._data) <= self._maxsize:
                    break
                self._data.popitem(last=False)

    def discard(self, predicate: Callable[[K], bool]) -> None:
        """Forget every refusal whose key satisfies ``predicate``."""
        with self._lock:
            for key in [k for k in self._data if predicate(k)]:
                del self._data[key]

    def __len__(self) -> int:
        return len(self._data)
