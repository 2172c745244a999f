"""``flowc keys generate``: the keys that authenticate a plan's routes, kept out of the build output."""

from __future__ import annotations

import json
from pathlib import Path

import click

from flowc.cli.common import EXIT_ERRORS, EXIT_OK, guard


@click.group()
def keys() -> None:
    """Make the keys routes authenticate with (Curve25519, for the Noise handshake), per node."""


@keys.command("generate")
@click.argument("plan", type=click.Path(exists=True, path_type=Path))
@click.option("-o", "--output", "output", required=True, type=click.Path(path_type=Path),
              help="The key folder to write (not inside a build output).")
@click.option("-n", "--namespace", help="Namespace of the Kubernetes Secrets (default: the document's).")
@click.option("--force", is_flag=True, help="Replace the keys already in the folder.")
@guard
def generate(plan: Path, output: Path, namespace: str | None, force: bool) -> int:
    """Make a keypair for every node of PLAN's authenticated routes (PLAN: plan.json or a build's output folder).

    Each node's folder holds its keypair and its peers' public keys; KEYS/kubernetes/ has them as the Secrets
    the Deployments mount (kubectl apply -f KEYS/kubernetes/), and a systemd host installs its node's folder
    where its units' LoadCredential= lines point (see the node's README).
    """
    from flowc.emit.key_folder import write_key_folder
    from flowc.emit.kubernetes.settings import Settings
    from flowc.emit.writer import OutputError
    from flowc.model.plan import Plan
    from flowc.runtime.route_keys import generate as generate_keys

    path = plan / "flowc" / "plan.json" if plan.is_dir() else plan
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        whole = Plan.model_validate(data)
    except (OSError, UnicodeDecodeError, ValueError, RecursionError) as exc:
        reason = str(getattr(exc, "strerror", None) or exc).splitlines()[0]
        click.echo(f"flowc keys: error: {path} is not a whole flowc plan ({reason})", err=True)
        click.echo("  help: pass out/flowc/plan.json (or out/) of 'flowc build FILE -o out/'", err=True)
        return EXIT_ERRORS
    made = generate_keys(whole.routes, {"plan": whole.source})
    if not made:
        click.echo(f"flowc keys: no route of {path} authenticates (all say 'auth: none'); nothing to write", err=True)
        return EXIT_OK
    section = dict(whole.target_settings.get("kubernetes", {}))
    settings = Settings.merged(section, {"namespace": namespace}, whole.source)
    try:
        written = write_key_folder(made, output, whole.source, settings, force=force)
    except OutputError as exc:
        click.echo(f"flowc keys: error[{exc.code}]: {exc.message}", err=True)
        click.echo(f"  help: {exc.help}", err=True)
        return EXIT_ERRORS
    click.echo(f"flowc keys: wrote keys of {len(made)} node(s) ({len(written)} files) to {output}", err=True)
    click.echo(f"  kubernetes: kubectl apply -f {output}/kubernetes/", err=True)
    click.echo(f"  systemd: install {output}/<node>/ on each host as its README says", err=True)
    click.echo(f"  flowc launch: --keys {output}", err=True)
    return EXIT_OK
