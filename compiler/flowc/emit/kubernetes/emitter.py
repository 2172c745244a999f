"""Emitter ``kubernetes``: the plan as Kubernetes objects, one YAML file each at the top of the output.

``kubectl apply -f out/`` then runs every task (an Indexed Job and a headless Service) and every
actor node (a ConfigMap with its plan slice, a pinned Deployment running ``flowc launch`` with metrics
probes, a Service for the routes it receives, and with ``monitoring: podmonitor`` a PodMonitor).
Emits FLC504 (CPU ids cannot be pinned by Kubernetes, once per node, warning) and FLC508 (a node's plan ConfigMap
larger than Kubernetes accepts, measured exactly); names were checked by :mod:`flowc.emit.kubernetes.names` during
``flowc check``.
"""

from __future__ import annotations

from typing import Any

from flowc.diagnostics import Span
from flowc.emit.artifact import Artifact
from flowc.emit.kubernetes.configmap_size import check_configmap
from flowc.emit.kubernetes.datapath import node_objects, route_service
from flowc.emit.kubernetes.settings import Settings, k8s_name
from flowc.model.context import Context

__all__ = ["Settings", "emit"]
from flowc.emit.kubernetes.tasks import task_objects
from flowc.emit.yaml_dump import dump_yaml
from flowc.model.plan import Plan
from flowc.model.units import format_cpuset


def emit(plan: Plan, settings: Settings, ctx: Context) -> list[Artifact]:
    """Build every object of the plan and serialize each to ``<kind>-<name>.yaml``.

    Args:
        plan: The resolved plan.
        settings: The target's settings.
        ctx: The context (FLC504 warnings, FLC508 errors).

    Returns:
        The manifests.
    """
    objects: dict[tuple[str, str], dict[str, Any]] = {}

    def add(new: list[dict[str, Any]]) -> None:
        for obj in new:
            key = (obj["kind"], obj["metadata"]["name"])
            if key in objects:  # check_kubernetes_names reports collisions before any build
                raise ValueError(f"two kubernetes objects named {key}")
            objects[key] = obj

    for task_name, task in plan.tasks.items():
        add(task_objects(task, k8s_name(task_name), settings))
    slices = plan.slices({node: settings.service_host(route_service(k8s_name(node))) for node in plan.nodes})
    for node_name, node in plan.nodes.items():
        built = node_objects(slices[node_name], node_name, k8s_name(node_name), settings)
        for obj in built:
            if obj["kind"] == "ConfigMap":
                check_configmap(obj["data"], node_name, node.span or Span(ctx.path, 1, 1), ctx)
        add(built)
        if node.actors:
            cpus = sorted({cpu for actor in node.actors.values() for cpu in actor.cpus} | set(node.bridge_cpus))
            ctx.warn("FLC504", f"kubernetes cannot pin cpu ids: '{node_name}' gets {len(cpus)} exclusive cpus from "
                     f"the static cpu manager, and the launcher maps cpus {format_cpuset(cpus)} onto them",
                     at=node.span or Span(ctx.path, 1, 1),
                     help=f"run the kubelet on '{node.hostname}' with cpuManagerPolicy: static "
                     "(and topologyManagerPolicy: single-numa-node to keep numa placement)")
    return [Artifact(f"{kind.lower()}-{name}.yaml", dump_yaml(obj)) for (kind, name), obj in sorted(objects.items())]
