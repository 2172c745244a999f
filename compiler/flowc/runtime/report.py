"""The launcher's report: channel counters, actor restarts and CPU time, end-to-end latency."""

from __future__ import annotations

import json
import os
import statistics
from array import array
from collections.abc import Sequence
from fractions import Fraction
from typing import Any


def percentile(samples: Sequence[float], q: float) -> float:
    """Return the ``q`` quantile of ``samples``, interpolating linearly between the two nearest ranks.

    This is :func:`statistics.quantiles` with ``method="inclusive"`` (numpy's default, Excel's PERCENTILE.INC)
    for one ``q``: the minimum at 0, the maximum at 1, and the value itself when there is only one. ``q`` is
    taken to the nearest 1/10 000, which is finer than any percentile a report prints (p99.9).

    Args:
        samples: The values, in any order.
        q: The quantile, from 0 to 1 (0.99 for p99).

    Returns:
        The quantile, as a float.

    Raises:
        statistics.StatisticsError: ``samples`` is empty (it is a ``ValueError``).
        ValueError: ``q`` is outside 0..1.

    Example:
        >>> percentile([4, 1, 3, 2], 0.5)
        2.5
        >>> percentile(range(1, 1001), 0.999)
        999.001
        >>> percentile([7], 0.99), percentile([3, 9], 0.0), percentile([3, 9], 1.0)
        (7.0, 3.0, 9.0)
    """
    if not 0.0 <= q <= 1.0:
        raise ValueError(f"quantile {q!r} is outside 0..1")
    if len(samples) == 0:
        raise statistics.StatisticsError("percentile of no samples")
    share = Fraction(q).limit_denominator(10_000)
    if len(samples) == 1 or share == 0:
        return float(min(samples))
    if share == 1:
        return float(max(samples))
    # quantiles() returns the n - 1 cut points between n equal parts; the k-th of them is the k/n quantile.
    return float(statistics.quantiles(samples, n=share.denominator, method="inclusive")[share.numerator - 1])


def impossible_counters(channel: str, stats: dict[str, Any]) -> list[str]:
    """What no correct run of a ring can count: a failure of the node, since the ring's memory was corrupted.

    Every consumer sees each message once, so what it received plus what was dropped for it is at most what the
    producers sent; a producer waits at most once per message it sent. A producer killed between publishing a
    message and counting it leaves one message uncounted, so each producer allows one message of slack.

    Args:
        channel: The channel's name, for the messages.
        stats: The ring's :meth:`~flowc.runtime.ring.Ring.stats`.

    Returns:
        One line per impossible counter; empty when they all add up.

    Example:
        >>> impossible_counters("ticks", {"sent_per_producer": [5], "received_per_consumer": [9],
        ...                               "dropped_per_consumer": [0]})
        ["channel 'ticks': consumer 0 received 9 and dropped 0 of 5 messages sent"]
    """
    sent_per_producer = list(stats.get("sent_per_producer", [stats.get("sent", 0)]))
    sent, slack = sum(sent_per_producer), len(sent_per_producer)
    received = stats.get("received_per_consumer", [stats.get("received", 0)])
    dropped = stats.get("dropped_per_consumer", [0] * len(received))
    problems = [f"channel '{channel}': consumer {j} received {r} and dropped {d} of {sent} messages sent"
                for j, (r, d) in enumerate(zip(received, dropped, strict=False)) if r + d > sent + slack]
    waits = stats.get("backpressure_waits_per_producer", [])
    problems += [f"channel '{channel}': producer {i} waited {w} times for {s} messages sent"
                 for i, (w, s) in enumerate(zip(waits, sent_per_producer, strict=False)) if w > s]
    if stats.get("broken"):
        problems.append(f"channel '{channel}': the ring is broken (corrupt, or a producer died mid-publish)")
    return problems


def build_report(launcher: Any, report_dir: str, failure: str | None) -> dict[str, Any]:
    """Assemble the report of a finished launch.

    Args:
        launcher: The :class:`~flowc.runtime.launcher.Launcher` after its stop.
        report_dir: Where latency sinks wrote their samples.
        failure: Why the node stopped early, if it did.

    Returns:
        ``{"node", "channels": {name: {sent, received, dropped, backpressure_waits}}, "actors": {name: {restarts,
        cpu_s, exit_code}}, "latency_us": {p50, p99, p999, count}, "latency_by_sink_us": {sink: {p50, p99, p999,
        count, path}}, "sinks", "routes", "cpu_map", "notes", "reloads", "failure"}``; ``reloads`` lists what each
        reload did (:meth:`flowc.runtime.reload.Outcome.as_dict`); a sink's ``path`` says whether its
        messages crossed a route (``route <name>``) or only shared memory. Impossible counters (see
        :func:`impossible_counters`) or a segment that can no longer be read make ``failure`` say so when the node
        did not already fail otherwise.
    """
    from flowc.runtime.ring import RingError

    channels = {}
    problems: list[str] = []
    for name, ring in sorted(launcher.rings.items()):
        try:
            stats = ring.stats()
        except RingError as exc:
            problems.append(f"channel '{name}': {exc}")
            stats = {}
        problems += impossible_counters(name, stats)
        received = stats.get("received", 0)
        channels[name] = {
            "sent": int(stats.get("sent", 0)),
            "received": int(sum(received) if isinstance(received, list | tuple) else received),
            "dropped": int(stats.get("dropped", 0)),
            "backpressure_waits": int(stats.get("backpressure_waits", 0)),
        }
    actors = {c.key: {"restarts": c.restarts, "cpu_s": round(c.cpu_s, 3), "exit_code": c.exit_code}
              for c in sorted(launcher.children, key=lambda c: c.key)}
    samples: list[int] = []
    sinks = {}
    bridges = {}
    by_sink: dict[str, dict[str, Any]] = {}
    for entry in sorted(os.listdir(report_dir)):
        path = os.path.join(report_dir, entry)
        if entry.endswith(".latency"):
            values = array("q")
            with open(path, "rb") as handle:
                values.frombytes(handle.read())
            samples.extend(values)
            by_sink[entry[:-8]] = {**_percentiles(list(values)), "path": _path_of(launcher, entry[:-8])}
        elif entry.endswith(".bridge"):
            with open(path, encoding="utf-8") as handle:
                bridges[entry[:-7]] = json.load(handle)
        elif entry.endswith(".json"):
            with open(path, encoding="utf-8") as handle:
                sinks[entry[:-5]] = json.load(handle)
    return {"node": launcher.node, "channels": channels, "actors": actors, "latency_us": _percentiles(samples),
            "latency_by_sink_us": by_sink, "sinks": sinks, "routes": bridges,
            "cpu_map": {str(k): v for k, v in launcher.cpu_mapping.items()}, "notes": launcher.notes,
            "reloads": list(getattr(launcher, "reloads", [])),
            "failure": failure or ("; ".join(problems) if problems else None)}


def render_table(report: dict[str, Any]) -> Any:
    """A rich renderable of the report for a terminal."""
    from rich.console import Group
    from rich.table import Table

    channels = Table(title=f"channels on {report['node']}")
    for column in ("channel", "sent", "received", "dropped", "backpressure waits"):
        channels.add_column(column, justify="left" if column == "channel" else "right")
    for name, c in report["channels"].items():
        channels.add_row(name, str(c["sent"]), str(c["received"]), str(c["dropped"]), str(c["backpressure_waits"]))
    actors = Table(title="actors")
    for column in ("actor", "restarts", "cpu s", "exit"):
        actors.add_column(column, justify="left" if column == "actor" else "right")
    for name, a in report["actors"].items():
        actors.add_row(name, str(a["restarts"]), f"{a['cpu_s']:.2f}", str(a["exit_code"]))
    latency = Table(title="end-to-end latency (µs), per sink: over a route or through shared memory only")
    for column in ("sink", "path", "count", "p50", "p99", "p99.9"):
        latency.add_column(column, justify="left" if column in ("sink", "path") else "right")
    for sink, lat in report.get("latency_by_sink_us", {}).items():
        latency.add_row(sink, lat["path"], str(lat["count"]), f"{lat['p50']:.1f}", f"{lat['p99']:.1f}",
                        f"{lat['p999']:.1f}")
    lat = report["latency_us"]
    latency.add_row("all", "", str(lat["count"]), f"{lat['p50']:.1f}", f"{lat['p99']:.1f}", f"{lat['p999']:.1f}")
    routes = Table(title="routes (round trip: a sender's probe to the receiver and back, µs)")
    for column in ("route leg", "messages", "frames", "rejected", "round trip p50", "p99", "p99.9"):
        routes.add_column(column, justify="left" if column == "route leg" else "right")
    for leg, r in report.get("routes", {}).items():
        trip = r.get("round_trip_us") or {}
        moved = r.get("sent", 0) + r.get("received", 0)
        frames = r.get("frames_sent", 0) + r.get("frames_received", 0)
        timed = bool(trip.get("count"))
        routes.add_row(leg, str(moved), str(frames), str(r.get("rejected", 0)),
                       *(f"{trip[k]:.1f}" if timed else "-" for k in ("p50", "p99", "p999")))
    return Group(channels, actors, latency, routes) if report.get("routes") else Group(channels, actors, latency)


def _percentiles(samples: list[int]) -> dict[str, float | int]:
    """p50/p99/p99.9 in µs of nanosecond samples, and their count (all zero without samples)."""
    out: dict[str, float | int] = {key: percentile(samples, q) / 1000.0 if samples else 0.0
                                   for key, q in (("p50", 0.5), ("p99", 0.99), ("p999", 0.999))}
    out["count"] = len(samples)
    return out


def _path_of(launcher: Any, sink: str) -> str:
    """What a sink's latency measures: ``route <name>`` when an input arrives over a route, else ``shared memory``.

    A message from another node crosses its route and this node's ring; from this node, only rings.
    """
    info = launcher.plan.nodes[launcher.node]
    actor = info.actors.get(sink)
    routes = sorted({r for ch in (actor.inputs if actor else ()) if ch in info.channels
                     for r in info.channels[ch].routes_in})
    return "route " + ", ".join(routes) if routes else "shared memory"
