"""The typed, frozen intermediate representation of a topology document.

Every object keeps the span of its key and of its fields, so later passes can point at the exact
place a problem comes from. Nothing here knows about any deployment target.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_serializer

from flowc.diagnostics import Span

Placement = Literal["packed", "spread", "cluster"]
Distance = Literal["rack", "zone", "region"]
Role = Literal["producer", "transformer", "consumer"]
ChannelType = Literal["SPSC", "SPMC", "MPSC", "MPMC"]


class Located(BaseModel):
    """Base of every IR object: frozen, with the span of its key and of each field."""

    model_config = ConfigDict(frozen=True, arbitrary_types_allowed=True, extra="forbid", defer_build=True)

    span: Span
    spans: Mapping[str, Span] = Field(default_factory=dict, repr=False)

    @field_serializer("spans")
    def _spans_as_dict(self, spans: Mapping[str, Span]) -> dict[str, Span]:
        """Serialize the field spans as a dict (``lower`` hands over a mapping that finds them when asked)."""
        return dict(spans)

    def at(self, field: str) -> Span:
        """Return the span of ``field`` (``"inputs[2]"`` for a list item), or the object's own span.

        Args:
            field: A field name, optionally with an item index.

        Returns:
            The most precise span known.
        """
        return self.spans.get(field) or self.spans.get(field.split("[")[0]) or self.span


class Interconnect(Located):
    """Network requirements of a task."""

    intranode: Literal["nvlink", "pcie", "any"] | None = None
    internode: Literal["infiniband", "roce", "ethernet", "any"] | None = None
    min_bandwidth_gbps: float | None = None


class Constraints(Located):
    """Explicit placement constraints of a task."""

    same_zone: bool = False
    same_rack: bool = False
    max_distance: Distance | None = None
    anti_affinity_groups: tuple[str, ...] = ()


class Topology(Located):
    """Placement strategy plus interconnect and constraints."""

    placement: Placement = "packed"
    interconnect: Interconnect
    constraints: Constraints


class Volume(Located):
    """A storage volume attached to every instance of a task."""

    name: str | None = None
    volume_id: str | None = None
    size_gb: int | None = None
    mount_path: str | None = None
    interface: Literal["block", "file"] = "block"


class Task(Located):
    """A workload on ``num_instances`` rented instances."""

    name: str
    instance_type: str
    num_instances: int = 1
    command: str | tuple[str, ...] | None = None
    image: str | None = None
    env: tuple[tuple[str, str], ...] = ()
    region: str | None = None
    max_price_per_hour: float | None = None
    priority: Literal["low", "med", "high"] = "med"
    max_run_time_hours: float | None = None
    ssh_keys: tuple[str, ...] = ()
    volumes: tuple[Volume, ...] = ()
    topology: Topology


class Actor(Located):
    """A logical actor: its role and the channels it reads and writes."""

    name: str
    role: Role
    inputs: tuple[str, ...] = ()
    outputs: tuple[str, ...] = ()
    command: str | tuple[str, ...] | None = None
    run: str | None = None
    params: Mapping[str, Any] = Field(default_factory=dict)
    env: tuple[tuple[str, str], ...] = ()
    realtime_priority: int | None = None
    memory_max: int | None = None


class ActorPlacement(Located):
    """Where one actor runs on its node."""

    actor: str
    numa: int | None = None
    cpus: tuple[int, ...]


class LocalChannel(Located):
    """A channel declared on a node (its type and size; omitted fields are inferred later)."""

    name: str
    type: ChannelType | None = None
    buffer_size: int | None = None
    numa: int | None = None
    huge_pages: bool = False
    policy: Literal["backpressure", "drop_oldest"] = "backpressure"
    delivery: Literal["broadcast", "shared"] = "broadcast"
    spin_us: float | None = None


class NumaDomain(Located):
    """One NUMA node of a machine; ``cpus`` is ``None`` when the document lists ids only."""

    id: int
    cpus: tuple[int, ...] | None = None


class Node(Located):
    """A machine and what runs on it."""

    name: str
    hostname: str
    numa: tuple[NumaDomain, ...]
    numa_declared: bool = False
    placements: tuple[ActorPlacement, ...] = ()
    channels: tuple[LocalChannel, ...] = ()
    bridge_cpus: tuple[int, ...] = ()
    #: ``metrics.port`` and ``metrics.address`` as written (``None``: the default).
    metrics_port: int | None = None
    metrics_address: str | None = None


class Route(Located):
    """A channel carried from one node to others."""

    name: str
    source_node: str
    channel: str
    targets: tuple[str, ...]
    transport: Literal["tcp"] = "tcp"
    compression: Literal["none", "lz4", "zstd"] = "none"
    auth: Literal["curve", "none"] = "curve"


class Spec(BaseModel):
    """The whole document, typed: what to rent (tasks) and the actor topology.

    ``target_settings`` carries each output target's own settings section (validated by the schema) through
    to its emitter untouched, so that no target's vocabulary enters the IR.
    """

    model_config = ConfigDict(frozen=True, extra="forbid", defer_build=True)

    path: str
    tasks: tuple[Task, ...] = ()
    actors: tuple[Actor, ...] = ()
    nodes: tuple[Node, ...] = ()
    routes: tuple[Route, ...] = ()
    target_settings: Mapping[str, Mapping[str, Any]] = Field(default_factory=dict)
