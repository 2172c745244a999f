"""What changes on each node when one plan replaces another: the list ``flowc diff`` prints and a reload applies.

A change is computed from the nodes' run-time layouts (:class:`~flowc.model.node_view.NodeView`), not from the
document: an actor whose ring endpoint moved (another producer joined its channel) must restart even when its own
entry is untouched, and a channel whose ring geometry changed (size, policy, number of producers or consumers,
huge pages, spin budget) needs a new ring. What does not appear in the list is left alone.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from flowc.model.node_view import Bridge, NodeView, RingLayout
from flowc.model.plan import ActorPlan, NodeSlice

#: What happens to one thing: it starts, it stops (after its inputs drain), it restarts, or its ring is replaced.
Action = Literal["add", "remove", "restart", "replace"]
_SYMBOL = {"add": "+", "remove": "-", "restart": "~", "replace": "~"}
_ACTOR_FIELDS = ("role", "cpus", "numa", "inputs", "outputs", "command", "run", "params", "env", "realtime_priority",
                 "memory_max")
_RING_FIELDS = ("buffer_size", "producers", "consumers", "policy", "delivery", "huge_pages", "spin_us")


@dataclass(frozen=True)
class Change:
    """One change on a node.

    Attributes:
        action: ``add``, ``remove``, ``restart`` (actors, route legs) or ``replace`` (channels: a new ring).
        kind: ``actor``, ``channel`` or ``route``.
        name: The actor, the channel, or the route leg (``<route> out to <node>`` / ``<route> in from <node>``).
        why: What differs, in words (empty for additions and removals).
    """

    action: Action
    kind: Literal["actor", "channel", "route"]
    name: str
    why: str = ""

    def line(self) -> str:
        """The change as one line of ``flowc diff``.

        Example:
            >>> Change("restart", "actor", "strategy", "params changed").line()
            '~ restart actor strategy: params changed'
        """
        return f"{_SYMBOL[self.action]} {self.action} {self.kind} {self.name}" + (f": {self.why}" if self.why else "")


@dataclass(frozen=True)
class NodeDiff:
    """The changes of one node, and what stays as it is.

    Attributes:
        node: The node.
        status: ``changed``, ``unchanged``, ``added`` (only in the new plan) or ``removed`` (only in the old).
        changes: Channels first, then actors, then route legs; each group sorted by name.
        unchanged_actors: Actors whose processes keep running untouched.
    """

    node: str
    status: Literal["changed", "unchanged", "added", "removed"]
    changes: tuple[Change, ...] = ()
    unchanged_actors: tuple[str, ...] = field(default=())

    def as_dict(self) -> dict[str, Any]:
        """A JSON-ready form."""
        return {"node": self.node, "status": self.status, "unchanged_actors": list(self.unchanged_actors),
                "changes": [{"action": c.action, "kind": c.kind, "name": c.name, "why": c.why} for c in self.changes]}


def diff_node(old: NodeSlice, new: NodeSlice, node: str) -> NodeDiff:
    """Compare one node of two plans.

    Args:
        old: The plan (or node slice) that runs now.
        new: The plan that replaces it.
        node: The node; it must be in both.

    Returns:
        The node's changes.
    """
    before, after = NodeView.of(old, node), NodeView.of(new, node)
    changes = _channel_changes(before.rings, after.rings)
    replaced = {c.name for c in changes}
    old_actors, new_actors = old.nodes[node].actors, new.nodes[node].actors
    unchanged = []
    actor_changes = []
    for name in sorted(set(old_actors) | set(new_actors)):
        if name not in new_actors:
            actor_changes.append(Change("remove", "actor", name))
        elif name not in old_actors:
            actor_changes.append(Change("add", "actor", name))
        else:
            why = _actor_why(old_actors[name], new_actors[name], before.actor_io[name], after.actor_io[name], replaced)
            if why:
                actor_changes.append(Change("restart", "actor", name, why))
            else:
                unchanged.append(name)
    changes += actor_changes + _route_changes(before.bridges, after.bridges, replaced)
    return NodeDiff(node, "changed" if changes else "unchanged", tuple(changes), tuple(unchanged))


def diff_plans(old: dict[str, NodeSlice], new: dict[str, NodeSlice]) -> list[NodeDiff]:
    """Compare every node of two plans, given as each node's slice; a node only one side has is added or removed.

    Returns:
        One :class:`NodeDiff` per node, by node name.
    """
    out = []
    for node in sorted(set(old) | set(new)):
        if node not in new:
            gone = sorted(old[node].nodes[node].actors)
            out.append(NodeDiff(node, "removed", tuple(Change("remove", "actor", a) for a in gone)))
        elif node not in old:
            come = sorted(new[node].nodes[node].actors)
            out.append(NodeDiff(node, "added", tuple(Change("add", "actor", a) for a in come)))
        else:
            out.append(diff_node(old[node], new[node], node))
    return out


def _channel_changes(before: dict[str, RingLayout], after: dict[str, RingLayout]) -> list[Change]:
    changes = []
    for name in sorted(set(before) | set(after)):
        if name not in after:
            changes.append(Change("remove", "channel", name))
        elif name not in before:
            changes.append(Change("add", "channel", name))
        else:
            why = [f"{f} {getattr(before[name], f)} -> {getattr(after[name], f)}" for f in _RING_FIELDS
                   if getattr(before[name], f) != getattr(after[name], f)]
            if why:
                changes.append(Change("replace", "channel", name, ", ".join(why)))
    return changes


def _actor_why(old: ActorPlan, new: ActorPlan, old_io: dict[str, Any], new_io: dict[str, Any],
               replaced: set[str]) -> str:
    why = [f"{f} changed" for f in _ACTOR_FIELDS if getattr(old, f) != getattr(new, f)]
    if not why:
        # ring names follow the plan's file name, which a reload keeps: only the endpoint index matters
        moved = sorted(channel for group in ("inputs", "outputs") for channel, end in new_io[group].items()
                       if channel in old_io[group] and old_io[group][channel]["index"] != end["index"])
        why += [f"its end of '{channel}' moved" for channel in moved]
        why += [f"channel '{channel}' is replaced" for channel in sorted(
            {*new_io["inputs"], *new_io["outputs"]} & replaced) if channel not in moved]
    return ", ".join(why)


def _route_changes(before: list[Bridge], after: list[Bridge], replaced: set[str]) -> list[Change]:
    old = {b.leg: b for b in before}
    new = {b.leg: b for b in after}
    changes = []
    for name in sorted(set(old) | set(new)):
        if name not in new:
            changes.append(Change("remove", "route", name))
        elif name not in old:
            changes.append(Change("add", "route", name))
        else:
            a, b = old[name], new[name]
            why = [f"{f} {getattr(a, f)} -> {getattr(b, f)}" for f in ("peer", "port", "compression", "auth", "index")
                   if getattr(a, f) != getattr(b, f)]
            if b.channel in replaced:
                why.append(f"channel '{b.channel}' is replaced")
            if why:
                changes.append(Change("restart", "route", name, ", ".join(why)))
    return changes
