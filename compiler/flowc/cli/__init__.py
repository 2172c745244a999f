"""The ``flowc`` command line: parse options into settings, call the library, render, exit.

The group is :func:`main`; each command family has its module (:mod:`.compile`, :mod:`.run`, :mod:`.keys`,
:mod:`.tasks`, :mod:`.pricing`...) and :mod:`.common` holds the exit codes and the one error boundary. A command's
module is imported when that command runs (``flowc --help`` imports them all to list them), and heavy libraries
inside the commands that need them, so ``flowc check`` starts fast.
"""

from __future__ import annotations

import importlib

import click

from flowc import __version__

COMMANDS = {
    "check": "flowc.cli.compile:check",
    "build": "flowc.cli.compile:build",
    "graph": "flowc.cli.compile:graph",
    "schema": "flowc.cli.compile:schema",
    "diff": "flowc.cli.diff:diff",
    "launch": "flowc.cli.run:launch",
    "reload": "flowc.cli.run:reload_command",
    "run-actor": "flowc.cli.run:run_actor_command",
    "run-bridge": "flowc.cli.run:run_bridge_command",
    "channels": "flowc.cli.run:channels",
    "metrics": "flowc.cli.metrics:metrics_command",
    "top": "flowc.cli.top:top",
    "ring-include": "flowc.cli.ring:ring_include",
    "keys": "flowc.cli.keys:keys",
    "pricing": "flowc.cli.pricing:pricing",
    "submit": "flowc.cli.tasks:submit",
    "status": "flowc.cli.tasks:status",
    "cancel": "flowc.cli.tasks:cancel",
    "logs": "flowc.cli.tasks:logs",
}


class _LazyGroup(click.Group):
    """A group that imports a command's module only when the command is asked for."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        """Return every command's name, sorted (as click lists them)."""
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        """Import and return the command named ``cmd_name``, or ``None`` when there is none."""
        target = COMMANDS.get(cmd_name)
        if target is None:
            return None
        module, _, attribute = target.partition(":")
        return getattr(importlib.import_module(module), attribute)


@click.group(cls=_LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="flowc")
@click.option("--debug", is_flag=True, help="Show tracebacks of internal errors.")
def main(debug: bool) -> None:
    """Compile a topology document into what runs it: plan, manifests, units, bids."""


__all__ = ["COMMANDS", "main"]
