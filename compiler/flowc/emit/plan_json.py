"""Emitter ``plan``: the resolved plan as ``flowc/plan.json`` (what the launcher reads)."""

from __future__ import annotations

from flowc.emit.artifact import Artifact
from flowc.emit.settings import NoSettings as Settings
from flowc.model.context import Context
from flowc.model.plan import Plan

__all__ = ["Settings", "emit"]

PLAN_PATH = "flowc/plan.json"


def emit(plan: Plan, settings: Settings, ctx: Context) -> list[Artifact]:
    """Serialize the plan.

    Args:
        plan: The resolved plan.
        settings: None to take.
        ctx: The context (unused: the plan always serializes).

    Returns:
        One artifact, ``flowc/plan.json``.
    """
    return [Artifact(PLAN_PATH, plan.to_json().encode("utf-8"))]
