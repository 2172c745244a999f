"""Emitter ``systemd``: per node, ``systemd/<node>/`` with everything a bare-metal host needs.

That is a unit per actor and per route leg, a oneshot unit for the node's channels, a unit serving the node's
metrics (``flowc metrics``: ``/metrics``, ``/healthz`` and ``/readyz`` read from the channels), a target that
pulls them in, the node's plan slice and a README.

Units are rendered from jinja2 templates in ``templates/systemd`` with ``StrictUndefined``; every value
that is user text goes through :func:`env_assignment` or :func:`unit_text`, so quotes, ``%`` specifiers,
backslashes and newlines cannot break out of a directive. Units start in the node's start stages (``After=``
every unit of an earlier stage: readers before their writers); systemd stops them in reverse, so writers stop
first, readers drain, and the channels unit stops last.
"""

from __future__ import annotations

import re
from typing import Any

from flowc.emit.artifact import Artifact
from flowc.emit.settings import TargetSettings
from flowc.emit.templates import environment, renderer
from flowc.model.context import Context
from flowc.model.keys import public_file, secret_file
from flowc.model.node_view import NodeView
from flowc.model.plan import Plan
from flowc.model.units import format_cpuset

DEFAULT_USER = "flowc"
DEFAULT_FLOWC = "/usr/local/bin/flowc"


class Settings(TargetSettings):
    """The document's ``systemd:`` section and ``flowc build --flowc-path``.

    Attributes:
        user: The account actors run as.
        flowc_path: Absolute path of flowc on the hosts.
        plan_dir: Where the node's plan slice is installed (default ``/etc/flowc/<topology>``).
        keys_dir: Where the node's route keys are installed (default ``<plan_dir>/keys``); each bridge unit
            loads its two key files from there as credentials.
        topology: The name units carry, from the source file name.
    """

    user: str = DEFAULT_USER
    flowc_path: str = DEFAULT_FLOWC
    plan_dir: str
    keys_dir: str
    topology: str

    @classmethod
    def derive(cls, values: dict[str, Any], source: str) -> dict[str, Any]:
        """Name the topology after the source file; default the plan folder to ``/etc/flowc/<topology>``, keys within.

        Example:
            >>> settings = Settings.merged({}, {"flowc_path": None}, "multi-node.yaml")
            >>> settings.plan_dir, settings.keys_dir
            ('/etc/flowc/multi-node', '/etc/flowc/multi-node/keys')
        """
        topology = topology_name(source)
        plan_dir = values.get("plan_dir") or f"/etc/flowc/{topology}"
        return {"plan_dir": plan_dir, "keys_dir": f"{plan_dir}/keys", **values, "topology": topology}


def _escape(text: str) -> str:
    """Escape text for a double-quoted systemd value: backslash, quote, control characters, ``%``."""
    out = []
    for char in text:
        if char == "\\":
            out.append("\\\\")
        elif char == '"':
            out.append('\\"')
        elif char == "%":
            out.append("%%")
        elif char == "\n":
            out.append("\\n")
        elif char == "\t":
            out.append("\\t")
        elif ord(char) < 0x20 or ord(char) == 0x7F:
            out.append(f"\\x{ord(char):02x}")
        else:
            out.append(char)
    return "".join(out)


def env_assignment(key: str, value: str) -> str:
    r"""One ``Environment=`` value: the whole assignment double-quoted and escaped.

    Example:
        >>> env_assignment("MSG", 'say "hi" 100% \\ $HOME')
        '"MSG=say \\"hi\\" 100%% \\\\ $HOME"'
    """
    return f'"{key}={_escape(value)}"'


def unit_text(text: str) -> str:
    r"""Free text in a comment or description: one line, ``%`` doubled.

    Example:
        >>> unit_text("a%b\nc")
        'a%%b c'
    """
    return re.sub(r"[\x00-\x1f\x7f]+", " ", text).replace("%", "%%")


def topology_name(source: str) -> str:
    """The name units carry, from the document's file name.

    Example:
        >>> topology_name("multi-node.yaml")
        'multi-node'
    """
    stem = source.rsplit(".", 1)[0]
    return re.sub(r"[^A-Za-z0-9_-]+", "-", stem).strip("-") or "topology"


def emit(plan: Plan, settings: Settings, ctx: Context) -> list[Artifact]:
    """Render every node's units.

    Args:
        plan: The resolved plan.
        settings: The target's settings.
        ctx: The context (unused: every plan renders).

    Returns:
        The files under ``systemd/<node>/``.
    """
    topology, flowc, user, plan_dir = settings.topology, settings.flowc_path, settings.user, settings.plan_dir
    slices = plan.slices({name: node.hostname for name, node in plan.nodes.items()})
    env = environment("systemd", {"env_assignment": env_assignment, "unit_text": unit_text})
    actor_unit, bridge_unit = renderer(env, "actor.service.j2"), renderer(env, "bridge.service.j2")
    channels_unit, metrics_service = renderer(env, "channels.service.j2"), renderer(env, "metrics.service.j2")
    node_target, readme_text = renderer(env, "node.target.j2"), renderer(env, "README.j2")
    artifacts = []
    for node, info in plan.nodes.items():
        layout = NodeView.of(slices[node], node)
        folder = f"systemd/{node}"
        plan_path = f"{plan_dir}/{node}.plan.json"
        common = {"source": plan.source, "topology": topology, "node": node, "user": user, "flowc": flowc,
                  "plan": plan_path, "target": f"flowc-{topology}.target",
                  "channels_unit": f"flowc-{topology}-channels.service", "report_dir": layout.report_dir}
        stages: dict[str, int] = {}
        for actor in info.actors:
            stages[f"flowc-{topology}-{actor}.service"] = info.start_stages[actor]
        for bridge in layout.bridges:
            stages[f"flowc-{topology}-route-{bridge.route}-{bridge.direction}-{bridge.index}.service"] = bridge.stage
        ordered = sorted(stages.items(), key=lambda item: item[0])
        earlier: dict[int, list[str]] = {}

        def after(stage: int, ordered: list[tuple[str, int]] = ordered, earlier: dict[int, list[str]] = earlier
                  ) -> list[str]:
            if stage not in earlier:
                earlier[stage] = [unit for unit, other in ordered if other < stage]
            return list(earlier[stage])

        channel_numa = {name: c.numa for name, c in info.channels.items() if c.numa is not None}
        for actor, a in info.actors.items():
            foreign = sorted({channel_numa[ch] for ch in (*a.inputs, *a.outputs)
                              if ch in channel_numa and channel_numa[ch] != a.numa})
            text = actor_unit({
                **common, "actor": actor, "role": a.role, "after": after(info.start_stages[actor]),
                "cpus": format_cpuset(a.cpus).replace(",", " "),
                "numa": a.numa, "numa_preferred": bool(foreign), "foreign_numa": ", ".join(map(str, foreign)),
                "realtime_priority": a.realtime_priority,
                "memory_max": f"{a.memory_max}" if a.memory_max else None, "env": sorted(a.env.items())})
            artifacts.append(Artifact(f"{folder}/flowc-{topology}-{actor}.service", text.encode()))
        for bridge in layout.bridges:
            name = f"flowc-{topology}-route-{bridge.route}-{bridge.direction}-{bridge.index}.service"
            credentials = [secret_file(node), public_file(bridge.peer_node)] if bridge.auth == "curve" else []
            text = bridge_unit({
                **common, "route": bridge.route, "direction": bridge.direction, "index": bridge.index,
                "peer": bridge.peer, "peer_node": bridge.peer_node, "after": after(bridge.stage),
                "cpus": format_cpuset(info.bridge_cpus).replace(",", " ") if info.bridge_cpus else "",
                "credentials": [(c, f"{settings.keys_dir}/{c}") for c in credentials]})
            artifacts.append(Artifact(f"{folder}/{name}", text.encode()))
        artifacts.append(Artifact(f"{folder}/flowc-{topology}-channels.service", channels_unit(common).encode()))
        metrics_unit = f"flowc-{topology}-metrics.service"
        artifacts.append(Artifact(f"{folder}/{metrics_unit}", metrics_service(
            {**common, "address": info.metrics.address, "port": info.metrics.port}).encode()))
        all_units = sorted([common["channels_unit"], metrics_unit, *stages])
        artifacts.append(Artifact(f"{folder}/flowc-{topology}.target",
                                  node_target({**common, "units": all_units}).encode()))
        rows = [{"actor": actor, "role": a.role, "cpus": a.cpuset, "numa": "-" if a.numa is None else a.numa}
                for actor, a in sorted(info.actors.items())]
        readme = readme_text({**common, "hostname": info.hostname, "cpu_map": rows, "metrics_unit": metrics_unit,
                              "metrics": info.metrics, "keys": any(b.auth == "curve" for b in layout.bridges),
                              "keys_dir": settings.keys_dir})
        artifacts.append(Artifact(f"{folder}/README", readme.encode()))
        artifacts.append(Artifact(f"{folder}/plan.json", (slices[node].to_compact_json() + "\n").encode()))
    return artifacts
