"""Pass ``check_semantics``: Spec → Spec, all semantic checks as one stage.

Runs :func:`check_actors`, :func:`check_routes` and :func:`check_tasks` together, so one run reports
every semantic problem of the document (FLC3xx) before the pipeline stops.
"""

from __future__ import annotations

from flowc.diagnostics import Context
from flowc.model import ir
from flowc.passes.check_actors import check_actors
from flowc.passes.check_routes import check_routes
from flowc.passes.check_tasks import check_tasks


def check_semantics(spec: ir.Spec, ctx: Context) -> ir.Spec:
    """Run every semantic check on ``spec``.

    Args:
        spec: The IR.
        ctx: The context that collects diagnostics.

    Returns:
        The same spec.
    """
    for check in (check_actors, check_routes, check_tasks):
        spec = check(spec, ctx)
    return spec
