"""Pass ``resolve_transports``: PlacementGraph → :class:`~flowc.model.plan.Plan`.

The AlphaPulse rule, made explicit: producer and consumer on the same node → shared memory (marked
``cross_numa`` when they sit on different NUMA domains; ``check_transports`` already warned about it, FLC401);
different nodes → TCP through the route, with its compression. Channel types the document omits are inferred
from the number of producers and consumers on each node; each node's processes get their start stages from
the placement graph. Emits nothing.
"""

from __future__ import annotations

from flowc.model.context import Context
from flowc.model.plan import ActorPlan, ChannelPlan, LinkPlan, NodePlan, Plan, RoutePlan
from flowc.model.units import format_cpuset
from flowc.passes._channel_index import channel_index
from flowc.passes._metrics_ports import metrics_endpoints
from flowc.passes._tasks import plan_task
from flowc.passes.place import PlacementGraph

DEFAULT_BUFFER_SIZE = 4 * 1024 * 1024
ROUTE_PORT_BASE = 7400


def resolve_transports(graph: PlacementGraph, ctx: Context) -> Plan:
    """Resolve every channel's transport and size, and assemble the plan.

    Args:
        graph: The placement graph.
        ctx: The context that collects diagnostics.

    Returns:
        The plan.
    """
    spec = graph.spec
    index = channel_index(spec)
    links = []
    for link in graph.links():
        same_node = link.producer[0] == link.consumer[0]
        numa_a = graph.numa_of(*link.producer)
        numa_b = graph.numa_of(*link.consumer)
        cross = same_node and None not in (numa_a, numa_b) and numa_a != numa_b
        links.append(LinkPlan(channel=link.channel, producer=link.producer[1], producer_node=link.producer[0],
                              consumer=link.consumer[1], consumer_node=link.consumer[0],
                              transport="shm" if same_node else "tcp", cross_numa=cross, route=link.route))
    routes = {
        route.name: RoutePlan(source_node=route.source_node, channel=route.channel, targets=route.targets,
                              transport=route.transport, compression=route.compression, auth=route.auth,
                              port=ROUTE_PORT_BASE + i)
        for i, route in enumerate(sorted(spec.routes, key=lambda r: r.name))
    }
    metrics = metrics_endpoints(spec, routes, ctx)
    keys_by_node: dict[str, list[tuple[str, str]]] = {}
    for key in index.channel_keys():
        keys_by_node.setdefault(key[0], []).append(key)
    nodes = {}
    cpusets: dict[tuple[int, ...], str] = {}  # nodes alike pin their actors alike
    for node in spec.nodes:
        declared = {c.name: c for c in node.channels}
        actors = {}
        for p in node.placements:
            actor = index.actors[p.actor]
            cpuset = cpusets.get(cpus := tuple(p.cpus))
            if cpuset is None:
                cpuset = cpusets[cpus] = format_cpuset(cpus)
            actors[p.actor] = ActorPlan(role=actor.role, cpus=p.cpus, cpuset=cpuset,
                                        numa=graph.numa_of(node.name, p.actor), inputs=actor.inputs,
                                        outputs=actor.outputs, command=actor.command, run=actor.run,
                                        params=dict(actor.params), env=dict(actor.env),
                                        realtime_priority=actor.realtime_priority, memory_max=actor.memory_max)
        channels = {}
        for key in keys_by_node.get(node.name, ()):
            channels[key[1]] = _channel(key, declared.get(key[1]), index, actors)
        nodes[node.name] = NodePlan(
            span=node.span,
            hostname=node.hostname,
            numa_topology={str(d.id): d.cpus for d in node.numa},
            actors=actors, channels=channels, start_stages=graph.start_stages(node.name),
            bridge_cpus=node.bridge_cpus, metrics=metrics[node.name])
    # Every part is a model validated as it was built, so the whole is assembled without validating it again (a
    # node's validator would run a second time).
    return Plan.model_construct(
        source=_basename(spec.path), tasks={t.name: plan_task(t) for t in spec.tasks}, nodes=nodes, routes=routes,
        links=tuple(links), target_settings={name: dict(section) for name, section in spec.target_settings.items()})


def _channel(key, declared, index, actors: dict[str, ActorPlan]) -> ChannelPlan:
    producers = tuple(index.writers.get(key, ()))
    consumers = tuple(index.readers.get(key, ()))
    inferred = ("S" if index.producer_count(key) <= 1 else "M") + "P" + (
        "S" if index.consumer_count(key) <= 1 else "M") + "C"
    numa = declared.numa if declared is not None and declared.numa is not None else next(
        (actors[a].numa for a in (*producers, *consumers) if actors[a].numa is not None), None)
    return ChannelPlan(
        type=declared.type if declared is not None and declared.type else inferred,
        type_inferred=declared is None or declared.type is None,
        buffer_size=(declared.buffer_size if declared is not None and declared.buffer_size else DEFAULT_BUFFER_SIZE),
        numa=numa, huge_pages=declared.huge_pages if declared is not None else False, transport="shm",
        policy=declared.policy if declared is not None else "backpressure",
        delivery=declared.delivery if declared is not None else "broadcast",
        spin_us=declared.spin_us if declared is not None else None,
        producers=producers, consumers=consumers, routes_in=tuple(sorted(index.routes_in.get(key, ()))),
        routes_out=tuple(sorted(index.routes_out.get(key, ()))))


def _basename(path: str) -> str:
    return path.replace("\\", "/").rsplit("/", 1)[-1]
