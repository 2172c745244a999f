"""``flowc metrics``: serve a node's metrics endpoint without a launcher (for nodes run by systemd units).

The launcher serves the same endpoint itself (``flowc launch``); this command is for nodes whose actors and
bridges run as systemd units: it reads the node's rings and the counters its bridges and latency sinks publish,
so it needs nothing from them. ``/readyz`` is ready once every channel of the node exists. :func:`node_reader`,
the node's reader built from a plan, is shared with ``flowc top``.
"""

from __future__ import annotations

import ipaddress
import signal
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import click

from flowc.cli.common import EXIT_ERRORS, EXIT_OK, PLAN, guard

if TYPE_CHECKING:
    from flowc.runtime.observe import NodeReader


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


def node_reader(plan: str, node: str) -> NodeReader:
    """A reader of NODE's rings and published counters, laid out from PLAN as ``flowc launch`` lays them out.

    Args:
        plan: The plan file (or a node slice of one).
        node: The node to read.

    Returns:
        The reader; nothing is attached until it reads (``close`` it when done).

    Raises:
        PlanError: PLAN is not a plan or has no NODE (a user error: ``guard`` makes it exit 1).
    """
    from flowc.model.node_view import NodeView
    from flowc.runtime.actor_main import load_node
    from flowc.runtime.observe import NodeReader

    return NodeReader(NodeView.of(load_node(plan, node), node))


@click.command("metrics")
@click.argument("plan", type=PLAN)
@click.option("--node", required=True, help="The node of the plan to observe.")
@metrics_options
@guard
def metrics_command(plan: str, node: str, metrics_port: int | None, metrics_address: str | None) -> int:
    """Serve NODE's /metrics, /healthz and /readyz from its shared memory until SIGTERM or Ctrl-C."""
    from flowc.runtime.metrics import MetricsError, MetricsServer, NodeCollector, endpoint

    reader = node_reader(plan, node)
    where = endpoint(reader.layout.plan.nodes[node].metrics, metrics_port, metrics_address)
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
