"""Pass ``check_targets``: Spec → Spec, what each output target will refuse, found at check time.

Runs the checks the emitter registry lists (``TARGET_CHECKS``), so ``flowc check`` catches, for
example, names Kubernetes cannot take, without building any output. Emits the targets' FLC5xx codes.
"""

from __future__ import annotations

from flowc.diagnostics import Context
from flowc.emit import TARGET_CHECKS
from flowc.model import ir


def check_targets(spec: ir.Spec, ctx: Context) -> ir.Spec:
    """Run every target's check on ``spec``.

    Args:
        spec: The checked IR.
        ctx: The context that collects diagnostics.

    Returns:
        The same spec.
    """
    for check in TARGET_CHECKS.values():
        check(spec, ctx)
    return spec
