"""The emitter registry: each target turns a plan into artifacts (relative path → content).

Adding a target means one module here and one entry in :data:`EMITTERS` (and in
:data:`TARGET_CHECKS` when it can refuse something ``flowc check`` should report). Paths at the top level of
the output directory are reserved for Kubernetes objects, so ``kubectl apply -f out/`` works; every
other target writes under its own subfolder.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from flowc.diagnostics import Context

if TYPE_CHECKING:
    from flowc.model.plan import Plan


@dataclass(frozen=True, order=True)
class Artifact:
    """One output file.

    Attributes:
        path: Relative, ``/``-separated path inside the output directory.
        content: The file's bytes.
        executable: Whether the file gets mode 0755 instead of 0644.
    """

    path: str
    content: bytes
    executable: bool = False


Emitter = Callable[["Plan", Context], list[Artifact]]


def _plan(plan: Plan, ctx: Context) -> list[Artifact]:
    from flowc.emit.plan_json import emit_plan

    return emit_plan(plan, ctx)


def _kubernetes(plan: Plan, ctx: Context) -> list[Artifact]:
    from flowc.emit.kubernetes.emitter import emit_kubernetes

    return emit_kubernetes(plan, ctx)


def _systemd(plan: Plan, ctx: Context) -> list[Artifact]:
    from flowc.emit.systemd import emit_systemd

    return emit_systemd(plan, ctx)


def _mithril(plan: Plan, ctx: Context) -> list[Artifact]:
    from flowc.emit.mithril import emit_mithril

    return emit_mithril(plan, ctx)


def _check_kubernetes(spec: Any, ctx: Context) -> None:
    from flowc.emit.kubernetes.names import check_kubernetes_names

    check_kubernetes_names(spec, ctx)


#: Target name → emitter, in the order they run.
EMITTERS: dict[str, Emitter] = {"plan": _plan, "kubernetes": _kubernetes, "systemd": _systemd, "mithril": _mithril}
#: Target name → check of the IR that ``flowc check`` runs (what the target would refuse).
TARGET_CHECKS: dict[str, Callable[[Any, Context], None]] = {"kubernetes": _check_kubernetes}


def emit_all(plan: Plan, ctx: Context, targets: tuple[str, ...] | None = None) -> list[Artifact]:
    """Run the emitters and return their artifacts sorted by path.

    Args:
        plan: The resolved plan.
        ctx: The context; emitters report target limitations (FLC5xx) through it.
        targets: Which emitters to run (all when ``None``).

    Returns:
        The artifacts.

    Raises:
        ValueError: When two emitters claim the same path (a bug in an emitter).
    """
    artifacts: dict[str, Artifact] = {}
    for name, emitter in EMITTERS.items():
        if targets is not None and name not in targets:
            continue
        for artifact in emitter(plan, ctx):
            if artifact.path in artifacts:
                raise ValueError(f"two emitters write '{artifact.path}'")
            artifacts[artifact.path] = artifact
    return [artifacts[path] for path in sorted(artifacts)]
