"""``flowc launch``, ``run-actor``, ``run-bridge`` and ``channels``: running a node's data path."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click

from flowc.cli.common import EXIT_ERRORS, EXIT_OK, PLAN, guard
from flowc.cli.metrics import metrics_options


@click.command()
@click.argument("plan", type=PLAN)
@click.option("--node", required=True, help="The node of the plan to run.")
@click.option("--duration", type=click.FloatRange(min=0), help="Run this many seconds, then stop in order.")
@click.option("--report", "report_path", type=click.Path(dir_okay=False, path_type=Path),
              help="Write the run's report here as JSON.")
@click.option("--oversubscribe", is_flag=True,
              help="Run even when fewer cpus are available than the actors ask for (they then share cores).")
@click.option("--keys", "keys_dir", type=click.Path(exists=True, file_okay=False, path_type=str),
              help="Route keys: the folder 'flowc keys generate' wrote, or this node's part of it "
                   "(default: $FLOWC_KEYS_DIR, or systemd's credentials).")
@metrics_options
@click.option("--no-metrics", is_flag=True, help="Serve no metrics endpoint.")
@guard
def launch(plan: str, node: str, duration: float | None, report_path: Path | None, oversubscribe: bool,
           keys_dir: str | None, metrics_port: int | None, metrics_address: str | None, no_metrics: bool) -> int:
    """Run NODE's pinned shared-memory data path from PLAN (out/flowc/plan.json or a node slice).

    While it runs, /metrics (Prometheus), /healthz and /readyz are served on the node's metrics port.
    """
    import json

    from flowc.runtime.launcher import Launcher

    report = Launcher(plan, node, duration, oversubscribe=oversubscribe, keys_dir=keys_dir, metrics=not no_metrics,
                      metrics_port=metrics_port, metrics_address=metrics_address).run()
    if report_path is not None:
        report_path.write_text(json.dumps(report, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    if sys.stdout.isatty():
        from rich.console import Console

        from flowc.runtime.report import render_table

        Console().print(render_table(report))
    if report["failure"]:
        click.echo(f"flowc launch: error: stopped because {report['failure']}", err=True)
        return EXIT_ERRORS
    return EXIT_OK


@click.command("run-actor")
@click.argument("plan", type=PLAN)
@click.option("--node", required=True, help="The node the actor is placed on.")
@click.option("--actor", required=True, help="The actor to run.")
@guard
def run_actor_command(plan: str, node: str, actor: str) -> int:
    """Run one ACTOR of PLAN with its channels attached (the channels must exist)."""
    from flowc.runtime.actor_main import run_actor

    return run_actor(plan, node, actor)


@click.command("run-bridge", hidden=True)
@click.argument("plan", type=PLAN)
@click.option("--node", required=True)
@click.option("--route", required=True)
@click.option("--direction", type=click.Choice(["in", "out"]), required=True)
@click.option("--index", type=int, required=True)
@guard
def run_bridge_command(plan: str, node: str, route: str, direction: str, index: int) -> int:
    """Carry one leg of ROUTE over TCP (started by the launcher)."""
    from flowc.runtime.bridge_main import run_bridge

    return run_bridge(plan, node, route, direction, index)


def _node_layout(plan: str, node: str) -> Any:
    """The run-time layout of NODE in PLAN; an unknown node is the user's error (exit 1), not a bug."""
    from flowc.model.node_view import NodeView
    from flowc.runtime.actor_main import load_node

    return NodeView.of(load_node(plan, node), node)


@click.group()
def channels() -> None:
    """Create or remove a node's shared-memory channels (for actors run one by one, e.g. by systemd)."""


@channels.command("create")
@click.argument("plan", type=PLAN)
@click.option("--node", required=True)
@guard
def channels_create(plan: str, node: str) -> int:
    """Create NODE's channels from PLAN (after removing any a dead run left)."""
    from flowc.runtime import segments

    layout = _node_layout(plan, node)
    segments.reclaim(layout)
    rings = segments.create(layout)
    for ring in rings.values():
        ring.close()
    segments.make_report_dir(layout)  # where bridges and latency sinks publish their counters
    click.echo(f"flowc channels: created {len(rings)} channel(s) of '{node}'", err=True)
    return EXIT_OK


@channels.command("remove")
@click.argument("plan", type=PLAN)
@click.option("--node", required=True)
@guard
def channels_remove(plan: str, node: str) -> int:
    """Remove NODE's channels and their registry."""
    from flowc.runtime import segments

    layout = _node_layout(plan, node)
    segments.remove(layout, {})
    removed = segments.reclaim(layout)
    segments.remove_report_dir(layout)
    click.echo(f"flowc channels: removed {len(removed)} channel(s) of '{node}'", err=True)
    return EXIT_OK




@click.command("reload")
@click.argument("plan", type=PLAN)
@click.option("--node", required=True, help="The running node to change.")
@click.option("--timeout", type=click.FloatRange(min=0.1), default=120.0, show_default=True,
              help="Seconds to wait for the launcher's answer.")
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True)
@guard
def reload_command(plan: str, node: str, timeout: float, fmt: str) -> int:
    """Ask the launcher running NODE to apply PLAN, changing only what differs (see flowc diff)."""
    import json

    from flowc.runtime.reload import ask

    answer = ask(plan, node, timeout)
    if fmt == "json":
        click.echo(json.dumps(answer, indent=2, sort_keys=True))
    elif not answer["applied"]:
        click.echo(f"flowc reload: refused, nothing changed: {answer['why']}", err=True)
    else:
        for line in answer["changes"] or ["nothing to change"]:
            click.echo(line)
        for problem in answer["problems"]:
            click.echo(f"flowc reload: warning: {problem}", err=True)
        click.echo(f"applied in {answer['seconds']:.3f} s; {len(answer['untouched'])} process(es) untouched",
                   err=True)
    return EXIT_OK if answer["applied"] else EXIT_ERRORS
