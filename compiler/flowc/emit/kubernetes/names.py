"""Names the Kubernetes output will use, checked before anything is built (part of ``flowc check``).

A task becomes a Job and a Service named after it; a node becomes a Deployment, a ``-plan``
ConfigMap and a ``-routes`` Service, and its route keys (from ``flowc keys generate``) a ``-route-keys``
Secret; its PodMonitor (``monitoring: podmonitor``) takes the Deployment's name, so needs no check of its own.
Emits FLC505 (a name or hostname Kubernetes refuses), FLC503 (two flowc names that become one Kubernetes
name, reported at the second) and FLC507 (a metrics address on loopback, which probes cannot reach; warning).
"""

from __future__ import annotations

from flowc.diagnostics import Span
from flowc.emit.kubernetes.settings import k8s_name, valid_dns_label
from flowc.model import ir
from flowc.model.context import Context

ROUTES_SUFFIX = "-routes"
PLAN_SUFFIX = "-plan"
KEYS_SUFFIX = "-route-keys"
#: The key of a node's ConfigMap that holds its plan slice (the file the launcher reads in the mount).
PLAN_KEY = "plan.json"


def object_names(kind: str, name: str) -> list[tuple[str, str]]:
    """The ``(kind, name)`` of every object a task or node called ``name`` becomes.

    Example:
        >>> object_names("node", "edge")
        [('Deployment', 'edge'), ('ConfigMap', 'edge-plan'), ('Service', 'edge-routes'), ('Secret', 'edge-route-keys')]
    """
    if kind == "task":
        return [("Job", name), ("Service", name)]
    return [("Deployment", name), ("ConfigMap", name + PLAN_SUFFIX), ("Service", name + ROUTES_SUFFIX),
            ("Secret", name + KEYS_SUFFIX)]


def check_kubernetes_names(spec: ir.Spec, ctx: Context) -> None:
    """Report every task or node whose Kubernetes names are invalid or taken.

    Args:
        spec: The IR.
        ctx: The context that collects diagnostics.
    """
    taken: dict[tuple[str, str], str] = {}
    sources: list[tuple[str, str, Span]] = [("task", t.name, t.span) for t in spec.tasks]
    sources += [("node", n.name, n.span) for n in spec.nodes]
    for node in spec.nodes:
        if node.metrics_address is not None and _loopback(node.metrics_address):
            ctx.warn("FLC507", f"node '{node.name}' serves its metrics on {node.metrics_address}, which the kubelet's "
                     "probes and Prometheus cannot reach in a pod", at=node.at("metrics"),
                     help="leave metrics.address out (0.0.0.0) for Kubernetes; loopback suits a bare-metal host")
        if len(node.hostname) > 63:
            ctx.error("FLC505", f"hostname '{node.hostname}' of '{node.name}' is longer than a kubernetes label value "
                      "(63)", at=node.at("hostname"), help="use the node's short name, as its kubernetes.io/hostname "
                      "label has it")
    for kind, identifier, span in sources:
        name = k8s_name(identifier)
        room = 0 if kind == "task" else max(len(ROUTES_SUFFIX), len(KEYS_SUFFIX))
        if not valid_dns_label(name) or len(name) + room > 63:
            ctx.error("FLC505", f"{kind} '{identifier}' cannot be a kubernetes name ('{name}')", at=span,
                      help=f"use at most {63 - room} characters, ending in a letter or digit")
            continue
        clash = next((key for key in object_names(kind, name) if key in taken), None)
        if clash is not None:
            ctx.error("FLC503", f"{kind} '{identifier}' becomes {clash[0]} '{clash[1]}', like {taken[clash]}",
                      at=span, help="names that differ only in '_' versus '-' collide in kubernetes; rename one")
            continue
        taken.update(dict.fromkeys(object_names(kind, name), f"{kind} '{identifier}'"))


def _loopback(address: str) -> bool:
    import ipaddress

    try:
        return ipaddress.ip_address(address).is_loopback
    except ValueError:
        return False
