"""What every command shares: exit codes, the one error boundary, file arguments and diagnostic output.

Exit codes (the one place they are defined): 0 no errors (warnings allowed unless ``--strict``), 1 the input
has errors (or ``build --check`` found drift, or ``pricing`` met an API or data error), 2 usage error, 3 internal
error (a bug in flowc; ``--debug`` shows the traceback).
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from typing import Any

import click

from flowc.diagnostics import Diagnostic, UserError

EXIT_OK, EXIT_ERRORS, EXIT_USAGE, EXIT_INTERNAL = 0, 1, 2, 3
FILE = click.Path(exists=True, dir_okay=False, readable=True, path_type=str)


def guard(command: Callable[..., int]) -> Callable[..., None]:
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


def emit_diagnostics(diagnostics: list[Diagnostic], fmt: str, err: bool = False) -> None:
    """Print diagnostics in ``fmt`` (``text`` is coloured on a terminal) to stdout, or stderr with ``err``."""
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


def failed(diagnostics: list[Diagnostic], strict: bool) -> bool:
    """Whether the diagnostics fail the command (any error; any diagnostic at all under ``--strict``)."""
    return any(d.severity == "error" or strict for d in diagnostics)


def summary(diagnostics: list[Diagnostic], files: int) -> str:
    """The closing line: ``1 error, 2 warnings in 3 files``."""
    errors = sum(d.severity == "error" for d in diagnostics)
    warnings = len(diagnostics) - errors
    return f"{errors} error{'s' * (errors != 1)}, {warnings} warning{'s' * (warnings != 1)} in " \
           f"{files} file{'s' * (files != 1)}"


FORMAT = click.option("--format", "fmt", type=click.Choice(["text", "json", "github", "sarif"]), default="text",
                       show_default=True, help="How to print diagnostics (sarif: a SARIF 2.1.0 log for code scanning).")
STRICT = click.option("--strict", is_flag=True, help="Treat warnings as errors.")



#: A plan file written by ``flowc build`` (or a node slice of one).
PLAN = click.Path(exists=True, dir_okay=False, readable=True, path_type=str)
