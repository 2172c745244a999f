"""The launcher's report: channel counters, actor restarts and CPU time, end-to-end latency."""

from __future__ import annotations

import json
import os
from array import array
from typing import Any


def _percentile(ordered: list[int], q: float) -> float:
    if not ordered:
        return 0.0
    index = min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))
    return ordered[index] / 1000.0


def build_report(launcher: Any, report_dir: str, failure: str | None) -> dict[str, Any]:
    """Assemble the report of a finished launch.

    Args:
        launcher: The :class:`~flowc.runtime.launcher.Launcher` after its stop.
        report_dir: Where latency sinks wrote their samples.
        failure: Why the node stopped early, if it did.

    Returns:
        ``{"node", "channels": {name: {sent, received, dropped, backpressure_waits}}, "actors": {name:
        {restarts, cpu_s, exit_code}}, "latency_us": {p50, p99, p999, count}, "sinks", "cpu_map", "notes",
        "failure"}``.
    """
    channels = {}
    for name, ring in sorted(launcher.rings.items()):
        stats = ring.stats()
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
    for entry in sorted(os.listdir(report_dir)):
        path = os.path.join(report_dir, entry)
        if entry.endswith(".latency"):
            values = array("q")
            with open(path, "rb") as handle:
                values.frombytes(handle.read())
            samples.extend(values)
        elif entry.endswith(".bridge"):
            with open(path, encoding="utf-8") as handle:
                bridges[entry[:-7]] = json.load(handle)
        elif entry.endswith(".json"):
            with open(path, encoding="utf-8") as handle:
                sinks[entry[:-5]] = json.load(handle)
    samples.sort()
    latency = {"p50": _percentile(samples, 0.5), "p99": _percentile(samples, 0.99),
               "p999": _percentile(samples, 0.999), "count": len(samples)}
    return {"node": launcher.node, "channels": channels, "actors": actors, "latency_us": latency, "sinks": sinks,
            "routes": bridges,
            "cpu_map": {str(k): v for k, v in launcher.cpu_mapping.items()}, "notes": launcher.notes,
            "failure": failure}


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
    lat = report["latency_us"]
    latency = Table(title="end-to-end latency (µs)")
    for column in ("count", "p50", "p99", "p99.9"):
        latency.add_column(column, justify="right")
    latency.add_row(str(lat["count"]), f"{lat['p50']:.1f}", f"{lat['p99']:.1f}", f"{lat['p999']:.1f}")
    return Group(channels, actors, latency)
