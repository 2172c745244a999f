"""Pass ``check_tasks``: Spec → Spec, checking each task's topology against the instance catalog.

Emits FLC330 (unknown instance type), FLC331 (NVLink beyond 8 GPUs per node, the design's own
validator), FLC332 (an RDMA fabric across regions), FLC333/FLC334 (bandwidth above, or not known
for, the instance's fabric), FLC335 (internode needs on one instance, warning), FLC336 (instance lacks
the interconnect), FLC337 (constraints that undo each other, warning), FLC338 (unknown region,
warning), FLC339 (duplicate task name) and FLC340 (block volume on several instances).
"""

from __future__ import annotations

from flowc.diagnostics.suggestions import help_for
from flowc.model import catalog, ir
from flowc.model.context import Context

NVLINK_MAX_GPUS = 8
_RDMA = ("infiniband", "roce")
_LEVEL = {"rack": 0, "zone": 1, "region": 2}


def check_tasks(spec: ir.Spec, ctx: Context) -> ir.Spec:
    """Check every task for feasibility.

    Args:
        spec: The IR.
        ctx: The context that collects diagnostics.

    Returns:
        The same spec.
    """
    seen: set[str] = set()
    for task in spec.tasks:
        if task.name in seen:
            ctx.error("FLC339", f"task '{task.name}' is declared twice", at=task.span,
                      help="the top-level task and the entries of 'tasks:' need distinct names")
        seen.add(task.name)
        _check_instance(task, ctx)
        _check_constraints(task, ctx)
        if task.region is not None and task.region not in catalog.regions():
            ctx.warn("FLC338", f"region '{task.region}' is not one flowc knows", at=task.at("region"),
                     help=help_for(task.region, catalog.regions()))
        for volume in task.volumes:
            if volume.interface == "block" and task.num_instances > 1:
                ctx.error("FLC340", f"block volume '{volume.name or volume.volume_id}' cannot attach to "
                          f"{task.num_instances} instances", at=volume.span,
                          help="use 'interface: file' for a volume shared by several instances")
    return spec


def _check_instance(task: ir.Task, ctx: Context) -> None:
    wanted = task.topology.interconnect
    found = catalog.lookup(task.instance_type)
    if found is None:
        guess = help_for(task.instance_type, catalog.names())
        ctx.error("FLC330", f"unknown instance type '{task.instance_type}'", at=task.at("instance_type"),
                  help=guess if guess.startswith("did you mean") else
                  "known types: " + ", ".join(catalog.short_names()) + ", or a Mithril name like 'h100-80gb.sxm.8x'")
        return
    if wanted.intranode == "nvlink" and found.gpu_count > NVLINK_MAX_GPUS:
        ctx.error("FLC331", f"nvlink is limited to {NVLINK_MAX_GPUS} gpus per node, '{task.instance_type}' has "
                  f"{found.gpu_count}", at=wanted.at("intranode"),
                  help=f"use at most {NVLINK_MAX_GPUS} gpus per instance and more instances, or 'intranode: pcie'")
        return
    if not found.known:
        sizes = [n for n in catalog.short_names() if (catalog.lookup(n) or found).gpu == found.gpu]
        ctx.error("FLC330", f"no {found.gpu_count}-gpu {found.gpu} instance type in the catalog",
                  at=task.at("instance_type"), help="known " + found.gpu + " types: " + ", ".join(sizes))
        return
    if wanted.intranode in ("nvlink", "pcie") and found.intranode != wanted.intranode:
        ctx.error("FLC336", f"'{task.instance_type}' links its gpus by {found.intranode}, not {wanted.intranode}",
                  at=wanted.at("intranode"), help="choose an instance type with that link, or 'intranode: any'")
    multi = task.num_instances > 1
    if not multi and (wanted.internode not in (None, "any") or wanted.min_bandwidth_gbps is not None):
        ctx.warn("FLC335", f"task '{task.name}' runs on one instance, so its internode requirement has no effect",
                 at=wanted.at("internode") if wanted.internode else wanted.at("min_bandwidth_gbps"),
                 help="remove it, or raise 'num_instances'")
        return
    _check_fabric(task, found, ctx)


def _check_fabric(task: ir.Task, found: catalog.InstanceType, ctx: Context) -> None:
    wanted = task.topology.interconnect
    if wanted.internode in _RDMA:
        if found.internode is None:
            ctx.warn("FLC334", f"the internode fabric of '{task.instance_type}' is unknown; {wanted.internode} "
                     "is not checked", at=wanted.at("internode"), help="prefer a full-node type such as '8xh100'")
        elif found.internode != "infiniband":
            ctx.error("FLC336", f"'{task.instance_type}' has no {wanted.internode} fabric "
                      f"(it has {found.internode})", at=wanted.at("internode"),
                      help="choose an instance type with an rdma fabric, or 'internode: ethernet'")
        if task.topology.constraints.max_distance == "region":
            ctx.error("FLC332", f"{wanted.internode} cannot span regions, but 'max_distance' is 'region'",
                      at=task.topology.constraints.at("max_distance"),
                      help="set 'max_distance: zone' (or tighter), or 'internode: ethernet'")
    if wanted.min_bandwidth_gbps is not None:
        if found.internode_gbps is None:
            ctx.warn("FLC334", f"the internode bandwidth of '{task.instance_type}' is unknown; "
                     f"{wanted.min_bandwidth_gbps:g} Gb/s is not checked", at=wanted.at("min_bandwidth_gbps"),
                     help="prefer a full-node type such as '8xa100' whose fabric is known")
        elif wanted.min_bandwidth_gbps > found.internode_gbps:
            ctx.error("FLC333", f"{wanted.min_bandwidth_gbps:g} Gb/s is more than the {found.internode_gbps:g} Gb/s "
                      f"fabric of '{task.instance_type}'", at=wanted.at("min_bandwidth_gbps"),
                      help=f"ask for at most {found.internode_gbps:g}, or choose a faster instance type")


def _check_constraints(task: ir.Task, ctx: Context) -> None:
    cons = task.topology.constraints
    if cons.max_distance is None:
        return
    for flag, level in (("same_rack", "rack"), ("same_zone", "zone")):
        if getattr(cons, flag) and _LEVEL[cons.max_distance] > _LEVEL[level]:
            ctx.warn("FLC337", f"'max_distance: {cons.max_distance}' is looser than '{flag}: true', which wins",
                     at=cons.at("max_distance"), help=f"remove 'max_distance', or set it to '{level}'")
            return
