"""What ``flowc top`` shows: two readings of a node (:class:`~flowc.runtime.observe.NodeState`) made into rows.

:func:`snapshot` turns the latest reading and the one before it into one plain, JSON-ready dict (totals, rates
between the two readings, latency quantiles estimated from the published histograms); :func:`render` draws
that dict as rich tables. Route and sink counters come from files other processes wrote, so every number taken
from them is checked (a count is a non-negative int, a histogram has increasing bounds and non-decreasing
cumulative buckets) and shown as ``-`` when it is not.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections.abc import Mapping
from typing import Any

from flowc.runtime.observe import ChannelState, NodeState, RouteState


def rate(now: int | None, before: int | None, seconds: float) -> float | None:
    """Per-second rate of a counter between two readings ``seconds`` apart.

    Args:
        now: The counter now (``None``: unknown).
        before: The counter at the previous reading (``None``: there was none, or it was unknown).
        seconds: Time between the readings.

    Returns:
        The rate, or ``None`` when it cannot be told: a reading is missing, no time passed, or the counter went
        backwards (its ring or bridge started again between the readings).

    Example:
        >>> rate(3000, 1000, 2.0), rate(5, None, 1.0), rate(1, 9, 1.0)
        (1000.0, None, None)
    """
    if now is None or before is None or seconds <= 0 or now < before:
        return None
    return (now - before) / seconds


def quantile(histogram: Mapping[str, Any] | None, q: float) -> float | None:
    """Estimate the ``q`` quantile, in seconds, of a published histogram from its cumulative buckets.

    The value is interpolated linearly inside the bucket that holds the rank, the first bucket starting at 0;
    a rank in the ``+Inf`` bucket gives the highest finite bound (as Prometheus' ``histogram_quantile`` does).

    Args:
        histogram: :meth:`~flowc.runtime.histogram.Histogram.as_dict`: ``bounds_s`` (increasing upper bounds)
            and ``buckets`` (cumulative counts, one per bound and one for ``+Inf``).
        q: The quantile, from 0 to 1 (0.99 for p99).

    Returns:
        The estimate, or ``None`` when the histogram is missing, empty or malformed.

    Raises:
        ValueError: ``q`` is outside 0..1.

    Example:
        >>> h = {"bounds_s": [0.001, 0.002, 0.004], "buckets": [0, 10, 20, 20]}
        >>> quantile(h, 0.5), quantile(h, 0.75), quantile(h, 1.0)
        (0.002, 0.003, 0.004)
        >>> quantile({"bounds_s": [0.001], "buckets": [0, 5]}, 0.5), quantile(None, 0.5)
        (0.001, None)
    """
    if not 0.0 <= q <= 1.0:
        raise ValueError(f"q must be between 0 and 1, not {q}")
    checked = _histogram(histogram)
    if checked is None:
        return None
    bounds, buckets = checked
    total = buckets[-1]
    if total == 0:
        return None
    rank = q * total
    # the first bucket whose count reaches the rank; for rank 0, the first that holds anything
    index = bisect_left(buckets, rank) if rank > 0 else bisect_right(buckets, 0)
    if index >= len(bounds):
        return bounds[-1]
    lower = bounds[index - 1] if index else 0.0
    below = buckets[index - 1] if index else 0
    inside = buckets[index] - below
    if inside == 0:
        return lower
    return lower + (bounds[index] - lower) * (rank - below) / inside


def snapshot(now: NodeState, before: NodeState | None) -> dict[str, Any]:
    """The view of a node: its latest reading, with rates since the one before.

    Args:
        now: The latest reading.
        before: The previous reading of the same node (``None`` on the first: every rate is ``None``).

    Returns:
        ``{"node", "interval_s", "missing_channels", "channels", "routes", "latency"}``; ``interval_s`` is the
        time between the readings (``None`` on the first). Counters are totals since their ring or bridge
        started, ``*_per_s`` their rates; a ``None`` is a number that cannot be told yet.
    """
    seconds = now.taken_s - before.taken_s if before is not None else 0.0
    channels = {name: _channel(channel, before.channels.get(name) if before else None, seconds)
                for name, channel in sorted(now.channels.items())}
    earlier_routes = {(r.route, r.direction, r.peer): r for r in before.routes} if before else {}
    routes = [_route(leg, earlier_routes.get((leg.route, leg.direction, leg.peer)), seconds) for leg in now.routes]
    latency = {sink: _latency(histogram, before.latency.get(sink) if before else None, seconds)
               for sink, histogram in sorted(now.latency.items())}
    return {"node": now.node, "interval_s": round(seconds, 6) if before is not None else None,
            "missing_channels": sorted(now.missing_channels), "channels": channels, "routes": routes,
            "latency": latency}


def render(view: Mapping[str, Any], clock: str) -> Any:
    """Draw a :func:`snapshot` as rich renderables: a header line, then channel, route and latency tables.

    Args:
        view: What :func:`snapshot` returned.
        clock: The wall-clock time of the reading, for the header (``"07:12:03"``).

    Returns:
        A :class:`rich.console.Group`.
    """
    from rich import box
    from rich.console import Group
    from rich.table import Table
    from rich.text import Text

    def table(title: str, columns: tuple[str, ...], left: int) -> Table:
        """A compact table whose first ``left`` columns are text, the rest numbers.

        On a narrow terminal the names wrap; the numbers never do (rich narrows only columns that may wrap).
        """
        drawn = Table(title=title, title_justify="left", title_style="bold", box=box.SIMPLE_HEAD, show_edge=False,
                      collapse_padding=True)
        for i, column in enumerate(columns):
            drawn.add_column(column, justify="left" if i < left else "right", no_wrap=i >= left)
        return drawn

    header = Text.assemble(("flowc top", "bold"), f"  node '{view['node']}'  {clock}")
    if view["interval_s"] is None:
        header.append("  (rates from the next reading)", style="dim")
    if view["missing_channels"]:
        header.append(f"  channels missing: {', '.join(view['missing_channels'])}", style="bold yellow")
    parts: list[Any] = [header]

    channels = table("channels: sent, and received per consumer (→)", (
        "channel", "msgs/s", "msgs", "dropped", "bp waits", "occupancy", "state"), 1)
    for name, c in view["channels"].items():
        channels.add_row(Text(name, style="bold"), _per_s(c["sent_per_s"]), _count(c["sent"]), "",
                         _count(c["backpressure_waits"]),
                         f"{_bytes(c['occupancy_bytes'])} {c['occupancy_percent']:.0f}%", Text(*_STATES[c["state"]]))
        for consumer, seen in c["consumers"].items():
            channels.add_row(Text(f"  → {_consumer(consumer)}"), _per_s(seen["received_per_s"]),
                             _count(seen["received"]), _count(seen["dropped"]), "", "", "")
    parts.append(channels)

    if view["routes"]:
        routes = table("routes", ("leg", "connected", "msgs/s", "acked", "resent", "reconn", "wire/s", "rtt p50"), 2)
        for r in view["routes"]:
            arrow = "→" if r["direction"] == "out" else "←"
            routes.add_row(Text(f"{r['route']} {arrow} {r['peer']}"),
                           "[green]yes[/]" if r["connected"] else "[bold red]no[/]", _per_s(r["messages_per_s"]),
                           _count(r["acked"]), _count(r["resent"]), _count(r["reconnects"]),
                           _bytes(r["wire_bytes_per_s"], "/s"), _seconds(r["round_trip_p50_s"]))
        parts.append(routes)

    if view["latency"]:
        latency = table("sink latency (whole run)", ("sink", "count", "msgs/s", "p50",
                                                                                "p99"), 1)
        for sink, s in view["latency"].items():
            latency.add_row(Text(sink), _count(s["count"]), _per_s(s["count_per_s"]), _seconds(s["p50_s"]),
                            _seconds(s["p99_s"]))
        parts.append(latency)
    return Group(*parts)


_STATES = {"ok": ("ok", "green"), "closed": ("closed", "dim"), "broken": ("BROKEN", "bold red")}


def _consumer(name: str) -> str:
    """A consumer's name for the table: a route's sender (``route:<route>:out:<target>``) as its route and target."""
    parts = name.split(":")
    if len(parts) == 4 and parts[0] == "route" and parts[2] == "out":
        return f"{parts[1]} (route to {parts[3]})"
    return name


def _channel(now: ChannelState, before: ChannelState | None, seconds: float) -> dict[str, Any]:
    def per_s(value: int, earlier: int | None) -> float | None:
        return _round(rate(value, earlier, seconds))

    consumers = {}
    for consumer, received in now.received.items():
        dropped = now.dropped.get(consumer, 0)
        consumers[consumer] = {
            "received": received, "dropped": dropped,
            "received_per_s": per_s(received, before.received.get(consumer) if before else None),
            "dropped_per_s": per_s(dropped, before.dropped.get(consumer) if before else None)}
    capacity = now.capacity_bytes
    return {"sent": now.sent, "sent_per_s": per_s(now.sent, before.sent if before else None),
            "backpressure_waits": now.backpressure_waits,
            "backpressure_waits_per_s": per_s(now.backpressure_waits, before.backpressure_waits if before else None),
            "occupancy_bytes": now.occupancy_bytes, "capacity_bytes": capacity,
            "occupancy_percent": round(100.0 * now.occupancy_bytes / capacity, 2) if capacity > 0 else 0.0,
            "state": "broken" if now.broken else "closed" if now.closed else "ok", "consumers": consumers}


def _route(now: RouteState, before: RouteState | None, seconds: float) -> dict[str, Any]:
    stats, earlier = now.stats or {}, (before.stats or {}) if before else {}
    moved = "sent" if now.direction == "out" else "received"

    def per_s(key: str) -> float | None:
        return _round(rate(_natural(stats.get(key)), _natural(earlier.get(key)), seconds))

    return {"route": now.route, "direction": now.direction, "peer": now.peer, "connected": now.connected,
            "messages": _natural(stats.get(moved)), "messages_per_s": per_s(moved),
            "acked": _natural(stats.get("acked")), "resent": _natural(stats.get("resent")),
            "reconnects": _natural(stats.get("reconnects")), "wire_bytes": _natural(stats.get("bytes_on_wire")),
            "wire_bytes_per_s": per_s("bytes_on_wire"),
            "round_trip_p50_s": _round(quantile(stats.get("round_trip_histogram"), 0.5), 9)}


def _latency(now: Mapping[str, Any], before: Mapping[str, Any] | None, seconds: float) -> dict[str, Any]:
    count = _natural(now.get("count"))
    earlier = _natural(before.get("count")) if before is not None else None
    return {"count": count, "count_per_s": _round(rate(count, earlier, seconds)),
            "p50_s": _round(quantile(now, 0.5), 9), "p99_s": _round(quantile(now, 0.99), 9)}


def _histogram(histogram: Mapping[str, Any] | None) -> tuple[list[float], list[int]] | None:
    """``(bounds, buckets)`` of a published histogram, or ``None`` unless they are well formed."""
    if not isinstance(histogram, Mapping):
        return None
    bounds, buckets = histogram.get("bounds_s"), histogram.get("buckets")
    if not isinstance(bounds, list) or not isinstance(buckets, list) or not bounds \
            or len(buckets) != len(bounds) + 1:
        return None
    if not all(isinstance(b, int | float) and not isinstance(b, bool) and 0 < b < float("inf") for b in bounds) \
            or any(a >= b for a, b in zip(bounds, bounds[1:], strict=False)):
        return None
    if not all(_natural(n) is not None for n in buckets) or any(a > b for a, b in zip(buckets, buckets[1:],
                                                                                       strict=False)):
        return None
    return [float(b) for b in bounds], buckets


def _natural(value: Any) -> int | None:
    """``value`` when it is a count (an int, not a bool, at least 0), else ``None``."""
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else None


def _round(value: float | None, digits: int = 3) -> float | None:
    return None if value is None else round(value, digits)


def _count(value: int | None) -> str:
    return "-" if value is None else f"{value:,}"


def _per_s(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:,.1f}" if value < 100 else f"{value:,.0f}"


def _bytes(value: float | None, suffix: str = "") -> str:
    """``1.5 KiB``-style sizes (``-`` for ``None``)."""
    if value is None:
        return "-"
    if value < 1024:
        return f"{value:.0f} B{suffix}"
    for unit in ("KiB", "MiB", "GiB"):
        value /= 1024
        if value < 1024 or unit == "GiB":
            break
    return f"{value:.1f} {unit}{suffix}" if value < 100 else f"{value:.0f} {unit}{suffix}"


def _seconds(value: float | None) -> str:
    """A duration in the unit that suits it: ``850 µs``, ``1.2 ms``, ``3.40 s`` (``-`` for ``None``)."""
    if value is None:
        return "-"
    if value < 1e-3:
        return f"{value * 1e6:.1f} µs"
    if value < 1.0:
        return f"{value * 1e3:.2f} ms"
    return f"{value:.2f} s"
