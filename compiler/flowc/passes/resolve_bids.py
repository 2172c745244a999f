"""Pass ``resolve_bids``: Plan → Plan with a spot bid per task (``plan.bids``), every choice with its reason.

Prices come only through the pricing interface the driver hands in (``ctx.options["pricing"]``, a
:class:`~flowc.providers.mithril.provider.MithrilProvider` when ``flowc build --prices`` asks for one), so a
default build stays deterministic. Region: the task's, else :func:`select_region` over the offers, else
the default region (FLC512). Limit price, per instance-hour: the task's ``max_price_per_hour``, else the
recommendation from price history, else the priority tier table per GPU-hour × GPUs (the Flow SDK's
defaults). Project: ``--project``, the document's ``mithril.project``, ``MITHRIL_PROJECT``, else the
placeholder ``${MITHRIL_PROJECT}`` resolved at submission (FLC510). No ``ssh_keys`` is FLC511. The startup
script runs the task's command in its image; past the API's 10,000 characters it is sent as a
gzip+base64 self-extracting script, and past that again the build fails (FLC513).
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import shlex

from flowc.diagnostics import Context
from flowc.model.plan import BidPlan, Plan, TaskPlan

#: USD per GPU-hour by priority (Flow SDK ``DEFAULT_PRICING`` / 3.x ``pricing.json``).
TIER_PRICES = {
    "h100": (4, 8, 16), "a100": (3, 6, 12), "a10": (1, 2, 4), "t4": (0.5, 1, 2), "h200": (5, 10, 20),
    "b200": (6, 12, 24), "v100": (0.8, 1.6, 3.2), "default": (2, 4, 8),
}
DEFAULT_REGION = "us-central5-a"
SCRIPT_LIMIT = 10_000
#: Scripts up to this size go as they are; the margin keeps room for the API's own wrapping.
PLAIN_LIMIT = 9_500
PROJECT_PLACEHOLDER = "${MITHRIL_PROJECT}"


def resolve_bids(plan: Plan, ctx: Context) -> Plan:
    """Decide every task's bid.

    Args:
        plan: The plan.
        ctx: The context (``options``: ``project``; ``environ``: ``MITHRIL_PROJECT``).

    Returns:
        The plan with ``bids``.
    """
    settings = plan.targets.get("mithril", {})
    bids = {name: _bid(plan, task, settings, ctx) for name, task in plan.tasks.items()}
    return plan.model_copy(update={"bids": bids})


def _bid(plan: Plan, task: TaskPlan, settings: dict, ctx: Context) -> BidPlan:
    where = ctx.span_of(("tasks", task.name)) if ("tasks", task.name) in getattr(ctx.document, "key_spans", {}) \
        else ctx.span_of(("name",))
    explain = []
    pricing = ctx.options.get("pricing")
    region, region_source = task.region, "document"
    if region is None and pricing is not None:
        chosen = select_region(pricing.get_spot_prices([task.instance.name]), task.num_instances)
        if chosen is not None:
            region, region_source = chosen.region, "prices"
            explain.append(f"region choice: most capacity ({chosen.availability}), then lowest price "
                           f"(${chosen.price_per_hour:.2f}) among the offers for {task.instance.name}")
    if region is None:
        region, region_source = DEFAULT_REGION, "default"
        ctx.warn("FLC512", f"task '{task.name}' names no region and no price data is at hand; its bid uses "
                 f"'{region}'", at=where, help="set 'region', or build where the pricing store has observations")
    explain.append(f"region: {region} ({region_source})")
    advice = None
    if task.max_price_per_hour is None and pricing is not None:
        advice = pricing.recommend_limit_price(task.instance.name, region)
    if task.max_price_per_hour is not None:
        price, price_source = task.max_price_per_hour, "document"
        explain.append(f"limit price: ${price:.2f}/instance-hour from max_price_per_hour")
    elif advice is not None:
        price, price_source = advice.price, "history"
        explain.append(f"limit price: ${price:.2f}/instance-hour recommended from price history: {advice.rationale}")
    else:
        tiers = TIER_PRICES.get(task.instance.gpu, TIER_PRICES["default"])
        per_gpu = tiers[("low", "med", "high").index(task.priority)]
        price, price_source = per_gpu * task.instance.gpu_count, "priority-tier"
        explain.append(f"limit price: ${price:.2f}/instance-hour = {task.priority} tier ${per_gpu:g}/GPU-hour × "
                       f"{task.instance.gpu_count} GPUs ({task.instance.gpu})")
    project = ctx.options.get("project") or settings.get("project") or ctx.environ.get("MITHRIL_PROJECT")
    if not project:
        project = PROJECT_PLACEHOLDER
        ctx.warn("FLC510", f"the bid of task '{task.name}' carries the placeholder '{PROJECT_PLACEHOLDER}'",
                 at=where, help="set 'mithril: {project: ...}', pass --project, or export MITHRIL_PROJECT")
    explain.append(f"project: {project}")
    if not task.ssh_keys:
        ctx.warn("FLC511", f"task '{task.name}' has no ssh_keys: its instances boot, but nobody can log in",
                 at=where, help="add 'ssh_keys: [sshkey_...]'")
    script, encoding = _startup_script(plan, task, ctx, where)
    explain.append(f"startup script: {len(script)} characters, {encoding}")
    launch = {"volumes": [v.volume_id or v.name for v in task.volumes], "ssh_keys": list(task.ssh_keys),
              "startup_script": script}
    for key in ("image_version", "kubernetes_cluster", "memory_gb"):
        if key in settings:
            launch[key] = settings[key]
    body = {
        "project": project, "region": region, "instance_type": task.instance.name, "limit_price": f"${price:.2f}",
        "instance_quantity": task.num_instances, "name": task.name, "launch_specification": launch,
        "placement_spec": placement_spec(task),
    }
    if "notification_email" in settings:
        body["notification_email"] = settings["notification_email"]
    resolver = ctx.options.get("resolver")
    if resolver is not None and project != PROJECT_PLACEHOLDER:
        try:
            body = resolver.resolve(body)
            explain.append("identifiers: resolved to ids through the API (--resolve)")
        except Exception as exc:  # noqa: BLE001 - the resolver's API and lookup errors all become FLC514
            ctx.error("FLC514", f"cannot resolve the bid of task '{task.name}': {exc}", at=where,
                      help=getattr(exc, "help", None) or "check the names against your Mithril account")
    else:
        explain.append("identifiers: names, resolved to ids at submission (instance-type ids differ per region)")
    return BidPlan(body=body, region_source=region_source, limit_price_source=price_source,
                   startup_script_encoding=encoding, explain=tuple(explain))


def select_region(offers: list, quantity: int) -> object | None:
    """The region policy of the providers design: most available capacity first, lowest price on a tie.

    Offers that say they cannot hold ``quantity`` instances are skipped (multi-instance bids are all or
    nothing); offers that do not say are kept last.

    Args:
        offers: Spot prices (``region``, ``price_per_hour``, ``availability``) of one instance type.
        quantity: Instances the bid asks for.

    Returns:
        The chosen offer, or ``None`` when there is none.
    """
    usable = [o for o in offers if o.availability is None or o.availability >= quantity]
    if not usable:
        return None
    return min(usable, key=lambda o: (-(o.availability or 0), o.price_per_hour, o.region))


def placement_spec(task: TaskPlan) -> dict:
    """Translate the topology as the design's ``_translate_topology`` does, plus what it drops.

    packed → ``affinity: cluster``; spread → ``anti_affinity: true``; cluster → ``affinity: balanced``;
    intranode → ``gpu_interconnect``; internode → ``network_tier``; same_zone → ``zone_affinity: required``;
    same_rack → ``rack_affinity: required``; ``max_distance``, ``min_bandwidth_gbps`` and
    ``anti_affinity_groups`` are carried as they are.
    """
    topo = task.topology
    spec: dict = {"packed": {"affinity": "cluster"}, "spread": {"anti_affinity": True},
                  "cluster": {"affinity": "balanced"}}[topo.placement]
    spec = dict(spec)
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


def render_script(source: str, task: TaskPlan) -> str:
    """The plain startup script: the task's env exported, its command run in its image; all values quoted."""
    lines = ["#!/bin/bash", f"# Generated by flowc from {shlex.quote(source)} for task {task.name}; do not edit.",
             "set -euo pipefail"]
    env = sorted(task.env.items())
    lines += [f"export {key}={shlex.quote(value)}" for key, value in env]
    if isinstance(task.command, str):
        argv = ["bash", "-c", task.command]
    else:
        argv = list(task.command or ())
    if task.image:
        flags = "".join(f" -e {key}" for key, _ in env)
        lines.append(f"exec docker run --rm --gpus all --network host --ipc host{flags} {shlex.quote(task.image)}"
                     + "".join(f" {shlex.quote(arg)}" for arg in argv))
    elif argv:
        lines.append("exec " + " ".join(shlex.quote(arg) for arg in argv))
    return "\n".join(lines) + "\n"


def compress_script(script: str) -> str:
    """A self-extracting form of ``script``: gzip + base64, checked against its SHA-256 before it runs."""
    payload = base64.b64encode(gzip.compress(script.encode(), mtime=0)).decode()
    digest = hashlib.sha256(script.encode()).hexdigest()
    return ("#!/bin/bash\nset -euo pipefail\n"
            f"payload='{payload}'\n"
            'f="$(mktemp)"\n'
            'printf %s "$payload" | base64 -d | gunzip > "$f"\n'
            f'echo "{digest}  $f" | sha256sum -c --quiet -\n'
            'exec bash "$f"\n')


def _startup_script(plan: Plan, task: TaskPlan, ctx: Context, where) -> tuple[str, str]:
    script = render_script(plan.source, task)
    if len(script) <= PLAIN_LIMIT:
        return script, "plain"
    packed = compress_script(script)
    if len(packed) <= PLAIN_LIMIT:
        return packed, "gzip+base64"
    ctx.error("FLC513", f"the startup script of task '{task.name}' is {len(packed)} characters even compressed, "
              f"{len(packed) - PLAIN_LIMIT} over flowc's limit of {PLAIN_LIMIT} (Mithril takes {SCRIPT_LIMIT})",
              at=where, help="move large env values or the command into the image, or fetch them at start")
    return packed, "gzip+base64"
