"""Pass ``place``: Spec → :class:`PlacementGraph`, the physical layout as a networkx graph.

Vertices are machines, their NUMA domains, actors, channel instances (a channel on a node) and the two ends of
every route leg (a receiver on each target node, a sender per target on the source node); edges say what
contains, writes, reads and carries what. networkx answers the questions later passes ask: which consumers a
producer reaches (reachability through channels and routes), and in which order a node's processes start
(the condensation of its dataflow, in topological generations, sinks first, so a cycle starts as one stage).
networkx never leaves this module: later passes ask the typed questions of :class:`PlacementGraph`. Emits
nothing: everything it could object to was checked before.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import networkx as nx

from flowc.model import ir
from flowc.model.context import Context
from flowc.model.plan import receiver_key, sender_key
from flowc.passes._channel_index import channel_index, placed_numa

Vertex = tuple[str, ...]


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

    def links(self) -> list[Link]:
        """Return every producer → consumer hop, sorted.

        A consumer is reached from a channel through a ``reads`` edge, or through one ``route`` edge to the same
        channel on another node and a ``reads`` edge there (at most two edges: a link crosses at most one route,
        as the plan records one). The view holds no ``writes`` edges, so a path stops at the first actor.
        """
        # A graph of its own, not a filtered view: a view counts its vertices by filtering them on every search.
        reading = nx.DiGraph()
        reading.add_edges_from((u, v, {"route": kind[6:] if kind.startswith("route:") else None})
                               for u, v, kind in self._graph.edges(keys=True)
                               if kind == "reads" or kind.startswith("route:"))
        found: set[Link] = set()
        for writer, channel, kind in self._graph.edges(keys=True):
            if kind != "writes" or writer[0] != "actor":
                continue
            producer = (self._node_of(writer[1]), writer[1])
            if channel not in reading:
                continue
            for reader, path in nx.single_source_shortest_path(reading, channel, cutoff=2).items():
                if reader[0] != "actor":
                    continue
                route = reading.edges[path[0], path[1]]["route"]
                found.add(Link(channel[2], producer, (path[-2][1], reader[1]), route))
        return sorted(found, key=lambda link: (link.channel, link.producer, link.consumer, link.route or ""))

    def start_stages(self, node: str) -> dict[str, int]:
        """Return the start stage of every process on ``node``: its actors and its route ends.

        Stage 0 holds the processes nothing on the node reads from (consumers, route senders); each next stage
        writes only to earlier ones. Actors in a cycle share a stage. Starting stage by stage means no process
        writes before its readers exist; stopping runs the other way, so writers stop first and readers drain.

        Args:
            node: The node.

        Returns:
            Actor name, :func:`receiver_key` or :func:`sender_key` → stage.
        """
        return self._start_stages.get(node, {})

    @functools.cached_property
    def _start_stages(self) -> dict[str, dict[str, int]]:
        """Every node's start stages, from one condensation of the whole dataflow.

        A process writes only to channels of its own node, so each node's processes form components of their
        own, and topological generations number each component on its own: one pass over all nodes gives every
        node the stages a pass over that node alone would (a thousand small graphs cost more than one large).
        """
        succ = self._graph.succ  # vertex → successor → edge keys
        owner: dict[Vertex, str] = {}
        for vertex in self._graph:
            if vertex[0] == "node":
                owner.update((process, vertex[1]) for process in succ[vertex]
                             if process[0] in ("actor", "receiver", "sender"))
        flow = nx.DiGraph()
        flow.add_nodes_from(owner)
        flow.add_edges_from((process, reader) for process in owner
                            for channel, kinds in succ[process].items() if "writes" in kinds
                            for reader, reading in succ[channel].items() if "reads" in reading)
        dag = nx.condensation(flow)
        stages: dict[str, dict[str, int]] = {}
        for stage, members in enumerate(nx.topological_generations(dag.reverse(copy=False))):
            for scc in members:
                for vertex in dag.nodes[scc]["members"]:
                    stages.setdefault(owner[vertex], {})[_process_key(vertex)] = stage
        return {node: dict(sorted(found.items())) for node, found in stages.items()}

    def _node_of(self, actor: str) -> str:
        for pred in self._graph.predecessors(("actor", actor)):
            if pred[0] in ("numa", "machine"):
                return pred[1]
        raise KeyError(actor)


def _process_key(vertex: Vertex) -> str:
    if vertex[0] == "actor":
        return vertex[1]
    if vertex[0] == "receiver":
        return receiver_key(vertex[2])
    return sender_key(vertex[2], vertex[3])


def place(spec: ir.Spec, ctx: Context) -> PlacementGraph:
    """Build the placement graph of a checked spec.

    Args:
        spec: The IR, free of semantic errors.
        ctx: The context that collects diagnostics.

    Returns:
        The graph wrapper.
    """
    graph = nx.MultiDiGraph()
    index = channel_index(spec)
    for node in spec.nodes:
        graph.add_node(("machine", node.name))
        graph.add_node(("node", node.name))
        for domain in node.numa:
            graph.add_edge(("machine", node.name), ("numa", node.name, domain.id), key="contains")
        for placement in node.placements:
            numa = placed_numa(node, placement)
            parent = ("numa", node.name, numa) if numa is not None else ("machine", node.name)
            graph.add_edge(parent, ("actor", placement.actor), key="hosts")
            graph.add_edge(("node", node.name), ("actor", placement.actor), key="runs")
    for (node, channel), actors in index.writers.items():
        for actor in actors:
            graph.add_edge(("actor", actor), ("channel", node, channel), key="writes")
    for (node, channel), actors in index.readers.items():
        for actor in actors:
            graph.add_edge(("channel", node, channel), ("actor", actor), key="reads")
    nodes = {node.name for node in spec.nodes}
    for route in spec.routes:
        source = ("channel", route.source_node, route.channel)
        for target in route.targets:
            if target not in nodes or target == route.source_node:
                continue
            far = ("channel", target, route.channel)
            graph.add_edge(source, far, key=f"route:{route.name}")
            sender, receiver = ("sender", route.source_node, route.name, target), ("receiver", target, route.name)
            graph.add_edge(("node", route.source_node), sender, key="runs")
            graph.add_edge(source, sender, key="reads")
            graph.add_edge(("node", target), receiver, key="runs")
            graph.add_edge(receiver, far, key="writes")
    return PlacementGraph(spec, graph)
