"""``flowc submit``, ``status``, ``cancel`` and ``logs``: a build's bids on Mithril, from creation to output.

The commands render what :class:`~flowc.providers.mithril.provider.MithrilCompute` returns. Every API failure is
one line with help and exit 1; a submission that stops half-way says which tasks were sent and which were not.
"""

from __future__ import annotations

import json
import os
import sys
from typing import Any

import click

from flowc.cli.common import EXIT_ERRORS, EXIT_OK, guard

ORIGIN = click.argument("origin", metavar="OUT_DIR|FILE", type=click.Path(exists=True, path_type=str))
PROJECT = click.option("--project", help="Mithril project, name or id (else MITHRIL_PROJECT, else the build's).")
TASKS = click.option("--task", "tasks", multiple=True, help="Only this task (repeatable).")
YES = click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation (needed without a terminal).")
#: Seconds between polls of --wait and --watch (tests set FLOWC_POLL_S).
POLL_S = float(os.environ.get("FLOWC_POLL_S", "5"))


def _connect(project: str | None, origin: str | None = None, tasks: tuple[str, ...] = ()) -> tuple[Any, Any, str]:
    """The compute facade, the build's bids (when ``origin`` is given) and the project's id."""
    from flowc.cli.build_input import load
    from flowc.providers.mithril.provider import MithrilCompute

    built = load(origin, project, tasks) if origin is not None else None
    name = built.project(project, dict(os.environ)) if built is not None else project or os.environ.get(
        "MITHRIL_PROJECT")
    if not name:
        raise click.UsageError("no Mithril project: pass --project or export MITHRIL_PROJECT")
    compute = MithrilCompute.from_config()
    return compute, built, compute.resolve_project(name)


def _api_errors() -> tuple[type[Exception], ...]:
    from flowc.providers.mithril.api.errors import MithrilApiError
    from flowc.providers.mithril.domain.volumes import VolumeError
    from flowc.providers.mithril.resolve import ResolveError

    return (MithrilApiError, ResolveError, VolumeError)


def _fail(error: Exception, where: str | None = None) -> int:
    message = getattr(error, "message", None) or str(error)
    click.echo(f"flowc: error: {where + ': ' if where else ''}{message}", err=True)
    help_line = getattr(error, "help", None)
    if help_line:
        click.echo(f"  help: {help_line}", err=True)
    return EXIT_ERRORS


def _money(value: float) -> str:
    return f"${value:,.2f}"


@click.command()
@ORIGIN
@TASKS
@PROJECT
@click.option("--dry-run", is_flag=True, help="Show what would be done; send nothing.")
@click.option("--replace", is_flag=True, help="Cancel and recreate a bid that differs in more than its price.")
@click.option("--wait", type=click.Choice(["allocated", "running"]), help="Follow the bids until they get there.")
@click.option("--timeout", type=click.FloatRange(min=0), default=1800.0, show_default=True,
              help="Seconds --wait follows them.")
@YES
@guard
def submit(origin: str, tasks: tuple[str, ...], project: str | None, dry_run: bool, replace: bool, wait: str | None,
           timeout: float, yes: bool) -> int:
    """Make Mithril hold exactly the bids of a build: create, reprice or (--replace) recreate them.

    OUT_DIR is a 'flowc build' output (its mithril/*.json); a FILE is built in memory first.
    """
    try:
        compute, built, project_id = _connect(project, origin, tasks)
    except _api_errors() as error:
        return _fail(error)
    with compute.client:
        try:
            wanted = [compute.prepare(bid, project_id) for bid in built.bids]
            actions = compute.plan_submission(wanted, project_id, replace)
            market = compute.market()
        except _api_errors() as error:
            return _fail(error)
        _show_plan(actions, market)
        refused = [a for a in actions if a.kind == "refuse"]
        if refused:
            for action in refused:
                click.echo(f"flowc: error: task '{action.wanted.task}' differs from its live bid "
                           f"{action.live.fid} in more than its limit price:", err=True)
                for line in action.changes:
                    click.echo(f"    {line}", err=True)
            click.echo("  help: --replace cancels the bid and creates it anew (a running task loses its work)",
                       err=True)
            return EXIT_ERRORS
        if dry_run:
            click.echo("flowc: dry run: nothing was sent", err=True)
            return EXIT_OK
        spending = [a for a in actions if a.spends]
        if spending and not yes:
            if not sys.stdin.isatty():
                click.echo("flowc: error: this spends money; confirm with --yes (no terminal to ask on)", err=True)
                return EXIT_ERRORS
            total = sum(a.wanted.per_hour for a in spending)
            if not click.confirm(f"Place {len(spending)} bid change(s), up to {_money(total)}/hour?"):
                click.echo("flowc: nothing was sent", err=True)
                return EXIT_ERRORS
        from flowc.providers.mithril.domain.submit import SubmitFailed

        try:
            outcomes = compute.submit_task(actions, progress=_say_outcome)
        except SubmitFailed as failure:
            where = built.where(failure.task, _loc(failure.error))
            _fail(failure.error, where)
            sent = [o.task for o in failure.done if o.kind != "unchanged"]
            click.echo(f"  submitted: {', '.join(sent) or 'none'}; failed: {failure.task}; not sent: "
                       f"{', '.join(failure.not_sent) or 'none'}", err=True)
            return EXIT_ERRORS
        if wait is None:
            return EXIT_OK
        return _wait(compute, project_id, [o.bid.fid for o in outcomes], wait, timeout)


def _loc(error: Exception) -> list[Any]:
    detail = getattr(error, "detail", None)
    if isinstance(detail, list) and detail and isinstance(detail[0], dict):
        loc = detail[0].get("loc")
        return list(loc) if isinstance(loc, list) else []
    return []


def _show_plan(actions: list[Any], market: dict[tuple[str, str], tuple[float, int]]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title="submission", title_justify="left")
    for column in ("task", "action", "bid", "instances", "limit/hour", "max/hour", "market", "changes"):
        table.add_column(column, justify="right" if "hour" in column or column == "instances" else "left")
    warnings = []
    for action in actions:
        wanted = action.wanted
        body = wanted.body
        notes = list(action.changes)
        if wanted.volumes_to_create:
            notes.append("creates volumes: " + ", ".join(v.name for v in wanted.volumes_to_create))
        price, free = market.get((body["instance_type"], body["region"]), (None, 0))
        table.add_row(wanted.task, action.kind, action.live.fid if action.live is not None else "-",
                      str(body["instance_quantity"]), _money(wanted.limit_price), _money(wanted.per_hour),
                      "-" if price is None else f"{_money(price)}, {free} free", "; ".join(notes))
        if action.kind in ("create", "replace"):
            warnings += _market_warnings(wanted.task, wanted.limit_price, body, price, free)
    Console(width=160 if not sys.stdout.isatty() else None).print(table)
    for line in warnings:
        click.echo(f"flowc: warning: {line}", err=True)


def _market_warnings(task: str, limit: float, body: dict[str, Any], price: float | None, free: int) -> list[str]:
    """Why a new bid may wait: the market above its limit, or fewer instances free than it asks for."""
    where = f"{body['region']}"
    if price is None:
        return [f"{task}: nothing of its instance type is on offer in {where} now; the bid waits"]
    out = []
    if price > limit:
        out.append(f"{task}: the market is at {_money(price)}/hour in {where}, above its limit {_money(limit)}; "
                   "the bid waits until the price falls (raise max_price_per_hour to win now)")
    if free < int(body["instance_quantity"]):
        out.append(f"{task}: {free} instance(s) free in {where} and the bid asks for {body['instance_quantity']} "
                   "(all or nothing); it waits for capacity")
    return out


_DONE = {"create": "created", "update": "repriced", "replace": "replaced"}


def _say_outcome(outcome: Any) -> None:
    if outcome.kind in _DONE:
        created = f", created volumes {', '.join(outcome.volumes_created)}" if outcome.volumes_created else ""
        click.echo(f"flowc: {outcome.task}: {_DONE[outcome.kind]} bid {outcome.bid.fid} ({outcome.bid.status})"
                   f"{created}", err=True)


def _wait(compute: Any, project: str, fids: list[str], wanted: str, timeout: float) -> int:
    from flowc.providers.mithril.domain.tasks import TaskEnded, WaitTimeout

    def show(views: list[Any]) -> None:
        click.echo("flowc: " + ", ".join(f"{v.name}: {v.state}" for v in views), err=True)

    try:
        compute.wait_for(project, fids, wanted, timeout, POLL_S, show)
    except WaitTimeout as late:
        click.echo(f"flowc: error: {late}", err=True)
        click.echo("  help: the bids stay placed; follow them with 'flowc status', or cancel with 'flowc cancel'",
                   err=True)
        return EXIT_ERRORS
    except TaskEnded as stopped:
        click.echo(f"flowc: error: {stopped}", err=True)
        return EXIT_ERRORS
    except _api_errors() as error:
        return _fail(error)
    return EXIT_OK


@click.command()
@click.argument("origin", metavar="[OUT_DIR|FILE]", required=False, type=click.Path(exists=True, path_type=str))
@PROJECT
@click.option("--all", "show_all", is_flag=True, help="Every bid of the project, not only the build's.")
@click.option("--watch", is_flag=True, help="Refresh until Ctrl-C.")
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table", show_default=True)
@guard
def status(origin: str | None, project: str | None, show_all: bool, watch: bool, fmt: str) -> int:
    """Show each task's bid, state, instances and price (the build's tasks, or --all of the project)."""
    if origin is None and not show_all:
        raise click.UsageError("give OUT_DIR or FILE, or --all")
    try:
        compute, built, project_id = _connect(project, origin)
    except _api_errors() as error:
        return _fail(error)
    names = None if show_all or built is None else [b.task for b in built.bids]
    with compute.client:
        try:
            if not watch:
                _render_status(compute.list_tasks(project_id, names), names, fmt)
                return EXIT_OK
            import time

            from rich.live import Live

            with Live(auto_refresh=False) as live:
                while True:
                    live.update(_status_table(compute.list_tasks(project_id, names), names), refresh=True)
                    time.sleep(POLL_S)
        except KeyboardInterrupt:
            return EXIT_OK
        except _api_errors() as error:
            return _fail(error)


def status_rows(views: list[Any], names: list[str] | None) -> list[dict[str, Any]]:
    """One JSON-ready row per task (a task of the build without a live bid shows as ``not submitted``)."""
    from datetime import UTC, datetime

    now = datetime.now(UTC)
    rows = []
    for view in views:
        rows.append({"task": view.name, "bid": view.bid.fid, "bid_status": view.bid.status, "state": view.state,
                     "region": view.bid.region, "instance_type": view.bid.instance_type,
                     "limit_price": round(view.limit_price, 2),
                     "spot_price": None if view.spot_price is None else round(view.spot_price, 2),
                     "age_s": int(view.age_s(now)),
                     "instances": [{"id": i.fid, "status": i.status, "ssh": i.ssh_destination,
                                    "private_ip": i.private_ip} for i in view.instances]})
    seen = {v.name for v in views}
    rows += [{"task": n, "bid": None, "state": "not submitted"} for n in names or () if n not in seen]
    return rows


def _render_status(views: list[Any], names: list[str] | None, fmt: str) -> None:
    if fmt == "json":
        click.echo(json.dumps(status_rows(views, names), indent=2, sort_keys=True))
        return
    from rich.console import Console

    Console(width=160 if not sys.stdout.isatty() else None).print(_status_table(views, names))


def _status_table(views: list[Any], names: list[str] | None) -> Any:
    from rich.table import Table

    table = Table(title_justify="left")
    for column in ("task", "state", "bid", "region", "limit", "spot", "age", "instances"):
        table.add_column(column)
    for row in status_rows(views, names):
        if row["bid"] is None:
            table.add_row(row["task"], row["state"], *["-"] * 6)
            continue
        spot = "-" if row["spot_price"] is None else _money(row["spot_price"])
        instances = "\n".join(f"{i['id']} {i['status'].removeprefix('STATUS_').lower()} "
                              f"{i['ssh'] or '-'} {i['private_ip'] or '-'}" for i in row["instances"]) or "-"
        table.add_row(row["task"], row["state"], f"{row['bid']} ({row['bid_status']})", row["region"] or "-",
                      _money(row["limit_price"]), spot, _age(row["age_s"]), instances)
    return table


def _age(seconds: int) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit}"
    return f"{max(0, seconds)}s"


@click.command()
@ORIGIN
@TASKS
@PROJECT
@YES
@guard
def cancel(origin: str, tasks: tuple[str, ...], project: str | None, yes: bool) -> int:
    """Cancel the build's bids (a bid already gone counts as cancelled)."""
    try:
        compute, built, project_id = _connect(project, origin, tasks)
    except _api_errors() as error:
        return _fail(error)
    names = [b.task for b in built.bids]
    if not yes:
        if not sys.stdin.isatty():
            click.echo("flowc: error: cancelling ends running tasks; confirm with --yes (no terminal to ask on)",
                       err=True)
            return EXIT_ERRORS
        if not click.confirm(f"Cancel {', '.join(names)}?"):
            return EXIT_ERRORS
    with compute.client:
        done = []
        for name in names:
            try:
                fid = compute.cancel_task(project_id, name)
            except _api_errors() as error:
                _fail(error, f"task '{name}'")
                click.echo(f"  cancelled: {', '.join(done) or 'none'}; not cancelled: "
                           f"{', '.join(n for n in names if n not in done)}", err=True)
                return EXIT_ERRORS
            done.append(name)
            click.echo(f"flowc: {name}: " + (f"cancelled bid {fid}" if fid else "no live bid (already gone)"),
                       err=True)
    return EXIT_OK


@click.command()
@ORIGIN
@click.option("--task", required=True, help="The task.")
@PROJECT
@click.option("--instance", type=click.IntRange(min=0), default=0, show_default=True,
              help="Which of the task's instances.")
@click.option("--follow", "-f", is_flag=True, help="Keep printing as the task writes (Ctrl-C stops).")
@click.option("--tail", type=click.IntRange(min=0), help="Only the last N lines.")
@click.option("--user", default="ubuntu", show_default=True, help="SSH user on the instance.")
@click.option("-i", "--identity", type=click.Path(exists=True, dir_okay=False), help="SSH private key.")
@click.option("--known-hosts", type=click.Path(dir_okay=False), help="SSH known-hosts file (default: ssh's own).")
@guard
def logs(origin: str, task: str, project: str | None, instance: int, follow: bool, tail: int | None, user: str,
         identity: str | None, known_hosts: str | None) -> int:
    """Print a task's output from one of its instances, over SSH."""
    from flowc.emit.mithril.script import log_path
    from flowc.providers.mithril.domain.logs import LogService

    try:
        compute, _built, project_id = _connect(project, origin, (task,))
    except _api_errors() as error:
        return _fail(error)
    compute.logs = LogService(user=user, identity_file=identity, known_hosts=known_hosts)
    with compute.client:
        try:
            if not follow:
                click.echo(compute.get_task_logs(project_id, task, log_path(task), instance, tail), nl=False)
                return EXIT_OK
            for line in compute.stream_task_logs(project_id, task, log_path(task), instance,
                                                 10 if tail is None else tail):
                click.echo(line)
        except KeyboardInterrupt:
            return EXIT_OK
        except _api_errors() as error:
            return _fail(error)
    return EXIT_OK
