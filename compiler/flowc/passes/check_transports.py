"""Pass ``check_transports``: Spec → Spec, warnings about the data path the transports will form.

Emits FLC401 (producer and consumer share memory across NUMA domains: every message crosses the
socket interconnect) and FLC402 (actors form a cycle: bounded channels in a cycle can deadlock).
It needs no graph library, so ``flowc check`` stays fast.
"""

from __future__ import annotations

import graphlib

from flowc.model import ir
from flowc.model.context import Context
from flowc.passes._channel_index import channel_index, placed_numa


def check_transports(spec: ir.Spec, ctx: Context) -> ir.Spec:
    """Warn about cross-NUMA shared memory and dataflow cycles.

    Args:
        spec: The checked IR.
        ctx: The context that collects diagnostics.

    Returns:
        The same spec.
    """
    index = channel_index(spec)
    numa = {(node.name, p.actor): placed_numa(node, p) for node in spec.nodes for p in node.placements}
    for (node, channel), readers in sorted(index.readers.items()):
        for writer in index.writers.get((node, channel), ()):
            for reader in readers:
                a, b = numa[(node, writer)], numa[(node, reader)]
                if a is not None and b is not None and a != b:
                    ctx.warn("FLC401", f"'{writer}' (numa {a}) and '{reader}' (numa {b}) share channel "
                             f"'{channel}' across numa nodes on '{node}'", at=index.actors[reader].span,
                             help="place both on one numa node to keep the data path local")
    _check_cycles(spec, ctx)
    return spec


def _check_cycles(spec: ir.Spec, ctx: Context) -> None:
    writers: dict[str, list[str]] = {}
    for actor in spec.actors:
        for channel in actor.outputs:
            writers.setdefault(channel, []).append(actor.name)
    depends = {actor.name: sorted({w for c in actor.inputs for w in writers.get(c, ())}) for actor in spec.actors}
    if _acyclic(depends):
        return
    reported: set[frozenset[str]] = set()
    while True:
        try:
            graphlib.TopologicalSorter(depends).prepare()
            return
        except graphlib.CycleError as exc:
            cycle = list(exc.args[1][:-1])
        # graphlib lists a cycle in dataflow order (each actor feeds the next); start at the smallest name.
        start = cycle.index(min(cycle))
        cycle = cycle[start:] + cycle[:start]
        if frozenset(cycle) not in reported:
            reported.add(frozenset(cycle))
            first = next(a for a in spec.actors if a.name == min(cycle))
            ctx.warn("FLC402", "actors form a cycle: " + " -> ".join(f"'{a}'" for a in [*cycle, cycle[0]]),
                     at=first.span, help="bounded channels in a cycle can deadlock; make sure one side never blocks")
        # Break the reported cycle at one edge and look for others.
        depends[cycle[1]] = [d for d in depends[cycle[1]] if d != cycle[0]]


def _acyclic(depends: dict[str, list[str]]) -> bool:
    """Whether ``depends`` (actor → the actors it reads from) has no cycle: what graphlib finds, in one sweep.

    Kahn's algorithm: take the actors that depend on nothing left, until none is left (no cycle) or every one
    left depends on another (a cycle, which graphlib then names).
    """
    readers: dict[str, list[str]] = {}
    waiting: dict[str, int] = {}
    for actor, writers in depends.items():
        waiting[actor] = len(writers)
        for writer in writers:
            readers.setdefault(writer, []).append(actor)
    ready = [actor for actor, count in waiting.items() if count == 0]
    ready.extend(writer for writer in readers if writer not in waiting)
    done = 0
    while ready:
        actor = ready.pop()
        done += 1
        for reader in readers.get(actor, ()):
            waiting[reader] -= 1
            if waiting[reader] == 0:
                ready.append(reader)
    return done == len(waiting.keys() | readers.keys())
