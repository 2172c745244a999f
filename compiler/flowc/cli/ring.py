"""``flowc ring-include``: where the ring's C API lives, for actors written in C or C++.

The header (``flowc_ring.h``) and the library's sources ship inside the package, so a C actor builds in one command,
pkg-config style: ``cc $(flowc ring-include --cflags) actor.c $(flowc ring-include --libs) -o actor``. The segment
format they implement is docs/ring-abi.md.
"""

from __future__ import annotations

from pathlib import Path

import click

import flowc
from flowc.cli.common import EXIT_OK, guard

SOURCES = ("flowc_ring.c", "flowc_channels.c")
"""The library's translation units, in ``flowc/runtime/`` next to ``include/``."""


def ring_dirs() -> tuple[Path, list[Path]]:
    """The directory holding ``flowc_ring.h`` and the library's C sources.

    Found from the installed package without importing :mod:`flowc.runtime` (which loads the C extension).

    Returns:
        The include directory and the source files.
    """
    runtime = Path(flowc.__file__).resolve().parent / "runtime"
    return runtime / "include", [runtime / name for name in SOURCES]


@click.command("ring-include")
@click.option("--cflags", "mode", flag_value="cflags", help="Print compiler flags: -I<dir> -pthread.")
@click.option("--libs", "mode", flag_value="libs",
              help="Print what goes after the actor's sources to link it: the library's C files and -pthread.")
@click.option("--sources", "mode", flag_value="sources", help="Print the library's C files to compile with an actor.")
@guard
def ring_include(mode: str | None) -> int:
    """Print the directory holding flowc_ring.h, then the library's C files (one per line).

    A C actor: cc $(flowc ring-include --cflags) actor.c $(flowc ring-include --libs) -o actor
    """
    include, sources = ring_dirs()
    if mode == "cflags":
        click.echo(f"-I{include} -pthread")
    elif mode == "sources":
        click.echo(" ".join(str(path) for path in sources))
    elif mode == "libs":  # the library is its sources: compiled with the actor, then linked with -pthread
        click.echo(" ".join([*(str(path) for path in sources), "-pthread"]))
    else:
        click.echo("\n".join(str(path) for path in (include, *sources)))
    return EXIT_OK
