"""The ``flowc`` command line: parse options into settings, call the library, render, exit.

The group is :func:`main`; each command family has its module (:mod:`.compile`, :mod:`.run`, :mod:`.keys`,
:mod:`.tasks`, :mod:`.pricing`) and :mod:`.common` holds the exit codes and the one error boundary. Heavy
libraries are imported inside the commands that need them, so ``flowc --help`` and ``flowc check`` start fast.
"""

from __future__ import annotations

import click

from flowc import __version__
from flowc.cli import compile, diff, keys, metrics, pricing, ring, run, tasks, top


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="flowc")
@click.option("--debug", is_flag=True, help="Show tracebacks of internal errors.")
def main(debug: bool) -> None:
    """Compile a topology document into what runs it: plan, manifests, units, bids."""


for command in (compile.check, compile.build, compile.graph, compile.schema, run.launch, run.run_actor_command,
                run.run_bridge_command, run.channels, metrics.metrics_command, top.top, ring.ring_include, keys.keys,
                pricing.pricing, tasks.submit, tasks.status, tasks.cancel, tasks.logs, diff.diff,
                run.reload_command):
    main.add_command(command)

__all__ = ["main"]
