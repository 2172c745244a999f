"""An API client whose GET answers are kept in the price store for a while, so they serve the next run too.

The live price source asks for the market (availability, instance types, history) on every ``flowc pricing``
and every ``flowc build --prices live``; within :data:`~flowc.providers.mithril.domain.sources.LIVE_TTL_S` the
answer of an earlier run is used instead. A history query names its window by the current time; the window's
edges are left out of the cache key, so a query of the same length within the lifetime reuses the answer.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping
from typing import Any

from flowc.providers.mithril.domain.store import PriceStore

#: Query parameters that only move with the clock: not part of an answer's identity.
_MOVING = frozenset({"start_time", "end_time"})


class CachedAnswers:
    """Wraps an API client's ``get_json`` with the store's kept answers.

    Args:
        client: The API client (anything with ``get_json(path, params)``).
        store: Where answers are kept.
        ttl_s: How long an answer serves.
        clock: Wall clock, seconds since the epoch (answers outlive the process, so not a monotonic one).
    """

    def __init__(self, client: Any, store: PriceStore, ttl_s: float, clock: Callable[[], float] = time.time) -> None:
        """Keep the parts."""
        self.client, self.store, self.ttl_s, self._clock = client, store, ttl_s, clock
        #: When the answer last served was fetched from the API (seconds since the epoch).
        self.fetched_at = clock()

    def get_json(self, path: str, params: Mapping[str, Any] | None = None) -> Any:
        """The kept answer of this GET when fresh, else the API's (then kept)."""
        query = {k: v for k, v in (params or {}).items() if v is not None and k not in _MOVING}
        key = json.dumps([path, query], sort_keys=True, default=str)
        now = self._clock()
        kept = self.store.cached_answer(key, self.ttl_s, now)
        if kept is not None:
            self.fetched_at, body = kept
            return body
        body = self.client.get_json(path, params)
        self.store.keep_answer(key, body, now)
        self.fetched_at = now
        return body

    def __getattr__(self, name: str) -> Any:
        """Everything else is the client's."""
        return getattr(self.client, name)
