"""Pass ``check_actors``: Spec → Spec, checking actors, their placement and the channels on each node.

Emits FLC301 (input without producer), FLC302 (output without consumer, warning), FLC303 (channel
type contradicts its endpoints), FLC304–FLC306 (placement of declared actors), FLC307 (cpu booked
twice), FLC308 (unknown numa node), FLC309 (cpu outside its numa node), FLC315 (numa nodes
sharing a cpu), FLC310 (role contradicts
channels), FLC313 (unused local channel, warning), FLC314 (channel listed twice), FLC316 ('run'
with 'command', or 'params' without 'run') and FLC342 (more producers or consumers on one node's channel
than a ring supports, :data:`~flowc.model.units.MAX_ENDS`), FLC345 (a shared channel that drops the oldest) and
FLC346 (a shared channel with one reader, warning).
"""

from __future__ import annotations

from flowc.diagnostics.suggestions import help_for
from flowc.model import ir
from flowc.model.context import Context
from flowc.model.units import MAX_ENDS, format_cpuset
from flowc.passes._channel_index import ChannelIndex, channel_index


def check_actors(spec: ir.Spec, ctx: Context) -> ir.Spec:
    """Check the actor topology of ``spec``; report every problem found.

    Args:
        spec: The IR.
        ctx: The context that collects diagnostics.

    Returns:
        The same spec.
    """
    index = channel_index(spec)
    _check_roles(spec, ctx)
    _check_channels_connect(spec, ctx)
    _check_placement(spec, ctx)
    for node in spec.nodes:
        _check_cpus(node, ctx)
        _check_local_channels(node, index, ctx)
    _check_ring_ends(spec, index, ctx)
    return spec


def _check_ring_ends(spec: ir.Spec, index: ChannelIndex, ctx: Context) -> None:
    """Every channel a node uses is one ring, declared or not; its ends must fit the ring's tables."""
    nodes = {node.name: node for node in spec.nodes}
    channels = {node.name: {channel.name: channel for channel in node.channels} for node in nodes.values()}
    for key in index.channel_keys():
        node = nodes.get(key[0])
        if node is None:
            continue
        declared = channels[key[0]].get(key[1])
        at = declared.span if declared is not None else node.span
        if declared is not None and declared.delivery == "shared":
            where = declared.at("delivery")
            if declared.policy == "drop_oldest":
                ctx.error("FLC345", f"channel '{key[1]}' on '{key[0]}' shares its messages and drops the oldest",
                          at=where, help="a shared channel's readers take turns and none lags behind: use "
                                         "policy: backpressure, or delivery: broadcast")
            elif index.consumer_count(key) < 2:
                ctx.warn("FLC346", f"channel '{key[1]}' on '{key[0]}' shares its messages but has one reader",
                         at=where, help="shared delivery splits messages among several readers (replicas of a "
                                        "transformer, or route senders); with one it is broadcast")
        for count, what in ((index.producer_count(key), "producers"), (index.consumer_count(key), "consumers")):
            if count > MAX_ENDS:
                ctx.error("FLC342", f"channel '{key[1]}' has {count} {what} on '{key[0]}'; a ring supports at "
                          f"most {MAX_ENDS}", at=at,
                          help=f"split the {what} over several channels, or across nodes")


def _check_roles(spec: ir.Spec, ctx: Context) -> None:
    for actor in spec.actors:
        if actor.role == "producer" and actor.inputs:
            ctx.error("FLC310", f"producer '{actor.name}' declares inputs", at=actor.at("inputs"),
                      help="producers only write; make it a 'transformer' or remove 'inputs'")
        if actor.role == "consumer" and actor.outputs:
            ctx.error("FLC310", f"consumer '{actor.name}' declares outputs", at=actor.at("outputs"),
                      help="consumers only read; make it a 'transformer' or remove 'outputs'")
        if actor.role in ("producer", "transformer") and not actor.outputs:
            ctx.warn("FLC310", f"{actor.role} '{actor.name}' has no outputs", at=actor.span,
                     help="add the channels it writes under 'outputs'")
        if actor.role in ("consumer", "transformer") and not actor.inputs:
            ctx.warn("FLC310", f"{actor.role} '{actor.name}' has no inputs", at=actor.span,
                     help="add the channels it reads under 'inputs'")
        if actor.run and actor.command:
            ctx.error("FLC316", f"actor '{actor.name}' has both 'run' and 'command'", at=actor.at("run"),
                      help="'run' names a Python callable, 'command' an executable; keep one")
        if actor.params and not actor.run:
            ctx.error("FLC316", f"actor '{actor.name}' has 'params' but no 'run'", at=actor.at("params"),
                      help="'params' are passed to the 'run' callable; add 'run: package.module:function'")
        for field in ("inputs", "outputs"):
            seen: set[str] = set()
            for i, channel in enumerate(getattr(actor, field)):
                if channel in seen:
                    ctx.error("FLC314", f"channel '{channel}' is listed twice in '{actor.name}' {field}",
                              at=actor.at(f"{field}[{i}]"), help="remove the repeated entry")
                seen.add(channel)
        for i, channel in enumerate(actor.inputs):
            if channel in actor.outputs:
                ctx.error("FLC314", f"actor '{actor.name}' reads and writes channel '{channel}'",
                          at=actor.at(f"inputs[{i}]"), help="an actor cannot consume its own output; "
                          "give the output another name")


def _check_channels_connect(spec: ir.Spec, ctx: Context) -> None:
    written = {c for actor in spec.actors for c in actor.outputs}
    read = {c for actor in spec.actors for c in actor.inputs}
    for actor in spec.actors:
        for i, channel in enumerate(actor.inputs):
            if channel not in written:
                ctx.error("FLC301", f"input channel '{channel}' of '{actor.name}' has no producer",
                          at=actor.at(f"inputs[{i}]"),
                          help=_missing_help(channel, written, "add it to the 'outputs' of a producer"))
        for i, channel in enumerate(actor.outputs):
            if channel not in read:
                ctx.warn("FLC302", f"output channel '{channel}' of '{actor.name}' has no consumer",
                         at=actor.at(f"outputs[{i}]"),
                         help=_missing_help(channel, read, "add it to the 'inputs' of a consumer, or remove it"))


def _missing_help(channel: str, names: set[str], otherwise: str) -> str:
    guess = help_for(channel, names)
    return guess if guess.startswith("did you mean") else otherwise


def _check_placement(spec: ir.Spec, ctx: Context) -> None:
    declared = {actor.name: actor for actor in spec.actors}
    placed: dict[str, str] = {}
    for node in spec.nodes:
        numa_ids = [d.id for d in node.numa]
        for placement in node.placements:
            name = placement.actor
            if name not in declared:
                guess = help_for(name, declared)
                ctx.error("FLC304", f"actor '{name}' is placed on '{node.name}' but never declared",
                          at=placement.span,
                          help=guess if guess.startswith("did you mean") else
                          f"declare it under 'actors:' with its type and channels, e.g. "
                          f"'{name}: {{type: transformer, inputs: [...], outputs: [...]}}'")
            elif name in placed:
                ctx.error("FLC306", f"actor '{name}' is placed twice, on '{placed[name]}' and '{node.name}'",
                          at=placement.span, help="an actor runs exactly once; remove one placement")
            placed.setdefault(name, node.name)
            if placement.numa is not None and placement.numa not in numa_ids:
                ctx.error("FLC308", f"numa node {placement.numa} of '{name}' is not in the numa_topology of "
                          f"'{node.name}'", at=placement.at("numa"), help=_numa_help(node))
    for actor in spec.actors:
        if actor.name not in placed and spec.nodes:
            ctx.error("FLC305", f"actor '{actor.name}' is declared but not placed on any node", at=actor.span,
                      help=f"add '{actor.name}: {{cpu: [...]}}' under a node's 'actors:'")
        elif actor.name not in placed:
            ctx.error("FLC305", f"actor '{actor.name}' is declared but the document has no 'nodes'",
                      at=actor.span, help="add 'nodes:' with a node that places it")


def _numa_help(node: ir.Node) -> str:
    if not node.numa_declared:
        return f"'{node.name}' has no 'numa_topology', so only numa node 0 exists; declare 'numa_topology: [0, 1]'"
    return "numa nodes of this node: " + ", ".join(str(d.id) for d in node.numa)


def _check_cpus(node: ir.Node, ctx: Context) -> None:
    owner: dict[int, str] = {}
    domains = {d.id: d for d in node.numa}
    numa_owner: dict[int, int] = {}
    # A cpu listed twice is rare: a set operation finds whether there is one, and only then are they named (the
    # first owner of a cpu keeps it either way).
    for domain in node.numa:
        cpus = domain.cpus or ()
        if numa_owner.keys().isdisjoint(cpus):
            numa_owner.update(dict.fromkeys(cpus, domain.id))
            continue
        shared = sorted(cpu for cpu in cpus if cpu in numa_owner)
        ctx.error("FLC315", f"cpu {format_cpuset(shared)} of numa node {domain.id} on '{node.name}' is also in "
                  f"numa node {numa_owner[shared[0]]}", at=domain.span,
                  help="each cpu belongs to exactly one numa node; see 'lscpu -p=cpu,node' on the machine")
        for cpu in cpus:
            numa_owner.setdefault(cpu, domain.id)
    cpu_numa = numa_owner  # what numa_of_cpus(node) returns: each cpu's first domain
    for placement in node.placements:
        if not owner.keys().isdisjoint(placement.cpus):
            clash = sorted(cpu for cpu in placement.cpus if cpu in owner)
            ctx.error("FLC307", f"cpu {format_cpuset(clash)} of '{placement.actor}' on '{node.name}' is already "
                      f"given to '{owner[clash[0]]}'", at=placement.at("cpu"),
                      help="give each actor its own cpus; pinned actors must not share a core")
        for cpu in placement.cpus:
            owner.setdefault(cpu, placement.actor)
        if not cpu_numa:
            continue
        outside = [cpu for cpu in placement.cpus if cpu not in cpu_numa]
        if outside:
            ctx.error("FLC309", f"cpu {format_cpuset(outside)} of '{placement.actor}' is in no numa node of "
                      f"'{node.name}'", at=placement.at("cpu"), help=_domains_help(node))
            continue
        wanted = placement.numa
        if wanted is not None and wanted in domains:
            stray = [cpu for cpu in placement.cpus if cpu_numa[cpu] != wanted]
            if stray:
                ctx.error("FLC309", f"cpu {format_cpuset(stray)} of '{placement.actor}' is not on numa node "
                          f"{wanted}", at=placement.at("cpu"), help=_domains_help(node))
        elif wanted is None and len({cpu_numa[cpu] for cpu in placement.cpus}) > 1:
            ctx.error("FLC309", f"cpus of '{placement.actor}' span several numa nodes of '{node.name}'",
                      at=placement.at("cpu"), help="pin the actor to cpus of one numa node, and set 'numa'")


def _domains_help(node: ir.Node) -> str:
    return "numa nodes of '" + node.name + "': " + "; ".join(
        f"{d.id}: {format_cpuset(d.cpus or ())}" for d in node.numa)


def _check_local_channels(node: ir.Node, index: ChannelIndex, ctx: Context) -> None:
    numa_ids = [d.id for d in node.numa]
    for channel in node.channels:
        key = (node.name, channel.name)
        if channel.numa is not None and channel.numa not in numa_ids:
            ctx.error("FLC308", f"numa node {channel.numa} of channel '{channel.name}' is not in the numa_topology "
                      f"of '{node.name}'", at=channel.at("numa"), help=_numa_help(node))
        producers, consumers = index.producer_count(key), index.consumer_count(key)
        if producers == 0 and consumers == 0:
            ctx.warn("FLC313", f"channel '{channel.name}' is declared on '{node.name}' but no actor there uses it",
                     at=channel.span, help="remove it, or place its producer or consumer on this node")
            continue
        if channel.type is None:
            continue
        if channel.type.startswith("SP") and producers > 1:
            who = _names(index.writers.get(key, []), index.routes_in.get(key, []))
            ctx.error("FLC303", f"channel '{channel.name}' is {channel.type} but has {producers} producers on "
                      f"'{node.name}': {who}", at=channel.at("type"),
                      help=f"declare it 'MP{channel.type[2:]}', or give each producer its own channel")
        if channel.type.endswith("SC") and consumers > 1:
            who = _names(index.readers.get(key, []), index.routes_out.get(key, []))
            ctx.error("FLC303", f"channel '{channel.name}' is {channel.type} but has {consumers} consumers on "
                      f"'{node.name}': {who}", at=channel.at("type"),
                      help=f"declare it '{channel.type[:2]}MC', or give each consumer its own channel")


def _names(actors: list[str], routes: list[str]) -> str:
    return ", ".join([f"'{a}'" for a in actors] + [f"route '{r}'" for r in routes])
