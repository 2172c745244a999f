"""``flowc pricing``: Mithril spot prices, price history and limit-price advice."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click

from flowc.cli.common import EXIT_ERRORS, EXIT_OK, FILE, guard


def _api_errors() -> tuple[type[Exception], ...]:
    """Return the errors a pricing command reports with exit 1: the price store's, and the API client's."""
    from flowc.providers.mithril.domain.store import StoreError

    try:
        from flowc.providers.mithril.api.errors import MithrilApiError
    except ImportError:
        return (StoreError,)
    return (StoreError, MithrilApiError)


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
    except _api_errors() as exc:  # choosing a source reads the store
        click.echo(f"flowc pricing: error: {exc.message}", err=True)  # type: ignore[attr-defined]
        return EXIT_ERRORS
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


@click.group(invoke_without_command=True)
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
        guard(_pricing_show)(**options)


@pricing.command("import")
@click.argument("file", type=FILE)
@guard
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
