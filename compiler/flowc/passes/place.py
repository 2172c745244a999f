"""Pass ``place``: Spec → :class:`PlacementGraph`, the physical layout as a networkx graph.

Vertices are machines, their NUMA domains, actors and channel instances (a channel on a node);
edges say what contains, writes, reads and carries what. networkx never leaves this module: later
passes ask the typed questions of :class:`PlacementGraph`. Emits nothing: everything it
could object to was checked before.
"""

from __future__ import annotations

from dataclasses import dataclass

import networkx as nx

from flowc.diagnostics import Context
from flowc.model import ir
from flowc.passes._channel_index import endpoints, placed_numa


@dataclass(frozen=True, order=True)
class Link:
    """One producer → consumer hop through a channel, possibly across a route.

    Attributes:
        channel: The channel's name.
        producer: ``(node, actor)`` that writes it.
        consumer: ``(node, actor)`` that reads it.
        route: The route that carries it between nodes, if they differ.
    """

    channel: str
    producer: tuple[str, str]
    consumer: tuple[str, str]
    route: str | None = None


class PlacementGraph:
    """The placement graph and the questions later passes ask of it."""

    def __init__(self, spec: ir.Spec, graph: nx.MultiDiGraph) -> None:
        """Wrap a built graph; use :func:`place` to build one.

        Args:
            spec: The IR the graph was built from.
            graph: The graph.
        """
        self.spec = spec
        self._graph = graph

    def numa_of(self, node: str, actor: str) -> int | None:
        """Return the NUMA domain an actor is bound to, or ``None`` when it is not bound to one."""
        for pred in self._graph.predecessors(("actor", actor)):
            if pred[0] == "numa" and pred[1] == node:
                return pred[2]
        return None

    def channel_instances(self) -> list[tuple[str, str]]:
        """Return every ``(node, channel)`` that exists, sorted."""
        return sorted((v[1], v[2]) for v in self._graph if v[0] == "channel")

    def links(self) -> list[Link]:
        """Return every producer → consumer hop, sorted."""
        found: set[Link] = set()
        for vertex in self._graph:
            if vertex[0] != "actor":
                continue
            producer = (self._node_of(vertex[1]), vertex[1])
            for _, chan, kind in self._graph.out_edges(vertex, keys=True):
                if kind != "writes":
                    continue
                for _, reader, edge in self._graph.out_edges(chan, keys=True):
                    if edge == "reads":
                        found.add(Link(chan[2], producer, (chan[1], reader[1])))
                    elif edge.startswith("route:"):
                        for _, far, kind2 in self._graph.out_edges(reader, keys=True):
                            if kind2 == "reads":
                                found.add(Link(chan[2], producer, (reader[1], far[1]), edge[6:]))
        return sorted(found, key=lambda link: (link.channel, link.producer, link.consumer, link.route or ""))

    def _node_of(self, actor: str) -> str:
        for pred in self._graph.predecessors(("actor", actor)):
            if pred[0] in ("numa", "machine"):
                return pred[1]
        raise KeyError(actor)


def place(spec: ir.Spec, ctx: Context) -> PlacementGraph:
    """Build the placement graph of a checked spec.

    Args:
        spec: The IR, free of semantic errors.
        ctx: The context that collects diagnostics.

    Returns:
        The graph wrapper.
    """
    graph = nx.MultiDiGraph()
    index = endpoints(spec)
    for node in spec.nodes:
        graph.add_node(("machine", node.name))
        for domain in node.numa:
            graph.add_edge(("machine", node.name), ("numa", node.name, domain.id), key="contains")
        for placement in node.placements:
            numa = placed_numa(node, placement)
            parent = ("numa", node.name, numa) if numa is not None else ("machine", node.name)
            graph.add_edge(parent, ("actor", placement.actor), key="hosts")
    for (node, channel), actors in index.writers.items():
        for actor in actors:
            graph.add_edge(("actor", actor), ("channel", node, channel), key="writes")
    for (node, channel), actors in index.readers.items():
        for actor in actors:
            graph.add_edge(("channel", node, channel), ("actor", actor), key="reads")
    for route in spec.routes:
        for target in route.targets:
            graph.add_edge(("channel", route.source_node, route.channel), ("channel", target, route.channel),
                           key=f"route:{route.name}")
    return PlacementGraph(spec, graph)
