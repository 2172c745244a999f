"""Who writes and who reads each channel on each node, derived once from the IR.

Semantic checks and the placement pass both ask these questions; this module answers them from the
:class:`~flowc.model.ir.Spec` alone, so neither has to walk the other's data.
"""

from __future__ import annotations

import weakref
from collections import defaultdict
from dataclasses import dataclass, field

from flowc.model import ir


@dataclass(frozen=True)
class ChannelIndex:
    """Channel endpoints of a whole topology.

    Attributes:
        actors: Declared actors by name.
        node_of: The node each placed actor runs on (first placement wins).
        writers: ``(node, channel)`` → actors on that node that write the channel.
        readers: ``(node, channel)`` → actors on that node that read the channel.
        routes_in: ``(node, channel)`` → routes that deliver the channel to that node.
        routes_out: ``(node, channel)`` → routes that carry the channel away from that node.
    """

    actors: dict[str, ir.Actor]
    node_of: dict[str, str]
    writers: dict[tuple[str, str], list[str]] = field(default_factory=dict)
    readers: dict[tuple[str, str], list[str]] = field(default_factory=dict)
    routes_in: dict[tuple[str, str], list[str]] = field(default_factory=dict)
    routes_out: dict[tuple[str, str], list[str]] = field(default_factory=dict)
    route_targets: dict[str, int] = field(default_factory=dict)

    def producer_count(self, key: tuple[str, str]) -> int:
        """Writers of a channel on a node; each incoming route's receiver is one more writer."""
        return len(self.writers.get(key, ())) + len(self.routes_in.get(key, ()))

    def consumer_count(self, key: tuple[str, str]) -> int:
        """Readers of a channel on a node; each target of an outgoing route has its own sender, one more reader."""
        return len(self.readers.get(key, ())) + sum(self.route_targets[r] for r in self.routes_out.get(key, ()))

    def channel_keys(self) -> list[tuple[str, str]]:
        """Every ``(node, channel)`` pair with at least one endpoint, sorted."""
        return sorted({*self.writers, *self.readers, *self.routes_in, *self.routes_out})


_INDEXES: dict[int, ChannelIndex] = {}


def channel_index(spec: ir.Spec) -> ChannelIndex:
    """Index the channel endpoints of ``spec`` (once per spec: four checks and two passes ask; do not mutate it).

    Args:
        spec: The IR.

    Returns:
        The index; actors placed but not declared contribute no endpoints.
    """
    found = _INDEXES.get(id(spec))
    if found is None:
        found = _INDEXES[id(spec)] = _index(spec)
        weakref.finalize(spec, _INDEXES.pop, id(spec), None)  # gone with the spec, before its id can be reused
    return found


def _index(spec: ir.Spec) -> ChannelIndex:
    actors = {actor.name: actor for actor in spec.actors}
    node_of: dict[str, str] = {}
    writers: dict[tuple[str, str], list[str]] = defaultdict(list)
    readers: dict[tuple[str, str], list[str]] = defaultdict(list)
    for node in spec.nodes:
        for placement in node.placements:
            if placement.actor in node_of or placement.actor not in actors:
                continue
            node_of[placement.actor] = node.name
            actor = actors[placement.actor]
            for channel in dict.fromkeys(actor.outputs):
                writers[(node.name, channel)].append(actor.name)
            for channel in dict.fromkeys(actor.inputs):
                readers[(node.name, channel)].append(actor.name)
    routes_in: dict[tuple[str, str], list[str]] = defaultdict(list)
    routes_out: dict[tuple[str, str], list[str]] = defaultdict(list)
    nodes = {node.name for node in spec.nodes}
    for route in spec.routes:
        if route.source_node in nodes:
            routes_out[(route.source_node, route.channel)].append(route.name)
        for target in route.targets:
            if target in nodes and target != route.source_node:
                routes_in[(target, route.channel)].append(route.name)
    targets = {r.name: len([t for t in r.targets if t in nodes and t != r.source_node]) for r in spec.routes}
    return ChannelIndex(actors, node_of, dict(writers), dict(readers), dict(routes_in), dict(routes_out), targets)


def placed_numa(node: ir.Node, placement: ir.ActorPlacement) -> int | None:
    """Return the NUMA domain an actor is bound to: as written, else derived from its CPUs.

    Args:
        node: The node the actor is placed on.
        placement: The placement.

    Returns:
        The domain id, or ``None`` when the document leaves it open on a multi-domain node.
    """
    if placement.numa is not None:
        return placement.numa
    if placement.cpus:
        for domain in node.numa:
            if domain.cpus and placement.cpus[0] in domain.cpus:
                return domain.id
    return node.numa[0].id if len(node.numa) == 1 else None


def numa_of_cpus(node: ir.Node) -> dict[int, int]:
    """Map each CPU of a node's ``numa_topology`` map to its NUMA domain (the first one that lists it).

    Args:
        node: The node.

    Returns:
        CPU id → domain id; empty when the document lists domain ids only.
    """
    out: dict[int, int] = {}
    for domain in node.numa:
        for cpu in domain.cpus or ():
            out.setdefault(cpu, domain.id)
    return out
