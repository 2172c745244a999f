"""``flowc metrics``: serve a node's metrics endpoint without a launcher (for nodes run by systemd units).

The launcher serves the same endpoint itself (``flowc launch``); this command is for nodes whose actors and
bridges run as systemd units: it reads the node's rings and the counters its bridges and latency sinks publish,
so it needs nothing from them. ``/readyz`` is ready once every channel of the node exists.
"""

from __future__ import annotations

import ipaddress
import signal
import threading
from collections.abc import Callable
from typing import Any

import click

from flowc.cli.common import EXIT_ERRORS, EXIT_OK, PLAN, guard


def _address(_ctx: click.Context, _param: click.Parameter, value: str | None) -> str | None:
    if value is not None:
        try:
            ipaddress.ip_address(value)
        except ValueError:
            raise click.BadParameter(f"'{value}' is not an IP address (such as 0.0.0.0, 127.0.0.1 or ::)") from None
    return value


def _port(_ctx: click.Context, _param: click.Parameter, value: int | None) -> int | None:
    if value is not None and 0 < value < 1024:
        raise click.BadParameter(f"{value} is a privileged port; use 1024-65535 (or 0 for any free port)")
    return value


def metrics_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """Add ``--metrics-port`` and ``--metrics-address`` to a command."""
    command = click.option("--metrics-address", callback=_address, envvar="FLOWC_METRICS_ADDRESS",
                           help="Serve the metrics endpoint on this IP address instead of the plan's "
                                "[env: FLOWC_METRICS_ADDRESS].")(command)
    return click.option("--metrics-port", type=click.IntRange(0, 65535), callback=_port, envvar="FLOWC_METRICS_PORT",
                        help="Serve the metrics endpoint on this port (1024-65535; 0: any free port, said on "
                             "stderr) instead of the plan's [env: FLOWC_METRICS_PORT].")(command)


@click.command("metrics")
@click.argument("plan", type=PLAN)
@click.option("--node", required=True, help="The node of the plan to observe.")
@metrics_options
@guard
def metrics_command(plan: str, node: str, metrics_port: int | None, metrics_address: str | None) -> int:
    """Serve NODE's /metrics, /healthz and /readyz from its shared memory until SIGTERM or Ctrl-C."""
    from flowc.model.node_view import NodeView
    from flowc.runtime.actor_main import load_node
    from flowc.runtime.metrics import MetricsError, MetricsServer, NodeCollector, endpoint
    from flowc.runtime.observe import NodeReader

    part = load_node(plan, node)
    layout = NodeView.of(part, node)
    where = endpoint(part.nodes[node].metrics, metrics_port, metrics_address)
    reader = NodeReader(layout)
    collector = NodeCollector(reader)

    def ready() -> tuple[bool, dict[str, Any]]:
        missing = collector.state().missing_channels
        not_ready = [f"channel '{name}' is not created" for name in missing]
        return not not_ready, {"node": node, "ready": not not_ready, "not_ready": not_ready}

    try:
        server = MetricsServer(where.address, where.port, collector, lambda: (True, {"node": node, "ok": True}),
                               ready)
    except MetricsError as exc:
        click.echo(f"flowc metrics: error: {exc}", err=True)
        return EXIT_ERRORS
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    server.start()
    click.echo(f"flowc metrics [{node}]: serving http://{where.address}:{server.port}/metrics", err=True)
    try:
        stop.wait()
    finally:
        server.stop()
        reader.close()
    return EXIT_OK
