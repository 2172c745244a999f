"""Emitter ``kubernetes``: the plan as Kubernetes objects, one YAML file each at the top of the output.

``kubectl apply -f out/`` then runs every task (an Indexed Job and a headless Service) and every
actor node (a ConfigMap with its plan slice, a pinned Deployment running ``flowc launch``, and a
Service for the routes it receives). Emits FLC503 (two objects get one name), FLC504 (CPU ids cannot be
pinned by Kubernetes, once per node, warning) and FLC505 (a name or label Kubernetes refuses).
"""

from __future__ import annotations

from typing import Any

from flowc.diagnostics import Context, Span
from flowc.emit import Artifact
from flowc.emit.kubernetes.datapath import node_objects, route_service
from flowc.emit.kubernetes.settings import Settings, k8s_name, valid_dns_label
from flowc.emit.kubernetes.tasks import task_objects
from flowc.emit.yaml_dump import dump_yaml
from flowc.plan import Plan
from flowc.units import format_cpuset


def emit_kubernetes(plan: Plan, ctx: Context) -> list[Artifact]:
    """Build every object of the plan and serialize each to ``<kind>-<name>.yaml``.

    Args:
        plan: The resolved plan.
        ctx: The context (its ``options`` may carry ``namespace``).

    Returns:
        The manifests.
    """
    settings = Settings.load(plan.targets.get("kubernetes", {}), ctx.options, plan.source)
    objects: dict[tuple[str, str], tuple[dict[str, Any], Span]] = {}

    def add(new: list[dict[str, Any]], where: Span, source: str) -> None:
        for obj in new:
            key = (obj["kind"], obj["metadata"]["name"])
            if key in objects:
                ctx.error("FLC503", f"{source} becomes {obj['kind']} '{key[1]}', which another name already became",
                          at=where, help="names that differ only in '_' versus '-' collide in kubernetes; rename one")
                return
        objects.update({(obj["kind"], obj["metadata"]["name"]): (obj, where) for obj in new})

    # Document order, so that a collision is reported at the second of the two names.
    for task_name, task in plan.tasks.items():
        where = _task_span(ctx, task_name)
        name = _checked_name(ctx, task_name, where, "task")
        if name:
            add(task_objects(task, name, settings), where, f"task '{task_name}'")
    peers = {node: settings.service_host(route_service(k8s_name(node))) for node in plan.nodes}
    for node_name, node in plan.nodes.items():
        where = ctx.span_of(("nodes", node_name))
        name = _checked_name(ctx, node_name, where, "node", suffix_room=len("-routes"))
        if not name:
            continue
        if len(node.hostname) > 63:
            ctx.error("FLC505", f"hostname '{node.hostname}' of '{node_name}' is longer than a label value (63)",
                      at=ctx.span_of(("nodes", node_name, "hostname")), help="use the node's short name")
            continue
        add(node_objects(plan, node_name, name, settings, peers), where, f"node '{node_name}'")
        if node.actors:
            cpus = sorted({cpu for actor in node.actors.values() for cpu in actor.cpus})
            ctx.warn("FLC504", f"kubernetes cannot pin cpu ids: '{node_name}' gets {len(cpus)} exclusive cpus from "
                     f"the static cpu manager, and the launcher maps cpus {format_cpuset(cpus)} onto them",
                     at=where, help=f"run the kubelet on '{node.hostname}' with cpuManagerPolicy: static "
                     "(and topologyManagerPolicy: single-numa-node to keep numa placement)")
    return [Artifact(f"{kind.lower()}-{name}.yaml", dump_yaml(obj))
            for (kind, name), (obj, _) in sorted(objects.items())]


def _task_span(ctx: Context, task: str) -> Span:
    keys = getattr(ctx.document, "key_spans", {})
    return ctx.span_of(("tasks", task) if ("tasks", task) in keys else ("name",))


def _checked_name(ctx: Context, identifier: str, where: Span, what: str, suffix_room: int = 0) -> str | None:
    name = k8s_name(identifier)
    if not valid_dns_label(name) or len(name) + suffix_room > 63:
        ctx.error("FLC505", f"{what} '{identifier}' cannot be a kubernetes name ('{name}')", at=where,
                  help=f"use at most {63 - suffix_room} characters, ending in a letter or digit")
        return None
    return name
