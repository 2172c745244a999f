"""Latency histograms that processes of a node publish while they run, for the metrics endpoint and ``flowc top``.

A process keeps a :class:`Histogram` with fixed bucket bounds (the same everywhere, so they add up and a scraper
needs no negotiation) and, now and then, writes its live numbers to a small JSON file in the node's report folder
with :func:`publish`: written beside its place and renamed in, so a reader sees the old or the new file, never
half of one. The exporter reads these files on each scrape (:func:`read_published`); nothing asks the process.
"""

from __future__ import annotations

import json
import os
from bisect import bisect_left
from typing import Any

#: Upper bounds of the buckets in seconds: 1 µs to 10 s, 1-2.5-5 per decade (``+Inf`` is implied).
BOUNDS_S: tuple[float, ...] = tuple(round(m * 10.0 ** e, 9) for e in range(-6, 1) for m in (1.0, 2.5, 5.0)) + (10.0,)
_BOUNDS_NS = tuple(int(round(b * 1e9)) for b in BOUNDS_S)


class Histogram:
    """Counts of observations per bucket of :data:`BOUNDS_S`, with their sum.

    Example:
        >>> h = Histogram()
        >>> h.observe_ns(1_500); h.observe_ns(700); h.observe_ns(20_000_000_000)
        >>> h.count, h.as_dict()["buckets"][:3], h.as_dict()["buckets"][-1]
        (3, [1, 2, 2], 3)
    """

    __slots__ = ("counts", "count", "sum_ns")

    def __init__(self) -> None:
        """An empty histogram."""
        self.counts = [0] * (len(_BOUNDS_NS) + 1)  # the last bucket is everything above 10 s
        self.count = 0
        self.sum_ns = 0

    def observe_ns(self, nanoseconds: int) -> None:
        """Count one observation of ``nanoseconds``."""
        self.counts[bisect_left(_BOUNDS_NS, nanoseconds)] += 1
        self.count += 1
        self.sum_ns += nanoseconds

    def as_dict(self) -> dict[str, Any]:
        """``{"bounds_s", "buckets" (cumulative, one per bound and one for +Inf), "count", "sum_s"}``."""
        cumulative, running = [], 0
        for n in self.counts:
            running += n
            cumulative.append(running)
        return {"bounds_s": list(BOUNDS_S), "buckets": cumulative, "count": self.count, "sum_s": self.sum_ns / 1e9}


def publish(path: str, data: dict[str, Any]) -> None:
    """Write ``data`` as JSON to ``path`` atomically (a reader sees the old or the new file); errors are ignored.

    Args:
        path: The file, in the node's report folder.
        data: What to write.
    """
    temporary = f"{path}.{os.getpid()}.tmp"
    try:
        with open(temporary, "w", encoding="utf-8") as handle:
            json.dump(data, handle, sort_keys=True)
        os.replace(temporary, path)
    except OSError:
        try:
            os.unlink(temporary)
        except OSError:
            pass


def read_published(path: str) -> dict[str, Any] | None:
    """What :func:`publish` last wrote to ``path``, or ``None`` when there is no such file or it is not JSON."""
    try:
        with open(path, encoding="utf-8") as handle:
            data = json.load(handle)
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None
