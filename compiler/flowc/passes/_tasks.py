"""Normalize IR tasks into plan tasks: catalog row resolved, defaults filled, distance derived."""

from __future__ import annotations

from flowc.model import catalog, ir
from flowc.model.plan import TaskPlan, TopologyPlan, VolumePlan


def plan_task(task: ir.Task) -> TaskPlan:
    """Resolve one checked task.

    Args:
        task: A task that passed the semantic checks (its instance type is in the catalog).

    Returns:
        The normalized task.
    """
    found = catalog.lookup(task.instance_type)
    if found is None:
        raise ValueError(f"instance type '{task.instance_type}' passed the checks but is not in the catalog")
    topo = task.topology
    cons = topo.constraints
    return TaskPlan(
        span=task.span, name=task.name, instance_type=task.instance_type, instance=found,
        num_instances=task.num_instances, command=task.command, image=task.image, env=dict(task.env),
        region=task.region, max_price_per_hour=task.max_price_per_hour, priority=task.priority,
        max_run_time_hours=task.max_run_time_hours, ssh_keys=task.ssh_keys,
        volumes=tuple(VolumePlan(name=v.name, volume_id=v.volume_id, size_gb=v.size_gb,
                                 mount_path=v.mount_path or f"/volumes/{v.name or v.volume_id}",
                                 interface=v.interface) for v in task.volumes),
        topology=TopologyPlan(
            placement=topo.placement, intranode=topo.interconnect.intranode or "any",
            internode=topo.interconnect.internode or "any",
            min_bandwidth_gbps=topo.interconnect.min_bandwidth_gbps, same_zone=cons.same_zone,
            same_rack=cons.same_rack, max_distance=cons.max_distance, distance=distance(cons),
            anti_affinity_groups=tuple(sorted(cons.anti_affinity_groups)), group=task.name),
    )


def distance(cons: ir.Constraints) -> str | None:
    """Return the widest distance the constraints allow between instances (``None``: unconstrained).

    Example:
        >>> from flowc.diagnostics import Span
        >>> distance(ir.Constraints(span=Span("t", 1, 1), same_zone=True, max_distance="region"))
        'zone'
    """
    if cons.same_rack:
        return "rack"
    if cons.same_zone:
        return "zone" if cons.max_distance != "rack" else "rack"
    return cons.max_distance
