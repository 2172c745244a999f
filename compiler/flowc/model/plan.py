"""The resolved plan: everything an emitter needs, with every choice already made.

Written to ``out/flowc/plan.json``; the launcher reads it back. Field names say what, never how a
particular target spells it.
"""

from __future__ import annotations

import json
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

FORMAT = "flowc.plan/v1"


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class InstancePlan(_Frozen):
    """The catalog row a task's instance type resolved to."""

    name: str
    gpu: str
    gpu_count: int
    gpu_memory_gb: int | None
    intranode: str | None
    internode: str | None
    internode_gbps: float | None
    gpu_product: str | None


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


class TaskPlan(_Frozen):
    """A task, normalized."""

    name: str
    instance_type: str
    instance: InstancePlan
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


class ActorPlan(_Frozen):
    """An actor as placed: its CPUs, NUMA domain and channels."""

    role: Literal["producer", "transformer", "consumer"]
    cpus: tuple[int, ...]
    cpuset: str
    numa: int | None
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    command: str | tuple[str, ...] | None
    run: str | None = None
    params: dict[str, Any] = {}
    env: dict[str, str]
    realtime_priority: int | None = None
    memory_max: int | None = None


class ChannelPlan(_Frozen):
    """A channel instance on one node: a shared-memory ring sized and typed."""

    type: Literal["SPSC", "SPMC", "MPSC", "MPMC"]
    type_inferred: bool
    buffer_size: int
    numa: int | None
    huge_pages: bool
    policy: Literal["backpressure", "drop_oldest"] = "backpressure"
    spin_us: float | None = None
    transport: Literal["shm"]
    producers: tuple[str, ...]
    consumers: tuple[str, ...]
    routes_in: tuple[str, ...]
    routes_out: tuple[str, ...]


class NodePlan(_Frozen):
    """A machine and what runs on it."""

    hostname: str
    numa_topology: dict[str, tuple[int, ...] | None]
    actors: dict[str, ActorPlan]
    channels: dict[str, ChannelPlan]


class RoutePlan(_Frozen):
    """A channel carried between nodes."""

    source_node: str
    channel: str
    targets: tuple[str, ...]
    transport: Literal["tcp"]
    compression: Literal["none", "lz4", "zstd"]
    port: int


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


class BidPlan(_Frozen):
    """A task's spot bid: the request body as the API takes it, and why each choice was made."""

    body: dict[str, Any]
    region_source: str
    limit_price_source: str
    startup_script_encoding: Literal["plain", "gzip+base64"]
    explain: tuple[str, ...]


class Plan(_Frozen):
    """The whole resolved plan."""

    format: str = FORMAT
    source: str
    tasks: dict[str, TaskPlan]
    nodes: dict[str, NodePlan]
    routes: dict[str, RoutePlan]
    links: tuple[LinkPlan, ...]
    targets: dict[str, dict[str, Any]] = {}
    peers: dict[str, str] = {}
    bids: dict[str, BidPlan] = {}

    def slices(self, address: dict[str, str]) -> dict[str, Plan]:
        """Return, per node, the part of the plan its launcher needs, with the addresses of its peers.

        Args:
            address: How other nodes reach each node that receives routes (``node -> host``).

        Returns:
            Node → a plan holding that node, the routes and links that touch it, and ``peers`` (the
            address of every node its routes deliver to); no tasks.
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
            # A launcher needs neither the bids nor the tasks.
            peers = {t: address[t] for r in routes[node].values() if r.source_node == node for t in r.targets}
            out[node] = self.model_copy(update={"tasks": {}, "nodes": {node: info}, "routes": routes[node],
                                                "links": tuple(links[node]), "targets": {}, "bids": {},
                                                "peers": dict(sorted(peers.items()))})
        return out

    def to_json(self) -> str:
        """Serialize deterministically: sorted keys, two-space indent, trailing newline.

        Returns:
            The JSON text.
        """
        data = self.model_dump(mode="json")
        return json.dumps(data, sort_keys=True, indent=2, ensure_ascii=False, allow_nan=False) + "\n"
