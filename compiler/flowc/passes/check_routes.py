"""Pass ``check_routes``: Spec → Spec, checking ``inter_node`` routes against nodes and channels.

Emits FLC320 (unknown node), FLC321 (source channel not produced there), FLC322 (a channel crosses
nodes without a route; the help spells the route to add), FLC323 (route to its own node), FLC324
(target that does not consume the channel, warning) and FLC325 (the same channel routed twice), and warns
FLC403 for a route that says ``auth: none``, and FLC343 for ``bridge_cpus`` that an actor of the node is pinned to.
"""

from __future__ import annotations

from flowc.diagnostics.suggestions import help_for
from flowc.model import ir
from flowc.model.context import Context
from flowc.passes._channel_index import channel_index


def check_routes(spec: ir.Spec, ctx: Context) -> ir.Spec:
    """Check every route, and that every cross-node channel has one.

    Args:
        spec: The IR.
        ctx: The context that collects diagnostics.

    Returns:
        The same spec.
    """
    index = channel_index(spec)
    nodes = {node.name for node in spec.nodes}
    carried: dict[tuple[str, str, str], str] = {}
    for route in spec.routes:
        if route.source_node not in nodes:
            ctx.error("FLC320", f"route '{route.name}' starts at unknown node '{route.source_node}'",
                      at=route.at("source"), help=help_for(route.source_node, nodes))
        elif not index.writers.get((route.source_node, route.channel)):
            producers = sorted({n for (n, c) in index.writers if c == route.channel})
            guess = help_for(route.channel, {c for (_, c) in index.writers})
            hint = (f"'{route.channel}' is produced on " + ", ".join(f"'{n}'" for n in producers) if producers
                    else guess if guess.startswith("did you mean") else
                    f"place an actor that outputs '{route.channel}' on '{route.source_node}'")
            ctx.error("FLC321", f"route '{route.name}' carries '{route.channel}', which no actor on "
                      f"'{route.source_node}' produces", at=route.at("source"), help=hint)
        if route.auth == "none":
            ctx.warn("FLC403", f"route '{route.name}' is not authenticated: anyone who reaches its port can send "
                     f"into '{route.channel}' on " + ", ".join(f"'{t}'" for t in route.targets),
                     at=route.at("auth"), help="remove 'auth: none': then only the source node's key is let in "
                     "(make the keys with 'flowc keys generate')")
        for i, target in enumerate(route.targets):
            at = route.at(f"targets[{i}]")
            if target not in nodes:
                ctx.error("FLC320", f"route '{route.name}' targets unknown node '{target}'", at=at,
                          help=help_for(target, nodes))
                continue
            if target == route.source_node:
                ctx.error("FLC323", f"route '{route.name}' targets its own source node '{target}'", at=at,
                          help="actors on the same node share the channel in memory; remove this target")
                continue
            key = (route.source_node, route.channel, target)
            if key in carried:
                ctx.error("FLC325", f"'{route.channel}' from '{route.source_node}' to '{target}' is already "
                          f"carried by route '{carried[key]}'", at=at, help="remove one of the two routes")
            carried.setdefault(key, route.name)
            if not index.readers.get((target, route.channel)):
                ctx.warn("FLC324", f"route '{route.name}' delivers '{route.channel}' to '{target}', where no "
                         "actor reads it", at=at, help="remove the target, or place a consumer there")
    _check_crossings(spec, index, carried, ctx)
    _check_bridge_cpus(spec, ctx)
    return spec


def _check_bridge_cpus(spec: ir.Spec, ctx: Context) -> None:
    """Warn when a node's bridges are pinned to a cpu one of its actors is pinned to (they would take turns)."""
    for node in spec.nodes:
        for placement in node.placements:
            shared = sorted(set(node.bridge_cpus) & set(placement.cpus))
            if shared:
                ctx.warn("FLC343", f"the route bridges of '{node.name}' are pinned to cpu {shared[0]}, which "
                         f"'{placement.actor}' is pinned to", at=node.at("bridge_cpus"),
                         help="give bridges cpus of their own, or drop bridge_cpus to let them float")


def _check_crossings(spec: ir.Spec, index, carried: dict[tuple[str, str, str], str], ctx: Context) -> None:
    producers: dict[str, list[str]] = {}
    for (node, channel) in sorted(index.writers):
        producers.setdefault(channel, []).append(node)
    placements = {(node.name, p.actor): p for node in spec.nodes for p in node.placements}
    for (node, channel), readers in sorted(index.readers.items()):
        sources = [n for n in producers.get(channel, []) if n != node]
        if not sources or (node, channel) in index.writers:
            continue
        if any((source, channel, node) in carried for source in sources):
            continue
        source = sources[0]
        reader = readers[0]
        ctx.error("FLC322", f"'{reader}' on '{node}' reads '{channel}', which is produced on '{source}', "
                  "and no route carries it", at=placements[(node, reader)].span,
                  help=f"add under 'inter_node:': {channel}-to-{node}: "
                       f"{{source: {source}.{channel}, targets: [{node}], transport: tcp}}")
