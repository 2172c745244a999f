"""``flowc diff OLD NEW``: what a reload from one plan to another changes on each node, without a running node.

OLD and NEW are each a plan (``out/flowc/plan.json``, or a node slice) or a topology document, which is compiled
first (its errors are reported as ``flowc check`` reports them, exit 1). The list is the one a launcher applies
when it reloads (:mod:`flowc.model.plan_diff`): what is not listed keeps running untouched.
"""

from __future__ import annotations

import json
from pathlib import Path

import click

from flowc.cli.common import EXIT_ERRORS, EXIT_OK, guard
from flowc.diagnostics import UserError

SOURCE = click.Path(exists=True, dir_okay=False, readable=True, path_type=Path)


def node_slices(path: Path) -> dict:
    """Each node's slice of a plan file or of a compiled document.

    Raises:
        UserError: The file is neither a flowc plan nor a document without errors.
    """
    from flowc.model.plan import NodeSlice

    text = path.read_text(encoding="utf-8")
    if path.suffix == ".json":
        try:
            data = json.loads(text)
            if not isinstance(data, dict) or not isinstance(data.get("nodes"), dict):
                raise ValueError("no 'nodes' object")
            return {node: NodeSlice.load(text, node) for node in sorted(data["nodes"])}
        except ValueError as exc:
            raise UserError(f"{path} is not a flowc plan ({str(exc).splitlines()[0]})") from None
    from flowc.cli.common import emit_diagnostics
    from flowc.pipeline import compile_source

    result = compile_source(text, str(path))
    if not result.ok:
        emit_diagnostics(result.diagnostics, "text", err=True)
        raise UserError(f"{path} has errors")
    plan = result.plan
    return plan.slices({name: node.hostname for name, node in plan.nodes.items()})


@click.command("diff")
@click.argument("old", type=SOURCE)
@click.argument("new", type=SOURCE)
@click.option("--node", "nodes", multiple=True, help="Only this node (repeatable).")
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True)
@click.option("--exit-code", is_flag=True, help="Exit 1 when anything changes (like git diff --exit-code).")
@guard
def diff(old: Path, new: Path, nodes: tuple[str, ...], fmt: str, exit_code: bool) -> int:
    """Show what changes on each node when NEW replaces OLD (plans or documents)."""
    from flowc.model.plan_diff import diff_plans

    before, after = node_slices(old), node_slices(new)
    unknown = [n for n in nodes if n not in before and n not in after]
    if unknown:
        raise UserError(f"no node '{unknown[0]}' in {old} or {new}")
    result = [d for d in diff_plans(before, after) if not nodes or d.node in nodes]
    if fmt == "json":
        click.echo(json.dumps({"nodes": [d.as_dict() for d in result]}, indent=2, sort_keys=True))
    else:
        for d in result:
            click.echo(f"node {d.node}: {d.status}")
            for change in d.changes:
                click.echo(f"  {change.line()}")
            if d.unchanged_actors and d.status == "changed":
                click.echo(f"  = {len(d.unchanged_actors)} actor(s) untouched: {', '.join(d.unchanged_actors)}")
    changed = any(d.status != "unchanged" for d in result)
    return EXIT_ERRORS if exit_code and changed else EXIT_OK
