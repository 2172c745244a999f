"""What a running node is doing, read from its shared memory and report folder, never by asking a process.

The rings' counters live in their segments (:meth:`~flowc.runtime.ring.Ring.stats`); route bridges and latency
sinks publish theirs to the node's report folder (:mod:`flowc.runtime.histogram`); processes are read from
``/proc``. The launcher's metrics endpoint, ``flowc metrics`` (for nodes run by systemd) and ``flowc top`` all
read a node through :class:`NodeReader`, so reading costs the data path nothing but a few cache lines.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from typing import Any

from flowc.model.node_view import NodeView
from flowc.model.plan import sender_key
from flowc.runtime.actors import HISTOGRAM_SUFFIX
from flowc.runtime.bridge_main import bridge_stats_file
from flowc.runtime.histogram import read_published

_TICKS = os.sysconf("SC_CLK_TCK")
_PAGE = os.sysconf("SC_PAGE_SIZE")


@dataclass(frozen=True)
class ChannelState:
    """One channel's ring now.

    Attributes:
        name: The channel.
        capacity_bytes: Size of the ring's data area.
        occupancy_bytes: Bytes the slowest consumer has yet to read.
        sent: Messages published, over all producers.
        backpressure_waits: Sends that waited for space, over all producers.
        received: Messages read, by consumer (an actor, or a route sender ``route:<r>:out:<target>``).
        dropped: Messages overwritten before the consumer read them (drop_oldest), by consumer.
        closed: The writers are done.
        broken: An endpoint found the ring corrupt.
    """

    name: str
    capacity_bytes: int
    occupancy_bytes: int
    sent: int
    backpressure_waits: int
    received: dict[str, int]
    dropped: dict[str, int]
    closed: bool
    broken: bool


@dataclass(frozen=True)
class ProcessState:
    """One supervised process (an actor or a route bridge).

    Attributes:
        key: The actor's name, or the bridge's ``route:<route>:<in|out>:<index>``.
        state: ``starting``, ``running``, ``restarting``, ``finished`` (exited 0) or ``failed`` (given up).
        pid: The live process id, if any.
        restarts: Times the launcher started it again.
        cpu_seconds: CPU time of every run so far, the current one included.
        resident_bytes: Resident memory of the current run (``None`` when not running).
        last_exit_code: Exit code of its last run that ended (``None`` before any did).
    """

    key: str
    state: str
    pid: int | None
    restarts: int
    cpu_seconds: float
    resident_bytes: int | None
    last_exit_code: int | None


@dataclass(frozen=True)
class RouteState:
    """One leg of a route on this node: a sender (one per target) or the receiver.

    Attributes:
        route: The route.
        direction: ``out`` or ``in``.
        peer: The node at the other end.
        stats: What the bridge last published (:meth:`~flowc.runtime.bridge.BridgeStats.as_dict`), or ``None``
            before it published anything.
    """

    route: str
    direction: str
    peer: str
    stats: dict[str, Any] | None

    @property
    def connected(self) -> bool:
        """Whether the bridge last said the route was up."""
        return bool(self.stats and self.stats.get("connected"))


@dataclass(frozen=True)
class NodeState:
    """A node at one moment.

    Attributes:
        node: The node.
        taken_s: When it was read (``time.monotonic``), for rates between two readings.
        channels: Each channel whose ring exists, by name.
        missing_channels: Channels of the plan whose ring does not exist (yet, or any more).
        processes: The supervised processes (empty when no launcher supervises the node).
        routes: The node's route legs.
        latency: Each latency sink's live histogram (:meth:`~flowc.runtime.histogram.Histogram.as_dict`).
    """

    node: str
    taken_s: float
    channels: dict[str, ChannelState]
    missing_channels: list[str]
    processes: list[ProcessState] = field(default_factory=list)
    routes: list[RouteState] = field(default_factory=list)
    latency: dict[str, dict[str, Any]] = field(default_factory=dict)


class NodeReader:
    """Reads one node's state again and again, keeping its rings attached between readings."""

    def __init__(self, layout: NodeView, report_dir: str | None = None, rings: dict[str, Any] | None = None) -> None:
        """Prepare to read ``layout``'s node.

        Args:
            layout: The node's layout.
            report_dir: Where its bridges and sinks publish (default: the node's report folder).
            rings: Rings already attached (the launcher's), by channel; the others are attached when they exist.
        """
        self.layout = layout
        self.report_dir = report_dir or layout.report_dir
        self.rings: dict[str, Any] = dict(rings or {})
        self.owned: set[str] = set()
        self.files: dict[str, tuple[int, int]] = {}  # (device, inode) of each ring this reader attached
        info = layout.plan.nodes[layout.node]
        self.consumers: dict[str, list[str]] = {}
        for channel, spec in info.channels.items():
            names = list(spec.consumers)
            names += [sender_key(b.route, b.peer_node) for b in sorted(layout.bridges, key=lambda b: b.index)
                      if b.channel == channel and b.direction == "out"]
            self.consumers[channel] = names

    def read(self, processes: list[ProcessState] | None = None) -> NodeState:
        """Read the node now.

        Args:
            processes: The supervised processes, when a launcher supervises the node.

        Returns:
            The node's state.
        """
        channels, missing = {}, []
        for channel in sorted(self.layout.rings):
            stats = self._stats(channel)
            if stats is None:
                missing.append(channel)
                continue
            channels[channel] = self._channel(channel, stats)
        routes = [RouteState(b.route, b.direction, b.peer_node, self._published(
            bridge_stats_file(b.route, b.direction, b.index))) for b in self.layout.bridges]
        latency = {}
        info = self.layout.plan.nodes[self.layout.node]
        for actor in sorted(info.actors):
            histogram = self._published(actor + HISTOGRAM_SUFFIX)
            if histogram is not None:
                latency[actor] = histogram
        return NodeState(self.layout.node, time.monotonic(), channels, missing, list(processes or []), routes,
                         latency)

    def close(self) -> None:
        """Detach the rings this reader attached itself."""
        for channel in sorted(self.owned):
            ring = self.rings.pop(channel, None)
            if ring is not None:
                ring.close()
        self.owned.clear()

    def _stats(self, channel: str) -> dict[str, Any] | None:
        from flowc.runtime.ring import Ring, RingError

        ring = self.rings.get(channel)
        if ring is not None and channel in self.owned and self._replaced(channel, ring.path):
            # the node was restarted (or its ring replaced) since: read the ring that is there now
            self.rings.pop(channel).close()
            self.owned.discard(channel)
            ring = None
        if ring is None:
            try:
                ring = Ring.attach(self.layout.rings[channel].name)
                st = os.stat(ring.path)
            except (RingError, OSError):
                return None
            self.rings[channel] = ring
            self.owned.add(channel)
            self.files[channel] = (st.st_dev, st.st_ino)
        try:
            return ring.stats()
        except (RingError, OSError, ValueError):
            return None

    def _replaced(self, channel: str, path: str) -> bool:
        """Whether the file of a ring this reader attached was removed or replaced since."""
        try:
            st = os.stat(path)
        except OSError:
            return True
        return (st.st_dev, st.st_ino) != self.files.get(channel)

    def _channel(self, channel: str, stats: dict[str, Any]) -> ChannelState:
        names = self.consumers[channel]
        cursors = stats.get("cursor_per_consumer") or [stats["published_bytes"]]
        if stats.get("delivery") == "shared":
            cursors = cursors[:1]  # the group's release position; the other lines keep no cursor
        label = [names[j] if j < len(names) else f"consumer {j}" for j in range(len(stats["received_per_consumer"]))]
        return ChannelState(
            name=channel, capacity_bytes=int(stats["buffer_size"]),
            occupancy_bytes=max(0, max(stats["published_bytes"] - c for c in cursors)),
            sent=int(stats["sent"]), backpressure_waits=int(stats["backpressure_waits"]),
            received=dict(zip(label, map(int, stats["received_per_consumer"]), strict=True)),
            dropped=dict(zip(label, map(int, stats["dropped_per_consumer"]), strict=True)),
            closed=bool(stats["closed"]), broken=bool(stats["broken"]))

    def _published(self, name: str) -> dict[str, Any] | None:
        return read_published(os.path.join(self.report_dir, name))


def process_usage(pid: int) -> tuple[float, int] | None:
    """CPU seconds and resident bytes of a live process, from ``/proc``; ``None`` when it is gone.

    Example:
        >>> cpu, rss = process_usage(os.getpid())
        >>> cpu > 0 and rss > 0
        True
    """
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as handle:
            stat = handle.read()
        with open(f"/proc/{pid}/statm", encoding="ascii") as handle:
            statm = handle.read().split()
    except OSError:
        return None
    fields = stat[stat.rindex(")") + 2:].split()  # the command name may hold spaces and parentheses
    return (int(fields[11]) + int(fields[12])) / _TICKS, int(statm[1]) * _PAGE
