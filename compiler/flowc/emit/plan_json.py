"""Emitter ``plan``: the resolved plan as ``flowc/plan.json`` (what the launcher reads)."""

from __future__ import annotations

from flowc.diagnostics import Context
from flowc.emit import Artifact
from flowc.model.plan import Plan

PLAN_PATH = "flowc/plan.json"


def emit_plan(plan: Plan, ctx: Context) -> list[Artifact]:
    """Serialize the plan.

    Args:
        plan: The resolved plan.
        ctx: The context (unused: the plan always serializes).

    Returns:
        One artifact, ``flowc/plan.json``.
    """
    return [Artifact(PLAN_PATH, plan.to_json().encode("utf-8"))]
