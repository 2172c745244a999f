"""Emitter ``mithril``: ``mithril/<task>.json`` (the body of ``POST /v2/spot/bids``) and ``<task>.explain.txt``.

Region and limit price were chosen by the ``choose_offers`` pass (the task's ``offer``); this target builds the
request body from them: project (``--project``, the document's ``mithril.project``, ``MITHRIL_PROJECT``, else
the placeholder ``${MITHRIL_PROJECT}`` resolved at submission, FLC510), SSH keys (none is FLC511), volumes, the
startup script (past Mithril's limit even compressed: FLC513) and the ``placement_spec`` the design translates
the topology into. ``CreateBidRequest`` has no ``placement_spec``, so the explanation says which requested
properties Mithril enforces and which it does not (FLC515 names the latter). With ``--resolve`` names become ids
through the API (FLC514 when one has none).
"""

from __future__ import annotations

import json
from typing import Any

from flowc.diagnostics import Span
from flowc.emit.artifact import Artifact
from flowc.emit.mithril.script import PLAIN_LIMIT, SCRIPT_LIMIT, compress_script, render_script
from flowc.emit.mithril.settings import Settings
from flowc.model.context import Context
from flowc.model.plan import Plan, TaskPlan

__all__ = ["Settings", "emit", "placement_spec"]

PROJECT_PLACEHOLDER = "${MITHRIL_PROJECT}"


def emit(plan: Plan, settings: Settings, ctx: Context) -> list[Artifact]:
    """Build every task's bid body and its explanation.

    Args:
        plan: The plan, with each task's offer.
        settings: The target's settings.
        ctx: The context (FLC510, FLC511, FLC513, FLC514, FLC515; ``MITHRIL_PROJECT`` from its environment).

    Returns:
        Two files per task.
    """
    out = []
    for name, task in sorted(plan.tasks.items()):
        body, explain = _bid(plan, task, settings, ctx)
        text = json.dumps(body, sort_keys=True, indent=2, ensure_ascii=False) + "\n"
        out.append(Artifact(f"mithril/{name}.json", text.encode()))
        lines = "".join(f"{line}\n" for line in (f"bid for task '{name}'", *explain))
        out.append(Artifact(f"mithril/{name}.explain.txt", lines.encode()))
    return out


def _bid(plan: Plan, task: TaskPlan, settings: Settings, ctx: Context) -> tuple[dict[str, Any], list[str]]:
    where = task.span or Span(ctx.path, 1, 1)
    offer = task.offer
    if offer is None:
        raise ValueError(f"task '{task.name}' reached the mithril target without an offer")
    explain = list(offer.reasons)
    project = settings.project or ctx.environ.get("MITHRIL_PROJECT")
    if not project:
        project = PROJECT_PLACEHOLDER
        ctx.warn("FLC510", f"the bid of task '{task.name}' carries the placeholder '{PROJECT_PLACEHOLDER}'",
                 at=where, help="set 'mithril: {project: ...}', pass --project, or export MITHRIL_PROJECT")
    explain.append(f"project: {project}")
    if not task.ssh_keys:
        ctx.warn("FLC511", f"task '{task.name}' has no ssh_keys: its instances boot, but nobody can log in",
                 at=where, help="add 'ssh_keys: [sshkey_...]'")
    explain += _enforcement(task, offer.region, ctx, where)
    script, encoding = _startup_script(plan.source, task, ctx, where)
    explain.append(f"startup script: {len(script)} characters, {encoding}")
    launch: dict[str, Any] = {"volumes": [v.volume_id or v.name for v in task.volumes],
                              "ssh_keys": list(task.ssh_keys), "startup_script": script}
    for key in ("image_version", "kubernetes_cluster"):
        if getattr(settings, key) is not None:
            launch[key] = getattr(settings, key)
    if settings.memory_gb is not None:
        # JSON Schema counts 16.0 as an integer; the API wants 16, not 16.0.
        launch["memory_gb"] = int(settings.memory_gb)
    body: dict[str, Any] = {
        "project": project, "region": offer.region, "instance_type": task.instance.name,
        "limit_price": f"${offer.limit_price:.2f}", "instance_quantity": task.num_instances, "name": task.name,
        "launch_specification": launch, "placement_spec": placement_spec(task),
    }
    if settings.notification_email is not None:
        body["notification_email"] = settings.notification_email
    if settings.resolver is not None and project != PROJECT_PLACEHOLDER:
        try:
            body = settings.resolver.resolve(body)
            explain.append("identifiers: resolved to ids through the API (--resolve)")
        except Exception as exc:  # noqa: BLE001 - the resolver's API and lookup errors all become FLC514
            ctx.error("FLC514", f"cannot resolve the bid of task '{task.name}': {exc}", at=where,
                      help=getattr(exc, "help", None) or "check the names against your Mithril account")
    else:
        explain.append("identifiers: names, resolved to ids at submission (instance-type ids differ per region)")
    return body, explain


def placement_spec(task: TaskPlan) -> dict[str, Any]:
    """Translate the topology as the design's ``_translate_topology`` does, plus what it drops.

    packed → ``affinity: cluster``; spread → ``anti_affinity: true``; cluster → ``affinity: balanced``;
    intranode → ``gpu_interconnect``; internode → ``network_tier``; same_zone → ``zone_affinity: required``;
    same_rack → ``rack_affinity: required``; ``max_distance``, ``min_bandwidth_gbps`` and
    ``anti_affinity_groups`` are carried as they are.

    Args:
        task: The task.

    Returns:
        The ``placement_spec`` object.
    """
    topo = task.topology
    spec: dict[str, Any] = dict({"packed": {"affinity": "cluster"}, "spread": {"anti_affinity": True},
                                 "cluster": {"affinity": "balanced"}}[topo.placement])
    if topo.intranode != "any":
        spec["gpu_interconnect"] = topo.intranode
    if topo.internode != "any":
        spec["network_tier"] = topo.internode
    if topo.same_zone:
        spec["zone_affinity"] = "required"
    if topo.same_rack:
        spec["rack_affinity"] = "required"
    if topo.max_distance:
        spec["max_distance"] = topo.max_distance
    if topo.min_bandwidth_gbps is not None:
        spec["min_bandwidth_gbps"] = topo.min_bandwidth_gbps
    if topo.anti_affinity_groups:
        spec["anti_affinity_groups"] = list(topo.anti_affinity_groups)
    return spec


def _unenforced(task: TaskPlan) -> list[str]:
    """The topology ``task`` asks for beyond the defaults that Mithril does not enforce, as ``key: value`` each.

    Mithril allocates a bid's instances together in its region and nothing more. How they sit relative to each
    other matters only with two of them or more; ``anti_affinity_groups`` (relative to other tasks) always does.
    The GPU link inside an instance comes with the instance type, which Mithril does enforce.
    """
    topo = task.topology
    found = []
    if task.num_instances > 1:
        if topo.placement != "packed":
            found.append(f"placement: {topo.placement}")
        if topo.internode != "any":
            found.append(f"internode: {topo.internode}")
        if topo.min_bandwidth_gbps is not None:
            found.append(f"min_bandwidth_gbps: {topo.min_bandwidth_gbps:g}")
        if topo.same_zone:
            found.append("same_zone: true")
        if topo.same_rack:
            found.append("same_rack: true")
        if topo.max_distance:
            found.append(f"max_distance: {topo.max_distance}")
    if topo.anti_affinity_groups:
        found.append(f"anti_affinity_groups: [{', '.join(topo.anti_affinity_groups)}]")
    return found


def _enforcement(task: TaskPlan, region: str, ctx: Context, where: Span) -> list[str]:
    """Explain what Mithril enforces of the task's request and what it does not; FLC515 for the latter."""
    count = task.num_instances
    instances = f"{count} instances, allocated all together or not at all" if count > 1 else "1 instance"
    enforced = [f"region {region}", instances]
    if task.topology.intranode != "any":
        enforced.append(f"intranode {task.topology.intranode} (it comes with the instance type)")
    lines = ["mithril enforces: " + "; ".join(enforced)]
    ignored = _unenforced(task)
    if ignored:
        lines.append(f"mithril does not enforce: {'; '.join(ignored)} (sent in placement_spec, which its "
                     "CreateBidRequest does not define)")
        listed = ", ".join(f"'{item}'" for item in ignored)
        ctx.warn("FLC515", f"mithril does not enforce the topology task '{task.name}' asks for: {listed}", at=where,
                 help=f"mithril enforces the region and {instances}; for enforced placement, run the task "
                 "from the kubernetes output")
    return lines


def _startup_script(source: str, task: TaskPlan, ctx: Context, where: Span) -> tuple[str, str]:
    script = render_script(source, task)
    if len(script) <= PLAIN_LIMIT:
        return script, "plain"
    packed = compress_script(script)
    if len(packed) <= PLAIN_LIMIT:
        return packed, "gzip+base64"
    ctx.error("FLC513", f"the startup script of task '{task.name}' is {len(packed)} characters even compressed, "
              f"{len(packed) - PLAIN_LIMIT} over flowc's limit of {PLAIN_LIMIT} (Mithril takes {SCRIPT_LIMIT})",
              at=where, help="move large env values or the command into the image, or fetch them at start")
    return packed, "gzip+base64"
