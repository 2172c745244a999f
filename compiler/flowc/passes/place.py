"""Pass ``place``: Spec → :class:`PlacementGraph`, the physical layout as a networkx graph.

Vertices are machines, their NUMA domains, actors, channel instances (a channel on a node) and the two ends of
every route leg (a receiver on each target node, a sender per target on the source node); edges say what
contains, writes, reads and carries what. The graph answers the questions later passes ask: which consumers a
producer reaches (reachability through channels and routes), and in which order a node's processes start
(the condensation of its dataflow, in topological generations, sinks first, so a cycle starts as one stage).
Those searches walk networkx's adjacency dicts directly: on a graph of tens of thousands of vertices, the
per-call cost of its algorithms was most of what the answers cost. networkx never leaves this module: later
passes ask the typed questions of :class:`PlacementGraph`. Emits nothing: everything it could object to was
checked before.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import networkx as nx

from flowc.model import ir
from flowc.model.context import Context
from flowc.model.plan import receiver_key, sender_key
from flowc.passes._channel_index import channel_index, placed_numa

Vertex = tuple[str, ...]
#: A graph's successors or predecessors as networkx keeps them: vertex → neighbour → edge key → attributes.
Adjacency = dict[Vertex, dict[Vertex, dict[str, dict[str, Any]]]]


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
        return self._hosts[0].get((node, actor))

    def links(self) -> list[Link]:
        """Return every producer → consumer hop, sorted.

        A consumer is reached from a channel through a ``reads`` edge, or through one ``route`` edge to the same
        channel on another node and a ``reads`` edge there (at most two edges: a link crosses at most one route,
        as the plan records one). The search follows no ``writes`` edge, so a path stops at the first actor.
        """
        succ = self._graph._succ  # vertex → successor → edge keys, searched once per channel
        node_of = self._hosts[1]
        reached: dict[Vertex, list[tuple[tuple[str, str], str | None]]] = {}
        found: set[tuple[str, tuple[str, str], tuple[str, str], str | None]] = set()
        for writer, written in succ.items():
            if writer[0] != "actor":
                continue
            for channel, kinds in written.items():
                if "writes" not in kinds:
                    continue
                consumers = reached.get(channel)
                if consumers is None:
                    consumers = reached[channel] = _consumers(succ, channel)
                producer = (node_of[writer[1]], writer[1])
                found.update((channel[2], producer, consumer, route) for consumer, route in consumers)
        return [Link(*hop) for hop in sorted(found, key=lambda hop: (hop[0], hop[1], hop[2], hop[3] or ""))]

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
        own, and the stages number each component on its own: one pass over all nodes gives every node the
        stages a pass over that node alone would (a thousand small graphs cost more than one large).
        """
        succ = self._graph._succ  # vertex → successor → edge keys
        owner: dict[Vertex, str] = {}
        for vertex, out in succ.items():
            if vertex[0] == "node":
                owner.update((process, vertex[1]) for process in out if process[0] in ("actor", "receiver", "sender"))
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

    @functools.cached_property
    def _hosts(self) -> tuple[dict[tuple[str, str], int], dict[str, str]]:
        """``(node, actor)`` → the NUMA domain hosting the actor, and actor → the node of its first host."""
        numa: dict[tuple[str, str], int] = {}
        node: dict[str, str] = {}
        for vertex, hosts in self._graph._pred.items():
            if vertex[0] != "actor":
                continue
            for host in hosts:
                if host[0] == "numa":
                    numa.setdefault((host[1], vertex[1]), host[2])
                if host[0] in ("numa", "machine"):
                    node.setdefault(vertex[1], host[1])
        return numa, node


def _consumers(succ: Adjacency, channel: Vertex) -> list[tuple[tuple[str, str], str | None]]:
    """Return ``((node, actor), route)`` for every actor that reads ``channel``, here or across one route.

    A breadth-first search of at most two ``reads`` or ``route`` edges; each actor is reached first by its
    shortest path, and a route edge between two channels names the last route added between them.
    """
    seen = {channel}
    first: list[tuple[Vertex, str | None]] = []
    for vertex, kinds in succ[channel].items():
        hop = _hop(kinds)
        if hop is not False and vertex not in seen:
            seen.add(vertex)
            first.append((vertex, hop))
    found = [((channel[1], vertex[1]), route) for vertex, route in first if vertex[0] == "actor"]
    for via, route in first:
        if via[0] != "channel":  # only a channel starts a reads or route edge
            continue
        for vertex, kinds in succ[via].items():
            if vertex not in seen and _hop(kinds) is not False:
                seen.add(vertex)
                if vertex[0] == "actor":
                    found.append(((via[1], vertex[1]), route))
    return found


def _hop(kinds: dict[str, dict[str, Any]]) -> str | None | bool:
    """The route an edge's keys carry a search over (``None``: a ``reads`` edge), or ``False`` for neither."""
    hop: str | None | bool = False
    for kind in kinds:
        if kind == "reads":
            hop = None
        elif kind.startswith("route:"):
            hop = kind[6:]
    return hop


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
    vertex, edge = _builder(graph)
    index = channel_index(spec)
    for node in spec.nodes:
        machine, runner = ("machine", node.name), ("node", node.name)
        vertex(machine)
        vertex(runner)
        for domain in node.numa:
            edge(machine, ("numa", node.name, domain.id), "contains")
        for placement in node.placements:
            numa = placed_numa(node, placement)
            parent = ("numa", node.name, numa) if numa is not None else machine
            edge(parent, ("actor", placement.actor), "hosts")
            edge(runner, ("actor", placement.actor), "runs")
    for (node, channel), actors in index.writers.items():
        for actor in actors:
            edge(("actor", actor), ("channel", node, channel), "writes")
    for (node, channel), actors in index.readers.items():
        for actor in actors:
            edge(("channel", node, channel), ("actor", actor), "reads")
    nodes = {node.name for node in spec.nodes}
    for route in spec.routes:
        source = ("channel", route.source_node, route.channel)
        for target in route.targets:
            if target not in nodes or target == route.source_node:
                continue
            far = ("channel", target, route.channel)
            edge(source, far, f"route:{route.name}")
            sender, receiver = ("sender", route.source_node, route.name, target), ("receiver", target, route.name)
            edge(("node", route.source_node), sender, "runs")
            edge(source, sender, "reads")
            edge(("node", target), receiver, "runs")
            edge(receiver, far, "writes")
    return PlacementGraph(spec, graph)


def _builder(graph: nx.MultiDiGraph) -> tuple[Callable[[Vertex], None], Callable[[Vertex, Vertex, str], None]]:
    """Return ``add_node`` and keyed ``add_edge`` for a new, empty graph: the same graph, without attributes, sooner.

    A large topology adds tens of thousands of edges, and networkx's ``add_edge`` costs more per call (defaults,
    attribute merging, cache clearing) than filling the adjacency dicts as it does; ``tests/test_passes.py`` holds
    the graph equal to one built with ``add_edge``.
    """
    succ, pred, attrs = graph._succ, graph._pred, graph._node

    def vertex(v: Vertex) -> None:
        if v not in succ:
            succ[v], pred[v], attrs[v] = {}, {}, {}

    def edge(u: Vertex, v: Vertex, key: str) -> None:
        vertex(u)
        vertex(v)
        keys = succ[u].get(v)
        if keys is None:
            keys = succ[u][v] = pred[v][u] = {}
        keys.setdefault(key, {})

    return vertex, edge
