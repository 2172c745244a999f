"""The resolved plan: everything an emitter needs, with every choice already made.

Written to ``out/flowc/plan.json``. A launcher reads only a :class:`NodeSlice` (its node, the routes and links
that touch it, and its peers' addresses), never the tasks or any target's settings. Field names say what, never
how a particular target spells it. Objects an emitter may report about carry the span of the document text they
come from (``span``, never serialized), so no stage after lowering needs the document.
"""

from __future__ import annotations

import json
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from flowc.diagnostics import Span
from flowc.model.catalog import InstanceType
from flowc.model.json_text import compact, pretty
from flowc.model.units import MAX_BUFFER, MAX_CPU, MAX_ENDS, MIN_BUFFER

FORMAT = "flowc.plan/v1"

# Bounds of the values a launcher acts on. ``flowc build`` never writes anything outside them; a hand-edited
# plan that does is refused when it is loaded ("not a valid flowc plan"), before a segment is created.
_Cpu = Annotated[int, Field(ge=0, le=MAX_CPU)]
_Count = Annotated[int, Field(ge=0, le=(1 << 63) - 1)]
_BufferSize = Annotated[int, Field(ge=MIN_BUFFER, le=MAX_BUFFER)]
_MemoryMax = Annotated[int, Field(ge=1, le=(1 << 63) - 1)]
_Port = Annotated[int, Field(ge=1, le=65535)]
_Spin = Annotated[float, Field(ge=0, le=3600 * 1e6, allow_inf_nan=False)]


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", arbitrary_types_allowed=True)


class UnknownNode(LookupError):
    """A node slice was asked for a node the plan does not have (the message lists those it has)."""


def _span() -> Span | None:
    """A field for the document span an object came from: kept in memory for diagnostics, never written."""
    return Field(default=None, exclude=True, repr=False)


class VolumePlan(_Frozen):
    """A volume of a task."""

    name: str | None
    volume_id: str | None
    size_gb: int | None
    mount_path: str
    interface: Literal["block", "file"]


class TopologyPlan(_Frozen):
    """A task's topology with defaults filled and the effective distance derived."""

    placement: Literal["packed", "spread", "cluster"]
    intranode: str
    internode: str
    min_bandwidth_gbps: float | None
    same_zone: bool
    same_rack: bool
    max_distance: Literal["rack", "zone", "region"] | None
    distance: Literal["rack", "zone", "region"] | None
    anti_affinity_groups: tuple[str, ...]
    group: str


class OfferPlan(_Frozen):
    """Where a task's instances are rented and the most it pays: region and limit price, each with its source.

    Attributes:
        region: The region the instances are asked for.
        region_source: ``document`` (the task names it), ``prices`` (chosen from price data) or ``default``.
        limit_price: USD per instance-hour.
        limit_price_source: ``document`` (``max_price_per_hour``), ``history`` (price history) or
            ``priority-tier`` (the priority's price per GPU-hour times the GPUs).
        reasons: One line per choice, saying why.
    """

    region: str
    region_source: Literal["document", "prices", "default"]
    limit_price: float
    limit_price_source: Literal["document", "history", "priority-tier"]
    reasons: tuple[str, ...]


class TaskPlan(_Frozen):
    """A task, normalized; ``offer`` is set once the region and limit price are chosen."""

    span: Span | None = _span()
    name: str
    instance_type: str
    instance: InstanceType
    num_instances: int
    command: str | tuple[str, ...] | None
    image: str | None
    env: dict[str, str]
    region: str | None
    max_price_per_hour: float | None
    priority: Literal["low", "med", "high"]
    max_run_time_hours: float | None
    ssh_keys: tuple[str, ...]
    volumes: tuple[VolumePlan, ...]
    topology: TopologyPlan
    offer: OfferPlan | None = None


class ActorPlan(_Frozen):
    """An actor as placed: its CPUs, NUMA domain and channels."""

    role: Literal["producer", "transformer", "consumer"]
    cpus: tuple[_Cpu, ...]
    cpuset: str
    numa: _Cpu | None
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    command: str | tuple[str, ...] | None
    run: str | None = None
    params: dict[str, Any] = {}
    env: dict[str, str]
    realtime_priority: Annotated[int, Field(ge=1, le=99)] | None = None
    memory_max: _MemoryMax | None = None


class ChannelPlan(_Frozen):
    """A channel instance on one node: a shared-memory ring sized and typed."""

    type: Literal["SPSC", "SPMC", "MPSC", "MPMC"]
    type_inferred: bool
    buffer_size: _BufferSize
    numa: _Cpu | None
    huge_pages: bool
    policy: Literal["backpressure", "drop_oldest"] = "backpressure"
    #: ``broadcast``: every consumer sees every message; ``shared``: each message goes to exactly one.
    delivery: Literal["broadcast", "shared"] = "broadcast"
    spin_us: _Spin | None = None
    transport: Literal["shm"]
    producers: tuple[str, ...]
    consumers: tuple[str, ...]
    routes_in: tuple[str, ...]
    routes_out: tuple[str, ...]


def receiver_key(route: str) -> str:
    """The :attr:`NodePlan.start_stages` key of a route's receiver on a target node.

    Example:
        >>> receiver_key("feed")
        'route:feed:in'
    """
    return f"route:{route}:in"


def sender_key(route: str, target: str) -> str:
    """The :attr:`NodePlan.start_stages` key of a route's sender towards ``target`` on the source node.

    Example:
        >>> sender_key("feed", "b")
        'route:feed:out:b'
    """
    return f"route:{route}:out:{target}"


#: The default port of a node's metrics endpoint (further nodes on one host take the next free ones).
METRICS_PORT = 9464
#: The default address it binds: every interface (Prometheus and the kubelet's probes come from outside).
METRICS_ADDRESS = "0.0.0.0"


class MetricsPlan(_Frozen):
    """Where a node's launcher serves ``/metrics``, ``/healthz`` and ``/readyz``."""

    address: str = METRICS_ADDRESS
    port: _Port = METRICS_PORT


class NodePlan(_Frozen):
    """A machine and what runs on it.

    ``start_stages`` orders its processes (actors by name, route ends by :func:`receiver_key` and
    :func:`sender_key`): stage 0 starts first and holds what nothing on the node reads from; each later stage
    writes only into earlier ones. Stopping runs the other way.
    """

    span: Span | None = _span()
    hostname: str
    numa_topology: dict[str, tuple[_Cpu, ...] | None]
    actors: dict[str, ActorPlan]
    channels: dict[str, ChannelPlan]
    start_stages: dict[str, _Count]
    #: CPUs the node's route bridges are pinned to (empty: not pinned).
    bridge_cpus: tuple[_Cpu, ...] = ()
    #: The node's metrics endpoint.
    metrics: MetricsPlan = MetricsPlan()

    @property
    def cpus_asked(self) -> list[int]:
        """Every CPU id the node's actors and bridges are pinned to, sorted (what a launcher maps)."""
        return sorted({cpu for actor in self.actors.values() for cpu in actor.cpus} | set(self.bridge_cpus))

    @model_validator(mode="after")
    def _actors_match_channels(self) -> NodePlan:
        """Each actor's inputs and outputs are channels of the node that list it back, and the reverse."""
        # The common case in a few set operations: the (actor, channel) pairs the actors list are those the
        # channels list, and no channel lists an end twice. Only a mismatch walks the node to name the first one.
        reads = {(name, channel) for name, actor in self.actors.items() for channel in actor.inputs}
        writes = {(name, channel) for name, actor in self.actors.items() for channel in actor.outputs}
        read = [(actor, channel) for channel, spec in self.channels.items() for actor in spec.consumers]
        written = [(actor, channel) for channel, spec in self.channels.items() for actor in spec.producers]
        if set(read) == reads and len(read) == len(reads) and set(written) == writes and len(written) == len(writes):
            return self
        for name, actor in self.actors.items():
            for kind, names, ends in (("input", actor.inputs, "consumers"), ("output", actor.outputs, "producers")):
                for channel in names:
                    if channel not in self.channels:
                        raise ValueError(f"actor '{name}' has {kind} '{channel}', which is not a channel of the node")
                    if name not in getattr(self.channels[channel], ends):
                        raise ValueError(f"channel '{channel}' does not list actor '{name}' among its {ends}")
        for channel, spec in self.channels.items():
            for ends, field in (("consumers", "inputs"), ("producers", "outputs")):
                for actor in getattr(spec, ends):
                    if actor not in self.actors or channel not in getattr(self.actors[actor], field):
                        raise ValueError(f"channel '{channel}' lists '{actor}' among its {ends}, but no actor "
                                         f"of the node has it in its {field}")
                if len(set(getattr(spec, ends))) != len(getattr(spec, ends)):
                    raise ValueError(f"channel '{channel}' lists one of its {ends} twice")
        return self


class RoutePlan(_Frozen):
    """A channel carried between nodes."""

    source_node: str
    channel: str
    targets: tuple[str, ...]
    transport: Literal["tcp"]
    compression: Literal["none", "lz4", "zstd"]
    #: ``curve``: each end proves its node's key; ``none``: the receiver takes any peer (the document said so).
    auth: Literal["curve", "none"] = "curve"
    port: _Port


class LinkPlan(_Frozen):
    """A producer → consumer hop and the transport resolved for it."""

    channel: str
    producer: str
    producer_node: str
    consumer: str
    consumer_node: str
    transport: Literal["shm", "tcp"]
    cross_numa: bool
    route: str | None


class Plan(_Frozen):
    """The whole resolved plan."""

    format: str = FORMAT
    source: str
    tasks: dict[str, TaskPlan]
    nodes: dict[str, NodePlan]
    routes: dict[str, RoutePlan]
    links: tuple[LinkPlan, ...]
    #: Each output target's settings section as the document wrote it (route ``targets`` are nodes).
    target_settings: dict[str, dict[str, Any]] = {}

    def slices(self, address: dict[str, str]) -> dict[str, NodeSlice]:
        """Return, per node, the part of the plan its launcher needs, with the addresses of its peers.

        Args:
            address: How other nodes reach each node that receives routes (``node -> host``).

        Returns:
            Node → its :class:`NodeSlice`, with ``peers`` holding the address of every node its routes deliver to.
        """
        routes: dict[str, dict[str, RoutePlan]] = {node: {} for node in self.nodes}
        for name, route in self.routes.items():
            for node in {route.source_node, *route.targets}:
                routes[node][name] = route
        links: dict[str, list[LinkPlan]] = {node: [] for node in self.nodes}
        for link in self.links:
            for node in dict.fromkeys((link.producer_node, link.consumer_node)):
                links[node].append(link)
        out = {}
        for node, info in self.nodes.items():
            peers = {t: address[t] for r in routes[node].values() if r.source_node == node for t in r.targets}
            out[node] = NodeSlice(source=self.source, nodes={node: info}, routes=routes[node],
                                  links=tuple(links[node]), peers=dict(sorted(peers.items())))
        return out

    def to_json(self) -> str:
        """Serialize deterministically: sorted keys, two-space indent, trailing newline.

        Returns:
            The JSON text.
        """
        return _json(self)


class NodeSlice(_Frozen):
    """What one node's launcher reads: its node, the routes and links that touch it, its peers' addresses.

    It holds no task and no target's settings; ``flowc launch`` accepts a whole ``plan.json`` too and reads
    only these fields of it (see :meth:`load`).
    """

    format: str = FORMAT
    source: str
    nodes: dict[str, NodePlan]
    routes: dict[str, RoutePlan]
    links: tuple[LinkPlan, ...]
    peers: dict[str, str] = {}

    @model_validator(mode="after")
    def _routes_fit_rings(self) -> NodeSlice:
        """Every route a channel names is in the slice, has its start stage, and the ring's ends fit its tables."""
        for node, info in self.nodes.items():
            for channel, spec in info.channels.items():
                for route in (*spec.routes_in, *spec.routes_out):
                    if route not in self.routes:
                        raise ValueError(f"channel '{channel}' of '{node}' names route '{route}', which the plan "
                                         "does not have")
                    if self.routes[route].channel != channel:
                        raise ValueError(f"route '{route}' carries '{self.routes[route].channel}', not '{channel}'")
                receivers = list(spec.routes_in)
                senders = [(r, t) for r in spec.routes_out for t in self.routes[r].targets if t != node]
                needed = [receiver_key(r) for r in receivers] + [sender_key(r, t) for r, t in senders]
                missing = [key for key in needed if key not in info.start_stages]
                if missing:
                    raise ValueError(f"node '{node}' has no start stage for '{missing[0]}'")
                if len(spec.producers) + len(receivers) > MAX_ENDS or len(spec.consumers) + len(senders) > MAX_ENDS:
                    raise ValueError(f"channel '{channel}' of '{node}' has more than {MAX_ENDS} producers or "
                                     "consumers")
        return self

    @classmethod
    def load(cls, text: str, node: str) -> NodeSlice:
        """Read ``node``'s slice from a node slice or a whole plan, as ``flowc build`` wrote them.

        From a whole plan, peers are reached by their hostnames (what systemd hosts use).

        Args:
            text: The JSON text.
            node: The node to run.

        Returns:
            The slice.

        Raises:
            ValueError: When the text is not a flowc plan of this format (pydantic's ``ValidationError`` is one).
            UnknownNode: When the plan has no such node.
        """
        try:
            data = json.loads(text)
        except RecursionError:
            raise ValueError("the JSON is nested too deeply") from None
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            raise ValueError(f"not a '{FORMAT}' document")
        loaded = cls.model_validate({key: data[key] for key in cls.model_fields if key in data})
        if node not in loaded.nodes:
            raise UnknownNode(f"node '{node}' is not in the plan (it has: {', '.join(sorted(loaded.nodes))})")
        if len(loaded.nodes) == 1:
            return loaded
        routes = {name: r for name, r in loaded.routes.items() if node in (r.source_node, *r.targets)}
        peers = {t: loaded.nodes[t].hostname for r in routes.values() if r.source_node == node for t in r.targets
                 if t in loaded.nodes}
        return loaded.model_copy(update={
            "nodes": {node: loaded.nodes[node]}, "routes": routes,
            "links": tuple(k for k in loaded.links if node in (k.producer_node, k.consumer_node)),
            "peers": {**dict(sorted(peers.items())), **loaded.peers}})

    def to_json(self) -> str:
        """Serialize deterministically, like :meth:`Plan.to_json`."""
        return _json(self)

    def to_compact_json(self) -> str:
        """Serialize deterministically without insignificant whitespace (a ConfigMap holds at most 1 MiB)."""
        return compact(self.model_dump(mode="json"))


def _json(model: BaseModel) -> str:
    return pretty(model.model_dump(mode="json"))
