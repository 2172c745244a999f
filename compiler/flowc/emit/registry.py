"""The targets flowc builds, one entry each: what it emits, what ``flowc check`` asks of it, whether it is on.

Adding a target touches three places: its module or package under :mod:`flowc.emit` (``Settings`` and
``emit(plan, settings, ctx)``), its entry in :data:`TARGETS`, and its settings section in the JSON Schema
(``schemas/flowc.schema.json``, marked ``"x-flowc-target": true``). Emitters are loaded only when they run.
"""

from __future__ import annotations

import dataclasses
import functools
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from flowc.lazy import load
from flowc.model.context import Context

if TYPE_CHECKING:  # the check path imports this module and must not load the plan models
    from flowc.emit.artifact import Artifact
    from flowc.model import ir
    from flowc.model.plan import Plan


@dataclass(frozen=True)
class Target:
    """One output target.

    Attributes:
        name: What ``flowc build --target`` and the document's settings section call it.
        module: The module exposing ``Settings`` (a :class:`~flowc.emit.settings.TargetSettings`) and ``emit``.
        summary: One line for ``--help``.
        default: Whether a build without ``--target`` writes it.
        check: ``"module:function"`` run on the IR by ``flowc check``: what the target would refuse.
    """

    name: str
    module: str
    summary: str
    default: bool = True
    check: str | None = None


#: The plan is always written: it is flowc's record of the build and what ``flowc launch`` reads.
PLAN = Target("plan", "flowc.emit.plan_json", "flowc/plan.json, the resolved plan")
TARGETS: tuple[Target, ...] = (
    PLAN,
    Target("kubernetes", "flowc.emit.kubernetes.emitter", "Jobs, Services, Deployments, ConfigMaps at the top",
           check="flowc.emit.kubernetes.spec_checks:check_kubernetes"),
    Target("systemd", "flowc.emit.systemd", "systemd/<node>/: pinned units per actor for bare-metal hosts",
           check="flowc.emit.systemd_names:check_systemd_names"),
    Target("mithril", "flowc.emit.mithril.emitter", "mithril/<task>.json: spot bid bodies, with their reasons"),
    Target("graph", "flowc.emit.graph", "flowc/graph.dot: the placement graph in Graphviz DOT", default=False),
)


class UnknownTarget(ValueError):
    """A target name that is not in :data:`TARGETS` (the message lists them)."""


def select(names: tuple[str, ...] | None) -> list[Target]:
    """Return the targets a build writes: ``names`` (or the default ones), always with the plan, in registry order.

    Args:
        names: Target names, or ``None`` for the defaults.

    Returns:
        The targets.

    Raises:
        UnknownTarget: When a name is not a target.

    Example:
        >>> [t.name for t in select(("kubernetes",))]
        ['plan', 'kubernetes']
    """
    known = {target.name for target in TARGETS}
    unknown = sorted(set(names or ()) - known)
    if unknown:
        listed = ", ".join(repr(u) for u in unknown)
        raise UnknownTarget(f"unknown target {listed} (targets: {', '.join(sorted(known))})")
    return [t for t in TARGETS if t is PLAN or (t.default if names is None else t.name in names)]


def check_targets(spec: ir.Spec, ctx: Context) -> ir.Spec:
    """Run the checks of the selected targets on the IR (what they would refuse, found by ``flowc check``).

    Args:
        spec: The checked IR.
        ctx: The context; its options select the targets.

    Returns:
        The same spec.
    """
    for target in select(ctx.options.targets):
        if target.check is not None:
            load(target.check)(spec, ctx)
    return spec


def emit_targets(plan: Plan, ctx: Context) -> list[Artifact]:
    """Run the selected targets' emitters, each with its settings merged, and return the artifacts by path.

    Args:
        plan: The resolved plan.
        ctx: The context; emitters report target limitations (FLC5xx) through it.

    Returns:
        The artifacts, sorted by path.

    Raises:
        ValueError: When two targets claim the same path (a bug in an emitter).
    """
    from flowc.emit.parallel import run_jobs

    jobs = []
    for target in select(ctx.options.targets):
        settings = load(f"{target.module}:Settings").merged(
            plan.target_settings.get(target.name, {}), ctx.options.for_target(target.name), plan.source)
        jobs.append(functools.partial(_emit_one, load(f"{target.module}:emit"), plan, settings, ctx))
    artifacts: dict[str, Artifact] = {}
    for emitted, diagnostics in run_jobs(jobs, len(plan.nodes)):
        ctx.diagnostics.extend(diagnostics)
        for artifact in emitted:
            if artifact.path in artifacts:
                raise ValueError(f"two targets write '{artifact.path}'")
            artifacts[artifact.path] = artifact
    return [artifacts[path] for path in sorted(artifacts)]


def _emit_one(emit: Any, plan: Plan, settings: Any, ctx: Context) -> tuple[list[Artifact], list[Any]]:
    """Run one emitter with a context of its own; return its artifacts and what it reported."""
    own = dataclasses.replace(ctx, diagnostics=[])
    return list(emit(plan, settings, own)), own.diagnostics
