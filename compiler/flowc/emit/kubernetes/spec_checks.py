"""What the Kubernetes target would refuse, found on the IR by ``flowc check`` before anything is built.

Runs the name checks (:mod:`.names`: FLC503, FLC505, FLC507) and the plan ConfigMap size check
(:mod:`.configmap_size`: FLC508). Like them, it loads nothing the build alone needs.
"""

from __future__ import annotations

from flowc.emit.kubernetes.configmap_size import check_configmap_sizes
from flowc.emit.kubernetes.names import check_kubernetes_names
from flowc.model import ir
from flowc.model.context import Context


def check_kubernetes(spec: ir.Spec, ctx: Context) -> None:
    """Report every name Kubernetes refuses and every node whose plan ConfigMap is sure to be too large.

    Args:
        spec: The checked IR.
        ctx: The context that collects diagnostics.
    """
    check_kubernetes_names(spec, ctx)
    check_configmap_sizes(spec, ctx)
