"""Unit names the systemd output will use, checked before anything is built (part of ``flowc check``).

Each actor becomes ``flowc-<topology>-<actor>.service`` beside the node's own units: ``-channels`` (its rings),
``-metrics`` (its metrics endpoint) and ``-route-<route>-<in|out>-<index>`` (its route bridges). An actor named like
one of those would make two units of one file. Emits FLC506.
"""

from __future__ import annotations

import re

from flowc.model import ir
from flowc.model.context import Context

#: Actor names the node's own units take.
RESERVED = ("channels", "metrics")
_BRIDGE = re.compile(r"route-.+-(in|out)-[0-9]+")


def check_systemd_names(spec: ir.Spec, ctx: Context) -> None:
    """Report every actor whose unit name is one of its node's own units.

    Args:
        spec: The IR.
        ctx: The context that collects diagnostics.
    """
    actors = {actor.name: actor for actor in spec.actors}
    for node in spec.nodes:
        for placement in node.placements:
            name = placement.actor
            if name in RESERVED or _BRIDGE.fullmatch(name):
                at = actors[name].span if name in actors else placement.span
                ctx.error("FLC506", f"actor '{name}' on '{node.name}' would get the unit name of the node's own "
                          f"'{name}' unit", at=at,
                          help="rename the actor: 'channels', 'metrics' and 'route-<route>-<in|out>-<n>' are taken")
