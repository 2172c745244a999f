"""``flowc top``: a live view of a running node, read from its shared memory (so no launcher is needed).

It reads the node as ``flowc metrics`` does (:func:`flowc.cli.metrics.node_reader`) every ``--interval`` seconds
and draws :func:`flowc.runtime.top_view.render` of the last two readings; ``--once`` takes two readings and
prints them (``--format json`` for one JSON object). Ctrl-C or SIGTERM ends it with exit 0.
"""

from __future__ import annotations

import json
import signal
import threading
import time
from typing import TYPE_CHECKING, Any

import click

from flowc.cli.common import EXIT_OK, PLAN, guard
from flowc.cli.metrics import node_reader

if TYPE_CHECKING:
    from rich.console import Console

    from flowc.runtime.observe import NodeReader


@click.command("top")
@click.argument("plan", type=PLAN)
@click.option("--node", required=True, help="The node of the plan to watch.")
@click.option("--interval", type=click.FloatRange(min=0.1), default=1.0, show_default=True,
              help="Seconds between readings: the refresh period, and what rates are measured over.")
@click.option("--once", is_flag=True, help="Take two readings --interval apart, print them and exit.")
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True,
              help="With --once: tables, or one JSON object.")
@guard
def top(plan: str, node: str, interval: float, once: bool, fmt: str) -> int:
    """Show NODE's channels, routes and latency live, refreshed every --interval seconds, until Ctrl-C."""
    if fmt == "json" and not once:
        raise click.UsageError("--format json needs --once (the live view is for a terminal)")
    from rich.console import Console

    from flowc.runtime.top_view import render, snapshot

    reader = node_reader(plan, node)
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    try:
        if once:
            before = reader.read()
            stop.wait(interval)
            view = snapshot(reader.read(), before)
            if fmt == "json":
                click.echo(json.dumps(view, indent=2, sort_keys=True))
            else:
                Console().print(render(view, time.strftime("%H:%M:%S")))
            return EXIT_OK
        _watch(reader, interval, stop, Console())
    finally:
        reader.close()
    return EXIT_OK


def _watch(reader: NodeReader, interval: float, stop: threading.Event, console: Console) -> None:
    """Redraw the view every ``interval`` until ``stop`` is set (on a terminal, in place on its alternate screen).

    Without a terminal (piped into a file) each reading is printed below the last, as ``top -b`` does.
    """
    from rich.live import Live

    from flowc.runtime.top_view import render, snapshot

    before = None

    def frame() -> Any:
        nonlocal before
        now = reader.read()
        drawn = render(snapshot(now, before), time.strftime("%H:%M:%S"))
        before = now
        return drawn

    if not console.is_terminal:
        while not stop.is_set():
            console.print(frame())
            stop.wait(interval)
        return
    # The alternate screen gives the terminal back as it was when the view ends; the refresh is ours (one per
    # reading), not rich's timer thread, so a frame is never drawn twice from the same reading.
    with Live(frame(), console=console, screen=True, auto_refresh=False) as live:
        while not stop.wait(interval):
            live.update(frame(), refresh=True)
