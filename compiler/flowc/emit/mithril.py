"""Emitter ``mithril``: each task's spot bid, the body of ``POST /v2/spot/bids``, with its reasons.

Writes ``mithril/<task>.json`` and ``mithril/<task>.explain.txt``. The choices were made by the
``resolve_bids`` pass; this module only serializes them.
"""

from __future__ import annotations

import json

from flowc.diagnostics import Context
from flowc.emit import Artifact
from flowc.model.plan import Plan


def emit_mithril(plan: Plan, ctx: Context) -> list[Artifact]:
    """Serialize every bid of the plan.

    Args:
        plan: The plan, with ``bids``.
        ctx: The context (unused).

    Returns:
        Two files per task.
    """
    out = []
    for name, bid in sorted(plan.bids.items()):
        body = json.dumps(bid.body, sort_keys=True, indent=2, ensure_ascii=False) + "\n"
        out.append(Artifact(f"mithril/{name}.json", body.encode()))
        explain = "".join(f"{line}\n" for line in (f"bid for task '{name}'", *bid.explain))
        out.append(Artifact(f"mithril/{name}.explain.txt", explain.encode()))
    return out
