"""The size of each node's plan ConfigMap against the 1 MiB Kubernetes allows, exactly at build, bounded at check.

The API server refuses a ConfigMap whose ``data`` (every key plus every value, counted in UTF-8 bytes) is larger
than :data:`CONFIGMAP_LIMIT`. A node's ConfigMap holds its compact plan slice, so a node with many actors or
large ``params`` can outgrow it, and ``kubectl apply`` would fail halfway through a rollout. The emitter measures
each ConfigMap it builds (:func:`check_configmap`). ``flowc check`` never builds the plan, so it computes from the
IR a lower bound of each node's ConfigMap (:func:`configmap_lower_bounds`) and reports only a node whose bound is
already over the limit (:func:`check_configmap_sizes`). Both emit FLC508.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from flowc.diagnostics import Span
from flowc.emit.kubernetes.names import PLAN_KEY
from flowc.model import ir
from flowc.model.context import Context
from flowc.model.json_text import compact
from flowc.model.units import format_cpuset

#: The most bytes of ``data`` (keys plus values) the API server accepts in one ConfigMap (1 MiB).
CONFIGMAP_LIMIT = 1024 * 1024


def utf8_size(text: str) -> int:
    """Bytes of ``text`` in UTF-8, as the API server counts a Go string.

    Example:
        >>> utf8_size("plan"), utf8_size("é")
        (4, 2)
    """
    return len(text.encode("utf-8", "surrogatepass"))


def data_size(data: Mapping[str, str]) -> int:
    """Bytes a ConfigMap's ``data`` counts against :data:`CONFIGMAP_LIMIT`: every key plus every value.

    Example:
        >>> data_size({"plan.json": "{}"})
        11
    """
    return sum(utf8_size(key) + utf8_size(value) for key, value in data.items())


def check_configmap(data: Mapping[str, str], node: str, at: Span, ctx: Context) -> None:
    """Report the node's ConfigMap when its ``data`` is larger than Kubernetes accepts (the exact check).

    Args:
        data: The ConfigMap's ``data``, as the emitter built it.
        node: The node's flowc name.
        at: The node's span in the document.
        ctx: The context that collects diagnostics.
    """
    size = data_size(data)
    if size > CONFIGMAP_LIMIT:
        _report(node, f"{size:,} bytes", at, ctx)


def check_configmap_sizes(spec: ir.Spec, ctx: Context) -> None:
    """Report every node whose plan ConfigMap is sure to be too large, without building the plan.

    Only a node whose :func:`configmap_lower_bounds` is over the limit is reported, so check never reports a node
    that would fit; a node that crosses the limit only by what the bound leaves out is reported by the build
    (:func:`check_configmap`), which skips this bound since it measures every ConfigMap exactly.

    Args:
        spec: The checked IR.
        ctx: The context that collects diagnostics.
    """
    if ctx.emits:
        return  # a build measures every ConfigMap exactly (check_configmap)
    bounds = configmap_lower_bounds(spec)
    for node in spec.nodes:
        if bounds[node.name] > CONFIGMAP_LIMIT:
            _report(node.name, f"at least {bounds[node.name]:,} bytes", node.span, ctx)


def _report(node: str, size: str, at: Span, ctx: Context) -> None:
    ctx.error("FLC508", f"the plan slice of node '{node}' makes a kubernetes configmap of {size}, more than the "
              f"{CONFIGMAP_LIMIT:,} bytes (1 MiB) kubernetes accepts", at=at,
              help="split the node's actors over more nodes, shorten their params and env, or build this "
              "topology for systemd only (--target systemd)")


def configmap_lower_bounds(spec: ir.Spec) -> dict[str, int]:
    """Return, per node, bytes its plan ConfigMap's ``data`` holds at least, computed from the IR alone.

    The bound never overestimates, so ``flowc check`` raises no false alarm. It encodes, with the encoder the
    slice is written with, a JSON object of the slice's shape that holds a subset of the slice's entries, each
    value no longer than the one the plan will write:

    - what the IR already fixes is written as the plan writes it: each hosted actor's name, role, CPUs, channels,
      ``command``, ``run``, ``params``, ``env`` and limits; the node's hostname, NUMA map and bridge CPUs; the
      routes that touch the node and the peers they send to; the node's channels with their hosted producers
      and consumers and their routes; the links between the node's actors (shared memory) and those a route
      carries between an actor here and one on another node (the placement pass links every writer of a
      channel to every reader of it on the same node and, through the route, on the route's targets);
    - what the placement and transport passes choose later is written as the shortest JSON of its type
      (``0`` for a number or ``null``, ``""`` for a string, ``true`` for a boolean), and the start stages of
      route ends are left out.

    Leaving out an entry of an object or a list only removes bytes, and so does shortening a value, so the
    result is at most the size of the real compact slice. Parameters the encoder refuses (a value that is not
    JSON, such as a date) count for nothing here; the build's exact check catches the rest.

    Args:
        spec: The checked IR.

    Returns:
        Node name → bytes.
    """
    ends = _Endpoints(spec)
    touching: dict[str, list[ir.Route]] = {}
    for route in spec.routes:
        for name in dict.fromkeys((route.source_node, *route.targets)):
            touching.setdefault(name, []).append(route)
    bounds = {}
    for node in spec.nodes:
        hosted = [(p, ends.actors[p.actor]) for p in node.placements if ends.node_of.get(p.actor) == node.name]
        params = sum(_params_size(actor.params) for _, actor in hosted)
        least = _least_slice(node, hosted, ends, touching.get(node.name, []))
        bounds[node.name] = utf8_size(PLAN_KEY) + utf8_size(compact(least)) + params
    return bounds


def _params_size(params: Mapping[str, Any]) -> int:
    """Bytes ``params`` adds to an actor record beyond the ``{}`` that :func:`_least_actor` writes."""
    if not params:
        return 0
    try:
        return utf8_size(compact(dict(params))) - len("{}")
    except (TypeError, ValueError):
        return 0


class _Endpoints:
    """The actors that write and read each channel on each node (as the placement pass links them)."""

    def __init__(self, spec: ir.Spec) -> None:
        self.actors = {actor.name: actor for actor in spec.actors}
        self.nodes = {node.name for node in spec.nodes}
        self.node_of: dict[str, str] = {}
        self.writers: dict[tuple[str, str], list[str]] = {}
        self.readers: dict[tuple[str, str], list[str]] = {}
        for node in spec.nodes:
            for placement in node.placements:
                if placement.actor in self.node_of or placement.actor not in self.actors:
                    continue
                self.node_of[placement.actor] = node.name
                actor = self.actors[placement.actor]
                for channel in dict.fromkeys(actor.outputs):
                    self.writers.setdefault((node.name, channel), []).append(actor.name)
                for channel in dict.fromkeys(actor.inputs):
                    self.readers.setdefault((node.name, channel), []).append(actor.name)

    def targets(self, route: ir.Route) -> list[str]:
        """The nodes a route delivers to (its own source node and unknown names excepted)."""
        return [t for t in dict.fromkeys(route.targets) if t in self.nodes and t != route.source_node]

    def links(self, channel: str, producer_node: str, consumer_node: str, route: str | None) -> list[dict[str, Any]]:
        """Every writer on ``producer_node`` to every reader on ``consumer_node`` of ``channel``."""
        return [{"channel": channel, "consumer": reader, "consumer_node": consumer_node, "cross_numa": True,
                 "producer": writer, "producer_node": producer_node, "route": route, "transport": ""}
                for writer in self.writers.get((producer_node, channel), ())
                for reader in self.readers.get((consumer_node, channel), ())]


def _least_slice(node: ir.Node, hosted: list[tuple[ir.ActorPlacement, ir.Actor]], ends: _Endpoints,
                 routes: list[ir.Route]) -> dict[str, Any]:
    here = node.name
    routes_in = {r.name: r.channel for r in routes if here in ends.targets(r)}
    routes_out = {r.name: r.channel for r in routes if r.source_node == here}
    names = [c for _, actor in hosted for c in (*actor.outputs, *actor.inputs)]
    channels = {channel: {
        "buffer_size": 0, "consumers": ends.readers.get((here, channel), []), "delivery": "", "huge_pages": True,
        "numa": 0, "policy": "", "producers": ends.writers.get((here, channel), []),
        "routes_in": [r for r, c in routes_in.items() if c == channel],
        "routes_out": [r for r, c in routes_out.items() if c == channel],
        "spin_us": 0, "transport": "", "type": "", "type_inferred": True}
        for channel in dict.fromkeys([*names, *routes_in.values(), *routes_out.values()])}
    links = [link for channel in channels for link in ends.links(channel, here, here, None)]
    for route in routes:
        for target in ends.targets(route):
            if here in (route.source_node, target):
                links += ends.links(route.channel, route.source_node, target, route.name)
    record = {
        "actors": {actor.name: _least_actor(placement, actor) for placement, actor in hosted},
        "bridge_cpus": list(node.bridge_cpus),
        "channels": channels,
        "hostname": node.hostname,
        "metrics": {"address": "", "port": 0},
        "numa_topology": {str(domain.id): domain.cpus for domain in node.numa},
        "start_stages": {actor.name: 0 for _, actor in hosted},
    }
    return {"format": "", "links": links, "nodes": {here: record},
            "peers": {target: "" for r in routes if r.source_node == here for target in r.targets},
            "routes": {r.name: {"auth": r.auth, "channel": r.channel, "compression": r.compression, "port": 0,
                                "source_node": r.source_node, "targets": list(r.targets), "transport": r.transport}
                       for r in routes},
            "source": ""}


def _least_actor(placement: ir.ActorPlacement, actor: ir.Actor) -> dict[str, Any]:
    return {"command": actor.command, "cpus": list(placement.cpus), "cpuset": format_cpuset(placement.cpus),
            "env": dict(actor.env), "inputs": list(actor.inputs), "memory_max": actor.memory_max, "numa": 0,
            "outputs": list(actor.outputs), "params": {}, "realtime_priority": actor.realtime_priority,
            "role": actor.role, "run": actor.run}
