"""The ``flowc`` command line: parse options, call the library, render, exit.

Exit codes (the one place they are defined): 0 no errors (warnings allowed unless ``--strict``),
1 the input has errors (or ``build --check`` found drift, or ``pricing`` met an API or data error), 2 usage
error, 3 internal error (a bug in flowc; ``--debug`` shows the traceback). Heavy libraries are imported
inside the commands that need them, so ``flowc --help`` and ``flowc check`` start fast.
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from flowc import __version__
from flowc.diagnostics import UserError

EXIT_OK, EXIT_ERRORS, EXIT_USAGE, EXIT_INTERNAL = 0, 1, 2, 3
_FILE = click.Path(exists=True, dir_okay=False, readable=True, path_type=str)


def _guard(command: Callable[..., int]) -> Callable[..., None]:
    """Turn a command's return value into the exit code, and any unexpected exception into exit 3."""

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> None:
        debug = click.get_current_context().find_root().params.get("debug", False)
        try:
            code = command(*args, **kwargs)
        except (click.exceptions.Exit, click.ClickException, click.Abort):
            raise
        except UserError as exc:
            click.echo(f"flowc: error: {exc}", err=True)
            sys.exit(EXIT_ERRORS)
        except Exception as exc:  # noqa: BLE001 - the documented last line of defence
            if debug:
                raise
            click.echo(f"flowc: internal error: {type(exc).__name__}: {exc}", err=True)
            click.echo("  this is a bug in flowc, not in your input; rerun with --debug and report the "
                       "traceback", err=True)
            sys.exit(EXIT_INTERNAL)
        sys.exit(code)

    return wrapper


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="flowc")
@click.option("--debug", is_flag=True, help="Show tracebacks of internal errors.")
def main(debug: bool) -> None:
    """Compile a topology document into what runs it: plan, manifests, units, bids."""


def _emit_diagnostics(diagnostics: list, fmt: str, err: bool = False) -> None:
    from flowc.diagnostics.render import RENDERERS

    text = RENDERERS[fmt](diagnostics)
    if fmt == "text" and diagnostics and (sys.stderr if err else sys.stdout).isatty():
        from rich.console import Console
        from rich.text import Text

        console = Console(stderr=err, highlight=False)
        for line in text.splitlines():
            style = "bold red" if "error[" in line else "yellow" if "warning[" in line else "cyan"
            console.print(Text(line, style=style if not line.startswith("  ") else "dim"))
        return
    if text or fmt == "json":
        click.echo(text, nl=False, err=err)


def _failed(diagnostics: list, strict: bool) -> bool:
    return any(d.severity == "error" or strict for d in diagnostics)


def _summary(diagnostics: list, files: int) -> str:
    errors = sum(d.severity == "error" for d in diagnostics)
    warnings = len(diagnostics) - errors
    return f"{errors} error{'s' * (errors != 1)}, {warnings} warning{'s' * (warnings != 1)} in " \
           f"{files} file{'s' * (files != 1)}"


def _namespace(value: str | None) -> str | None:
    import re

    if value is not None and not re.fullmatch(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?", value):
        raise click.BadParameter(f"'{value}' is not a DNS-1123 label (lowercase letters, digits and '-')")
    return value


_FORMAT = click.option("--format", "fmt", type=click.Choice(["text", "json", "github"]), default="text",
                       show_default=True, help="How to print diagnostics.")
_STRICT = click.option("--strict", is_flag=True, help="Treat warnings as errors.")


@main.command()
@click.argument("files", nargs=-1, required=True, type=_FILE)
@_FORMAT
@_STRICT
@_guard
def check(files: tuple[str, ...], fmt: str, strict: bool) -> int:
    """Check topology FILES and report every problem; writes nothing."""
    from flowc.pipeline import CHECK_PASSES, compile_file

    diagnostics = []
    for name in files:
        diagnostics.extend(compile_file(name, passes=CHECK_PASSES).diagnostics)
    _emit_diagnostics(diagnostics, fmt)
    if fmt == "text":
        click.echo(_summary(diagnostics, len(files)), err=True)
    return EXIT_ERRORS if _failed(diagnostics, strict) else EXIT_OK


@main.command()
@click.argument("file", type=_FILE)
@click.option("-o", "--output", "out", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="Output directory (Kubernetes objects at the top, other targets in subfolders).")
@click.option("--check", "check_only", is_flag=True,
              help="Write nothing; exit 1 and list the files that differ when OUTPUT is out of date.")
@click.option("-n", "--namespace", callback=lambda _ctx, _param, value: _namespace(value),
              help="Kubernetes namespace of every object (overrides the document's).")
@click.option("--project", default=None, help="Mithril project (id or name) for the bids (else MITHRIL_PROJECT).")
@click.option("--resolve", is_flag=True, help="Resolve bid names to Mithril ids through the API (MITHRIL_API_KEY).")
@click.option("--prices", type=click.Choice(["none", "local", "live", "sample"]), default="none", show_default=True,
              help="Price data for bid regions and limit prices (none keeps the build deterministic).")
@click.option("--flowc-path", type=click.Path(dir_okay=False), default=None,
              help="Absolute path of flowc on the hosts, for systemd units (default /usr/local/bin/flowc).")
@_FORMAT
@_STRICT
@_guard
def build(file: str, out: Path, check_only: bool, namespace: str | None, project: str | None, resolve: bool,
          prices: str, flowc_path: str | None, fmt: str, strict: bool) -> int:
    """Compile FILE and write everything that runs it into OUTPUT, atomically."""
    import re

    from flowc.emit.writer import OutputError, drift, write_output
    from flowc.pipeline import BUILD_PASSES, compile_file

    if flowc_path is not None and not re.fullmatch(r"/[A-Za-z0-9._/+-]+", flowc_path):
        raise click.BadParameter("must be an absolute path of letters, digits and ._/+-", param_hint="--flowc-path")
    options = {key: value for key, value in (("namespace", namespace), ("flowc_path", flowc_path),
                                             ("project", project)) if value}
    if prices != "none":
        from flowc.providers.mithril.provider import MithrilProvider

        options["pricing"] = MithrilProvider(source=prices)
    if resolve:
        from flowc.providers.mithril.api.client import ApiClient
        from flowc.providers.mithril.resolve import Resolver

        options["resolver"] = Resolver(ApiClient())
    result = compile_file(file, passes=BUILD_PASSES, options=options)
    _emit_diagnostics(result.diagnostics, fmt, err=True)
    if result.artifacts is None or _failed(result.diagnostics, strict):
        click.echo(f"flowc: {_summary(result.diagnostics, 1)}; nothing written", err=True)
        return EXIT_ERRORS
    artifacts = result.artifacts
    if check_only:
        stale = drift(artifacts, out)
        for path in stale:
            click.echo(f"{out / path}: out of date")
        if stale:
            click.echo(f"flowc: {len(stale)} file(s) differ; run 'flowc build {file} -o {out}'", err=True)
        return EXIT_ERRORS if stale else EXIT_OK
    try:
        write_output(artifacts, out)
    except OutputError as exc:
        click.echo(f"{out}: error[{exc.code}] {exc.message}\n  help: {exc.help}", err=True)
        return EXIT_ERRORS
    click.echo(f"flowc: wrote {len(artifacts) + 1} files to {out}", err=True)
    return EXIT_OK


@main.command()
@click.argument("file", type=_FILE)
@click.option("-o", "--output", "out", type=click.Path(dir_okay=False, path_type=Path),
              help="Write here instead of stdout; .svg, .png or .pdf renders with Graphviz's 'dot'.")
@_guard
def graph(file: str, out: Path | None) -> int:
    """Print the placement graph of FILE as Graphviz DOT."""
    from flowc.emit.graph import render_dot, render_image
    from flowc.pipeline import compile_file

    result = compile_file(file)
    _emit_diagnostics(result.diagnostics, "text", err=True)
    if result.plan is None:
        return EXIT_ERRORS
    dot = render_dot(result.plan)
    if out is None:
        click.echo(dot, nl=False)
    elif out.suffix in (".dot", ".gv", ""):
        out.write_text(dot, encoding="utf-8")
    else:
        problem = render_image(dot, out)
        if problem:
            click.echo(f"flowc: {problem}", err=True)
            return EXIT_ERRORS
    return EXIT_OK


@main.command()
@_guard
def schema() -> int:
    """Print flowc's JSON Schema (Draft 2020-12) for editors and other validators."""
    from flowc.data import resource_dir

    click.echo((resource_dir("schemas") / "flowc.schema.json").read_text(encoding="utf-8"), nl=False)
    return EXIT_OK


_PLAN = click.Path(exists=True, dir_okay=False, readable=True, path_type=str)


@main.command()
@click.argument("plan", type=_PLAN)
@click.option("--node", required=True, help="The node of the plan to run.")
@click.option("--duration", type=click.FloatRange(min=0), help="Run this many seconds, then stop in order.")
@click.option("--report", "report_path", type=click.Path(dir_okay=False, path_type=Path),
              help="Write the run's report here as JSON.")
@click.option("--oversubscribe", is_flag=True,
              help="Run even when fewer cpus are available than the actors ask for (they then share cores).")
@_guard
def launch(plan: str, node: str, duration: float | None, report_path: Path | None, oversubscribe: bool) -> int:
    """Run NODE's pinned shared-memory data path from PLAN (out/flowc/plan.json or a node slice)."""
    import json

    from flowc.runtime.launcher import Launcher

    report = Launcher(plan, node, duration, oversubscribe=oversubscribe).run()
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


@main.command("run-actor")
@click.argument("plan", type=_PLAN)
@click.option("--node", required=True, help="The node the actor is placed on.")
@click.option("--actor", required=True, help="The actor to run.")
@_guard
def run_actor_command(plan: str, node: str, actor: str) -> int:
    """Run one ACTOR of PLAN with its channels attached (the channels must exist)."""
    from flowc.runtime.actor_main import run_actor

    return run_actor(plan, node, actor)


@main.command("run-bridge", hidden=True)
@click.argument("plan", type=_PLAN)
@click.option("--node", required=True)
@click.option("--route", required=True)
@click.option("--direction", type=click.Choice(["in", "out"]), required=True)
@click.option("--index", type=int, required=True)
@_guard
def run_bridge_command(plan: str, node: str, route: str, direction: str, index: int) -> int:
    """Carry one leg of ROUTE over TCP (started by the launcher)."""
    from flowc.runtime.bridge_main import run_bridge

    return run_bridge(plan, node, route, direction, index)


def _node_layout(plan: str, node: str) -> Any:
    """The run-time layout of NODE in PLAN; an unknown node is the user's error (exit 1), not a bug."""
    from flowc.model.node_view import NodeView
    from flowc.runtime.actor_main import load_plan

    loaded = load_plan(plan)
    if node not in loaded.nodes:
        raise UserError(f"node '{node}' is not in {plan} (it has: {', '.join(sorted(loaded.nodes))})")
    return NodeView.of(loaded, node)


@main.group()
def channels() -> None:
    """Create or remove a node's shared-memory channels (for actors run one by one, e.g. by systemd)."""


@channels.command("create")
@click.argument("plan", type=_PLAN)
@click.option("--node", required=True)
@_guard
def channels_create(plan: str, node: str) -> int:
    """Create NODE's channels from PLAN (after removing any a dead run left)."""
    from flowc.runtime import segments

    layout = _node_layout(plan, node)
    segments.reclaim(layout)
    rings = segments.create(layout)
    for ring in rings.values():
        ring.close()
    click.echo(f"flowc channels: created {len(rings)} channel(s) of '{node}'", err=True)
    return EXIT_OK


@channels.command("remove")
@click.argument("plan", type=_PLAN)
@click.option("--node", required=True)
@_guard
def channels_remove(plan: str, node: str) -> int:
    """Remove NODE's channels and their registry."""
    from flowc.runtime import segments

    layout = _node_layout(plan, node)
    segments.remove(layout, {})
    removed = segments.reclaim(layout)
    click.echo(f"flowc channels: removed {len(removed)} channel(s) of '{node}'", err=True)
    return EXIT_OK


def _api_errors() -> tuple[type[Exception], ...]:
    """Return the API client's error base class, when that package is installed."""
    try:
        from flowc.providers.mithril.api.errors import MithrilApiError
    except ImportError:
        return ()
    return (MithrilApiError,)


def _pricing_show(spot: bool, history: float | None, instance_type: str | None, region: str | None, web: bool,
                  html: Path | None, fmt: str, source: str | None, stats: bool) -> int:
    """Show spot prices or one pair's history from the chosen source (see ``flowc pricing --help``)."""
    from flowc.providers.mithril import pricing_render as render
    from flowc.providers.mithril.provider import MithrilProvider, canonical_instance_type

    if web:
        url = MithrilProvider.get_price_dashboard_url(instance_type, region)
        click.echo(url)
        if sys.stdout.isatty():
            click.launch(url)
        return EXIT_OK
    if spot and history is not None:
        raise click.UsageError("use either --spot or --history, not both")
    if html is not None and history is None:
        history = 168.0
    try:
        provider = MithrilProvider(source)
    except ImportError as exc:
        click.echo(f"flowc pricing: error: live prices need the Mithril API client ({exc})", err=True)
        click.echo("  help: use --source local or --source sample", err=True)
        return EXIT_ERRORS
    name, sample = provider.source.name, provider.is_sample
    try:
        if history is None:
            prices = provider.get_spot_prices([instance_type] if instance_type else None, [region] if region else None)
            if fmt == "json":
                click.echo(render.spot_json(prices, name, sample), nl=False)
            elif fmt == "csv":
                click.echo(render.spot_csv(prices, name), nl=False)
            else:
                from rich.console import Console

                pair_stats = {(p.instance_type, p.region): provider.get_price_history(p.instance_type, p.region,
                                                                                      168).statistics for p in prices}
                Console(width=160).print(render.spot_table(prices, pair_stats, sample, show_stats=stats))
                if not prices:
                    hint = "; import some with 'flowc pricing import FILE.csv' or try --source sample" \
                        if name == "local" and provider.store.is_empty() else ""
                    click.echo(f"flowc pricing: no spot prices match{hint}", err=True)
            return EXIT_OK
        if not instance_type:
            raise click.UsageError("--history needs an instance type (-i TYPE)")
        instance_type = canonical_instance_type(instance_type)
        if region is None:
            regions = sorted(o.region for o in provider.source.current() if o.instance_type == instance_type)
            if not regions:
                raise click.UsageError(f"no prices for instance type '{instance_type}'; give -r REGION")
            region = regions[0]
        result = provider.get_price_history(instance_type, region, history)
        advice = provider.recommend_limit_price(instance_type, region, 0.75, hours=history) \
            if result.statistics is not None else None
        if html is not None:
            html.write_text(render.history_html(result, advice, sample), encoding="utf-8")
            click.echo(f"flowc pricing: wrote {html}" + (" (sample data)" if sample else ""), err=True)
            return EXIT_OK
        if fmt == "json":
            click.echo(render.history_json(result, advice, name, sample), nl=False)
        elif fmt == "csv":
            click.echo(render.history_csv(result, name), nl=False)
        else:
            for line in render.history_lines(result, advice, sample, show_stats=stats):
                click.echo(line)
        return EXIT_OK
    except _api_errors() as exc:
        click.echo(f"flowc pricing: error: {exc.message}", err=True)  # type: ignore[attr-defined]
        if getattr(exc, "help", None):
            click.echo(f"  help: {exc.help}", err=True)  # type: ignore[attr-defined]
        return EXIT_ERRORS


@main.group(invoke_without_command=True)
@click.option("--spot", is_flag=True, help="Show current spot prices (the default).")
@click.option("--history", type=click.FloatRange(min=0, min_open=True), metavar="HOURS",
              help="Show the last HOURS of one instance type's price history with statistics.")
@click.option("-i", "--instance-type", help="Filter by (or, with --history, choose) an instance type.")
@click.option("-r", "--region", help="Filter by (or, with --history, choose) a region.")
@click.option("--web", is_flag=True, help="Print (and on a terminal open) the web console's spot price page.")
@click.option("--html", type=click.Path(dir_okay=False, path_type=Path),
              help="Write a self-contained HTML page with a price chart (history; 168 h unless --history).")
@click.option("--format", "fmt", type=click.Choice(["table", "json", "csv"]), default="table", show_default=True,
              help="Output format; json carries 'format: flowc.pricing/v1'.")
@click.option("--source", type=click.Choice(["live", "local", "sample"]), default=None,
              help="Where prices come from (default: live with MITHRIL_API_KEY, else the local store, else "
                   "the bundled sample data).")
@click.option("--stats", is_flag=True, help="Add statistics: median/p95/volatility, or seasonality for --history.")
@click.pass_context
def pricing(ctx: click.Context, **options: Any) -> None:
    """Show Mithril spot prices, price history and limit-price advice.

    Prices are dollars per instance-hour (and per GPU-hour); statistics weight each price by how long it held.
    Exit codes: 0 ok, 1 API or data errors, 2 usage.
    """
    if ctx.invoked_subcommand is None:
        _guard(_pricing_show)(**options)


@pricing.command("import")
@click.argument("file", type=_FILE)
@_guard
def pricing_import(file: str) -> int:
    """Import observations from FILE.csv (columns time,instance_type,region,price[,availability])."""
    from flowc.providers.mithril.domain.store import PriceStore, StoreError

    store = PriceStore()
    try:
        count = store.import_csv(file)
    except StoreError as exc:
        click.echo(f"flowc pricing import: error: {exc.message}", err=True)
        return EXIT_ERRORS
    click.echo(f"flowc pricing: imported {count} observation(s) into {store.path}", err=True)
    return EXIT_OK
