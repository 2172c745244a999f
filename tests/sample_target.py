"""A target written the way the README's "Adding a target" says: ``Settings`` and ``emit`` in one module."""

from __future__ import annotations

from flowc.emit.artifact import Artifact
from flowc.emit.settings import TargetSettings
from flowc.model.context import Context
from flowc.model.plan import Plan


class Settings(TargetSettings):
    greeting: str = "hello"


def emit(plan: Plan, settings: Settings, ctx: Context) -> list[Artifact]:
    lines = "".join(f"{settings.greeting} {node}\n" for node in sorted(plan.nodes))
    return [Artifact("sample/nodes.txt", lines.encode())]
