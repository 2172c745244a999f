"""A small thread-safe LRU cache whose entries expire after a fixed time, for API responses within one process."""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

V = TypeVar("V")

_MISSING = object()


class TtlCache(Generic[V]):
    """Least-recently-used cache with per-entry expiry.

    An entry lives ``ttl_s`` seconds from when it was set; once ``max_entries`` are held, setting a new key
    evicts the least recently used one. Expired entries are dropped lazily on access.

    Args:
        ttl_s: Seconds an entry stays valid.
        max_entries: Most entries held at once (at least 1).
        clock: Monotonic clock, injectable for tests.

    Example:
        >>> now = [0.0]
        >>> cache = TtlCache(ttl_s=10, max_entries=2, clock=lambda: now[0])
        >>> cache.get_or_load("a", lambda: 1), cache.get_or_load("a", lambda: 2)
        (1, 1)
        >>> now[0] = 11.0
        >>> cache.get("a") is None, len(cache)
        (True, 0)
    """

    def __init__(self, ttl_s: float = 900, max_entries: int = 256, clock: Callable[[], float] = time.monotonic) -> None:
        """Start empty."""
        self.ttl_s = ttl_s
        self.max_entries = max(1, max_entries)
        self._clock = clock
        self._entries: OrderedDict[Hashable, tuple[float, V]] = OrderedDict()
        self._lock = threading.RLock()

    def get(self, key: Hashable, default: V | None = None) -> V | None:
        """Return the live value for ``key`` and mark it recently used, or ``default``.

        Args:
            key: The cache key.
            default: Returned on a miss or an expired entry.

        Returns:
            The cached value, or ``default``.
        """
        value = self._lookup(key)
        return default if value is _MISSING else value  # type: ignore[return-value]

    def set(self, key: Hashable, value: V) -> None:
        """Store ``value`` under ``key`` for ``ttl_s`` seconds, evicting the least recently used entry if full.

        Args:
            key: The cache key.
            value: The value to keep.
        """
        with self._lock:
            self._entries[key] = (self._clock() + self.ttl_s, value)
            self._entries.move_to_end(key)
            while len(self._entries) > self.max_entries:
                self._entries.popitem(last=False)

    def get_or_load(self, key: Hashable, loader: Callable[[], V]) -> V:
        """Return the live value for ``key``, or call ``loader``, store its result and return it.

        Exceptions from ``loader`` propagate and nothing is stored, so failures are never cached.

        Args:
            key: The cache key.
            loader: Produces the value on a miss.

        Returns:
            The cached or freshly loaded value.
        """
        value = self._lookup(key)
        if value is not _MISSING:
            return value  # type: ignore[return-value]
        loaded = loader()
        self.set(key, loaded)
        return loaded

    def clear(self) -> None:
        """Drop every entry."""
        with self._lock:
            self._entries.clear()

    def __len__(self) -> int:
        """Return the number of live (unexpired) entries."""
        with self._lock:
            now = self._clock()
            for key in [k for k, (expires, _) in self._entries.items() if expires <= now]:
                del self._entries[key]
            return len(self._entries)

    def _lookup(self, key: Hashable) -> object:
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                return _MISSING
            expires, value = entry
            if expires <= self._clock():
                del self._entries[key]
                return _MISSING
            self._entries.move_to_end(key)
            return value
