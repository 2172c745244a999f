"""Target ``graph``: the plan's placement as Graphviz DOT (machines, NUMA domains, actors, channels by transport).

Off by default in ``flowc build`` (``--target graph`` writes ``flowc/graph.dot``); ``flowc graph`` prints it or
renders it with Graphviz.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from flowc.emit.artifact import Artifact
from flowc.emit.settings import NoSettings as Settings
from flowc.model.context import Context
from flowc.model.plan import Plan
from flowc.model.units import format_size

__all__ = ["Settings", "emit", "render_dot", "render_image"]
GRAPH_PATH = "flowc/graph.dot"

#: Edge colour per transport; cross-NUMA shared memory gets its own.
COLORS = {"shm": "#2e7d32", "shm-cross-numa": "#ef6c00", "tcp": "#1565c0"}


def _q(text: str) -> str:
    r"""Quote ``text`` as a DOT string: ``\`` and ``"`` escaped once, a line break written as DOT's ``\n``.

    Example:
        >>> print(_q('a "b"\nc\\d'))
        "a \"b\"\nc\\d"
    """
    escaped = text.replace("\\", "\\\\").replace('"', '\\"')
    return '"' + escaped.replace("\r", "").replace("\n", "\\n") + '"'


def render_dot(plan: Plan) -> str:
    """Return the placement graph as DOT text (deterministic).

    Args:
        plan: The resolved plan.

    Returns:
        A ``digraph`` with one cluster per machine and one per NUMA domain.
    """
    lines = ["digraph flowc {", "  rankdir=LR;", "  node [fontname=Helvetica, fontsize=10];",
             "  edge [fontname=Helvetica, fontsize=9];"]
    for name, node in sorted(plan.nodes.items()):
        lines.append(f"  subgraph {_q('cluster_' + name)} {{")
        lines.append(f"    label={_q(f'{name} ({node.hostname})')}; style=rounded;")
        domains = sorted({a.numa for a in node.actors.values()} | {c.numa for c in node.channels.values()},
                         key=lambda n: (n is None, n))
        for numa in domains:
            indent = "    "
            if numa is not None:
                lines.append(f"    subgraph {_q(f'cluster_{name}_numa{numa}')} {{")
                lines.append(f"      label={_q(f'numa {numa}')}; style=dashed;")
                indent = "      "
            for actor, info in sorted(node.actors.items()):
                if info.numa == numa:
                    label = f"{actor}\n{info.role} cpu {info.cpuset}"
                    lines.append(f"{indent}{_q(name + '/' + actor)} [shape=box, label={_q(label)}];")
            for channel, info in sorted(node.channels.items()):
                if info.numa == numa:
                    shared = " shared" if info.delivery == "shared" else ""
                    label = f"{channel}\n{info.type} {format_size(info.buffer_size)}{shared}"
                    lines.append(f"{indent}{_q(name + '/#' + channel)} [shape=cylinder, label={_q(label)}];")
            if numa is not None:
                lines.append("    }")
        lines.append("  }")
    cross = {(link.producer_node, link.channel, link.consumer) for link in plan.links if link.cross_numa}
    for name, node in sorted(plan.nodes.items()):
        for channel, info in sorted(node.channels.items()):
            chan = _q(name + "/#" + channel)
            for producer in info.producers:
                lines.append(f"  {_q(name + '/' + producer)} -> {chan} [color={_q(COLORS['shm'])}];")
            for consumer in info.consumers:
                kind = "shm-cross-numa" if (name, channel, consumer) in cross else "shm"
                lines.append(f"  {chan} -> {_q(name + '/' + consumer)} [color={_q(COLORS[kind])}];")
    for route_name, route in sorted(plan.routes.items()):
        for target in route.targets:
            label = f"{route_name}\ntcp:{route.port} {route.compression}"
            lines.append(f"  {_q(route.source_node + '/#' + route.channel)} -> {_q(target + '/#' + route.channel)}"
                         f" [color={_q(COLORS['tcp'])}, style=bold, label={_q(label)}];")
    lines.append("}")
    return "\n".join(lines) + "\n"


def emit(plan: Plan, settings: Settings, ctx: Context) -> list[Artifact]:
    """Write the placement graph as ``flowc/graph.dot``.

    Args:
        plan: The resolved plan.
        settings: None to take.
        ctx: The context (unused).

    Returns:
        One artifact.
    """
    return [Artifact(GRAPH_PATH, render_dot(plan).encode("utf-8"))]


def render_image(dot: str, out: Path) -> str | None:
    """Render DOT to an image with Graphviz.

    Args:
        dot: The DOT text.
        out: The image path; its suffix picks the format.

    Returns:
        ``None`` on success, else what went wrong.
    """
    exe = shutil.which("dot")
    if exe is None:
        return "Graphviz 'dot' is not installed; write .dot instead, or install graphviz"
    proc = subprocess.run([exe, f"-T{out.suffix.lstrip('.')}", "-o", str(out)], input=dot.encode(),
                          capture_output=True, check=False)
    if proc.returncode != 0:
        return f"dot failed: {proc.stderr.decode(errors='replace').strip()}"
    return None
