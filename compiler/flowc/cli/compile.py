"""``flowc check``, ``build``, ``graph`` and ``schema``: the compiler's commands."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import click

from flowc.cli.common import EXIT_ERRORS, EXIT_OK, FILE, FORMAT, STRICT, emit_diagnostics, failed, guard, summary

if TYPE_CHECKING:
    from flowc.diagnostics.suppress import Listed
    from flowc.pipeline import Result


def _namespace(value: str | None) -> str | None:
    from flowc.model.names import is_dns_label

    if value is not None and not is_dns_label(value):
        raise click.BadParameter(f"'{value}' is not a DNS-1123 label (lowercase letters, digits and '-')")
    return value


def _targets(value: tuple[str, ...]) -> tuple[str, ...] | None:
    """``--target a,b --target c`` → ``("a", "b", "c")``; none given → ``None`` (the default targets)."""
    from flowc.emit.registry import UnknownTarget, select

    names = tuple(name.strip() for item in value for name in item.split(",") if name.strip())
    if not names:
        return None
    try:
        select(names)
    except UnknownTarget as exc:
        raise click.BadParameter(str(exc)) from exc
    return names


def _target_help() -> str:
    from flowc.emit.registry import TARGETS

    listed = "; ".join(f"{t.name}{'' if t.default else ' (off by default)'}" for t in TARGETS)
    return f"Build only these targets (repeatable or comma-separated; the plan is always written): {listed}."

def _ignored(_ctx: click.Context, _param: click.Parameter, value: tuple[str, ...]) -> tuple[str, ...]:
    from flowc.diagnostics.suppress import valid_code

    codes = tuple(code.strip().upper() for item in value for code in item.split(",") if code.strip())
    bad = [code for code in codes if not valid_code(code)]
    if bad:
        raise click.BadParameter(f"'{bad[0]}' is not a diagnostic code (FLC and three digits, such as FLC504)")
    return codes


def _documents(paths: tuple[str, ...]) -> list[str]:
    """The files to check: each file given, and every ``*.yaml``/``*.yml`` under each folder given, sorted."""
    found: list[str] = []
    for name in paths:
        path = Path(name)
        if path.is_dir():
            found += sorted(str(p) for p in path.rglob("*") if p.suffix in (".yaml", ".yml") and p.is_file()
                            and not any(part.startswith(".") for part in p.relative_to(path).parts))
        else:
            found.append(name)
    return found


@click.command()
@click.argument("files", nargs=-1, required=True, type=click.Path(exists=True, readable=True, path_type=str))
@FORMAT
@STRICT
@click.option("--ignore", "ignored", multiple=True, callback=_ignored, metavar="CODE[,CODE]",
              help="Do not report these codes (repeatable or comma-separated). A document can list its own under "
                   "'flowc: {ignore: [CODE]}', and a line of it can say '# flowc: ignore[CODE]' for the diagnostics "
                   "on it; --strict reports such an entry or comment that suppresses nothing (FLC001).")
@guard
def check(files: tuple[str, ...], fmt: str, strict: bool, ignored: tuple[str, ...]) -> int:
    """Check topology FILES (or every *.yaml/*.yml under a folder) and report every problem; writes nothing."""
    from flowc.diagnostics.suppress import apply, inline_suppressions
    from flowc.pipeline import compile_file

    documents = _documents(files)
    diagnostics = []
    inline = []
    listed = []
    for name in documents:
        result = compile_file(name, until="spec")
        diagnostics.extend(result.diagnostics)
        try:
            text = Path(name).read_text(encoding="utf-8", errors="replace")
        except OSError:
            continue  # compile_file reported it (FLC107)
        inline += inline_suppressions(name, text)
        listed += _listed(result)
    diagnostics = apply(diagnostics, ignored, inline, strict, listed)
    emit_diagnostics(diagnostics, fmt)
    if fmt == "text":
        click.echo(summary(diagnostics, len(documents)), err=True)
    return EXIT_ERRORS if failed(diagnostics, strict) else EXIT_OK


def _listed(result: Result) -> list[Listed]:
    """The entries of the document's ``flowc: {ignore: [...]}`` list; none when it did not pass the schema."""
    from flowc.diagnostics.suppress import listed_suppressions

    document = result.values.get("document")
    passed_schema = all(d.code >= "FLC300" for d in result.diagnostics if d.severity == "error")
    return listed_suppressions(document) if document is not None and passed_schema else []


@click.command()
@click.argument("file", type=FILE)
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
@click.option("-t", "--target", "targets", multiple=True, metavar="NAME[,NAME]", help=_target_help(),
              callback=lambda _ctx, _param, value: _targets(value))
@FORMAT
@STRICT
@guard
def build(file: str, out: Path, check_only: bool, namespace: str | None, project: str | None, resolve: bool,
          prices: str, flowc_path: str | None, targets: tuple[str, ...] | None, fmt: str, strict: bool) -> int:
    """Compile FILE and write everything that runs it into OUTPUT, atomically."""
    import re

    from flowc.emit.writer import OutputError, drift, write_output
    from flowc.model.options import BuildOptions
    from flowc.pipeline import collector_paused, compile_file

    if flowc_path is not None and not re.fullmatch(r"/[A-Za-z0-9._/+-]+", flowc_path):
        raise click.BadParameter("must be an absolute path of letters, digits and ._/+-", param_hint="--flowc-path")
    mithril: dict[str, object] = {"project": project}
    if resolve:
        from flowc.providers.mithril.api.client import ApiClient
        from flowc.providers.mithril.resolve import Resolver

        mithril["resolver"] = Resolver(ApiClient())
    oracle = None
    if prices != "none":
        from flowc.providers.mithril.provider import MithrilProvider

        oracle = MithrilProvider(source=prices)
    options = BuildOptions(prices=oracle, targets=targets, target_options={
        "kubernetes": {"namespace": namespace}, "systemd": {"flowc_path": flowc_path}, "mithril": mithril})
    result = compile_file(file, until="artifacts", options=options)
    emit_diagnostics(result.diagnostics, fmt, err=True)
    if result.artifacts is None or failed(result.diagnostics, strict):
        click.echo(f"flowc: {summary(result.diagnostics, 1)}; nothing written", err=True)
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
        with collector_paused():  # the heap holds the whole build: a full collection now would scan it for nothing
            write_output(artifacts, out)
    except OutputError as exc:
        click.echo(f"{out}: error[{exc.code}] {exc.message}\n  help: {exc.help}", err=True)
        return EXIT_ERRORS
    click.echo(f"flowc: wrote {len(artifacts) + 1} files to {out}", err=True)
    return EXIT_OK


@click.command()
@click.argument("file", type=FILE)
@click.option("-o", "--output", "out", type=click.Path(dir_okay=False, path_type=Path),
              help="Write here instead of stdout; .svg, .png or .pdf renders with Graphviz's 'dot'.")
@guard
def graph(file: str, out: Path | None) -> int:
    """Print the placement graph of FILE as Graphviz DOT."""
    from flowc.emit.graph import render_dot, render_image
    from flowc.pipeline import compile_file

    result = compile_file(file)
    emit_diagnostics(result.diagnostics, "text", err=True)
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


@click.command()
@guard
def schema() -> int:
    """Print flowc's JSON Schema (Draft 2020-12) for editors and other validators."""
    from flowc.data import resource_dir

    click.echo((resource_dir("schemas") / "flowc.schema.json").read_text(encoding="utf-8"), nl=False)
    return EXIT_OK


