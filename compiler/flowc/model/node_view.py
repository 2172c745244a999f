"""Where everything of one node lives at run time: ring names, sizes, and each endpoint's index.

Derived only from the node's slice of the plan, so the launcher, ``flowc run-actor``, ``flowc channels``, the
bridges and the systemd emitter all agree without talking to each other. Every file a node keeps in shared
memory is named here (:data:`SHM_DIR`, :func:`shm_path`). Producer indices of a ring go to the node's writers in plan
order, then to each incoming route's receiver; consumer indices to its readers, then to one sender per
target of each outgoing route.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

from flowc.model.plan import NodeSlice, receiver_key, sender_key

#: Where a node's rings, registry, lock, measurements and route state live (every name starts with its prefix).
SHM_DIR = "/dev/shm"


@dataclass(frozen=True)
class RingLayout:
    """One channel's shared-memory ring on this node."""

    channel: str
    name: str
    buffer_size: int
    producers: int
    consumers: int
    policy: str
    spin_us: float | None
    huge_pages: bool
    delivery: str = "broadcast"


@dataclass(frozen=True)
class Bridge:
    """One TCP leg of a route as seen from this node: a sender (per target) or the receiver.

    Attributes:
        route: The route.
        channel: The channel it carries.
        direction: ``"out"`` (a sender, one per target) or ``"in"`` (the receiver).
        peer: Where a sender connects (the target's address); for a receiver, the source node.
        peer_node: The node at the other end, whose public key this end trusts.
        port: The route's TCP port.
        compression: The route's codec.
        auth: ``"curve"`` or ``"none"``.
        index: The ring endpoint index of this bridge.
        stage: The start stage of this bridge.
    """

    route: str
    channel: str
    direction: str
    peer: str
    peer_node: str
    port: int
    compression: str
    auth: str
    index: int
    stage: int

    @property
    def key(self) -> str:
        """The name the launcher supervises this bridge's process by: ``route:<route>:<in|out>:<index>``."""
        return f"route:{self.route}:{self.direction}:{self.index}"

    @property
    def leg(self) -> str:
        """The leg as a change list names it: ``<route> out to <node>`` or ``<route> in from <node>``."""
        return f"{self.route} {'out to' if self.direction == 'out' else 'in from'} {self.peer_node}"


@dataclass
class NodeView:
    """The run-time layout of one node of a plan."""

    plan: NodeSlice
    node: str
    prefix: str = ""
    rings: dict[str, RingLayout] = field(default_factory=dict)
    actor_io: dict[str, dict[str, dict[str, dict[str, object]]]] = field(default_factory=dict)
    bridges: list[Bridge] = field(default_factory=list)

    @classmethod
    def of(cls, plan: NodeSlice, node: str, generations: dict[str, int] | None = None) -> NodeView:
        """Compute the layout of ``node``.

        Args:
            plan: The node's slice of the plan.
            node: The node.
            generations: How many times a reload replaced each channel's ring (see :func:`ring_name`); none
                outside a reloaded launcher.

        Returns:
            The layout.

        Raises:
            KeyError: When the plan has no such node.
        """
        if node not in plan.nodes:
            raise KeyError(node)
        prefix = segment_prefix(plan.source, node)
        layout = cls(plan, node, prefix)
        info = plan.nodes[node]
        writers: dict[str, list[str]] = {}
        readers: dict[str, list[str]] = {}
        for channel, spec in info.channels.items():
            receivers = [r for r in spec.routes_in]
            senders = [(r, t) for r in spec.routes_out for t in plan.routes[r].targets if t != node]
            name = ring_name(prefix, channel, (generations or {}).get(channel, 0))
            layout.rings[channel] = RingLayout(channel, name, spec.buffer_size,
                                             max(1, len(spec.producers) + len(receivers)),
                                             max(1, len(spec.consumers) + len(senders)), spec.policy,
                                             spec.spin_us, spec.huge_pages, spec.delivery)
            writers[channel] = list(spec.producers)
            readers[channel] = list(spec.consumers)
            for i, route in enumerate(receivers):
                r = plan.routes[route]
                layout.bridges.append(Bridge(route, channel, "in", r.source_node, r.source_node, r.port,
                                             r.compression, r.auth, len(spec.producers) + i,
                                             info.start_stages[receiver_key(route)]))
            for i, (route, target) in enumerate(senders):
                r = plan.routes[route]
                peer = plan.peers.get(target) or (plan.nodes[target].hostname if target in plan.nodes else target)
                layout.bridges.append(Bridge(route, channel, "out", peer, target, r.port, r.compression, r.auth,
                                             len(spec.consumers) + i, info.start_stages[sender_key(route, target)]))
        for actor, info_actor in info.actors.items():
            io: dict[str, dict[str, dict[str, object]]] = {"inputs": {}, "outputs": {}}
            for channel in info_actor.inputs:
                io["inputs"][channel] = {"ring": layout.rings[channel].name, "index": readers[channel].index(actor)}
            for channel in info_actor.outputs:
                io["outputs"][channel] = {"ring": layout.rings[channel].name, "index": writers[channel].index(actor)}
            layout.actor_io[actor] = io
        return layout

    @property
    def report_dir(self) -> str:
        """Where actors leave their measurements for the launcher's report (removed with the segments)."""
        return shm_path(f"{self.prefix}.report")

    @property
    def registry(self) -> str:
        """Path of the file that records this node's live segments and launcher."""
        return shm_path(f"{self.prefix}.registry")

    @property
    def lock(self) -> str:
        """Path of the file whose ``flock`` one process holds while it owns this node's shared memory."""
        return shm_path(f"{self.prefix}.lock")

    def route_state(self, route: str) -> str:
        """Where a route's receiver records the last sequence it delivered (survives a receiver restart)."""
        return shm_path(f"{self.prefix}-{route}.state")


#: The environment variable a reloaded launcher passes to its children: ``{channel: generation}`` as JSON.
GENERATIONS_ENV = "FLOWC_RING_GENERATIONS"


def ring_name(prefix: str, channel: str, generation: int = 0) -> str:
    """The segment name of a channel's ring; a reload that replaces a ring gives the new one the next generation.

    Example:
        >>> ring_name("flowc-abc", "ticks"), ring_name("flowc-abc", "ticks", 2)
        ('flowc-abc-ticks', 'flowc-abc-ticks.g2')
    """
    return f"{prefix}-{channel}" + (f".g{generation}" if generation else "")


def shm_path(name: str) -> str:
    """The path of a shared-memory file of flowc's.

    Example:
        >>> shm_path("flowc-abc.registry")
        '/dev/shm/flowc-abc.registry'
    """
    return f"{SHM_DIR}/{name}"


def segment_prefix(source: str, node: str) -> str:
    """Segment names are per plan (its source file) and node, short enough for any channel name.

    Example:
        >>> segment_prefix("multi-node.yaml", "data_node")
        'flowc-abcdf48b33'
    """
    digest = hashlib.sha256(f"{source}\0{node}".encode()).hexdigest()[:10]
    return f"flowc-{digest}"
