"""The compiler driver: the one place that orders the passes.

``PASSES`` reads top to bottom as the compilation does. After each pass the driver stops if that pass
reported an error (collect, then raise), so a document with a schema error is never lowered and
every error of one stage is reported together.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from flowc.diagnostics import CompileError, Context, Diagnostic, Span
from flowc.passes.check_schema import check_schema
from flowc.passes.check_semantics import check_semantics
from flowc.passes.check_targets import check_targets
from flowc.passes.check_transports import check_transports
from flowc.passes.lower import lower
from flowc.passes.parse import parse
from flowc.passes.substitute import substitute


def _place(spec: Any, ctx: Context) -> Any:
    from flowc.passes.place import place

    return place(spec, ctx)


def _resolve_transports(graph: Any, ctx: Context) -> Any:
    from flowc.passes.resolve_transports import resolve_transports

    return resolve_transports(graph, ctx)


def _emit(plan: Any, ctx: Context) -> Any:
    from flowc.emit import emit_all

    return emit_all(plan, ctx)


def _resolve_bids(plan: Any, ctx: Context) -> Any:
    from flowc.passes.resolve_bids import resolve_bids

    return resolve_bids(plan, ctx)


Pass = Callable[[Any, Context], Any]

#: Checks end at ``check_targets``; the last two passes need networkx and are loaded on demand.
CHECK_PASSES: tuple[Pass, ...] = (
    parse, substitute, check_schema, lower, check_semantics, check_transports, check_targets,
)
PASSES: tuple[Pass, ...] = (*CHECK_PASSES, _place, _resolve_transports, _resolve_bids)
#: A build runs the emitters last; their diagnostics (FLC5xx) stop it like any other stage's.
BUILD_PASSES: tuple[Pass, ...] = (*PASSES, _emit)


@dataclass(frozen=True)
class Result:
    """What a compilation produced and every diagnostic.

    ``plan`` is set when the passes reached the plan; ``artifacts`` when they also ran the emitters.
    """

    plan: Any
    diagnostics: list[Diagnostic]
    artifacts: Any = None

    @property
    def ok(self) -> bool:
        """Whether no error was reported."""
        return not any(d.severity == "error" for d in self.diagnostics)


def compile_source(text: str, path: str, *, environ: Mapping[str, str] | None = None,
                   passes: tuple[Pass, ...] = PASSES, options: Mapping[str, Any] | None = None) -> Result:
    r"""Run ``passes`` over one document.

    Args:
        text: The document's text.
        path: Its name in diagnostics.
        environ: Variables for ``${VAR}`` substitution (defaults to the process environment).
        passes: Which passes to run; :data:`CHECK_PASSES` stops before planning, :data:`BUILD_PASSES`
            runs the emitters too.
        options: Settings for the emitters (``namespace``).

    Returns:
        The result; ``plan`` is ``None`` when an error stopped the compilation.

    Example:
        >>> result = compile_source("name: x\ninstance_type: 8xh100\n", "t.yaml")
        >>> result.ok, result.plan.tasks["x"].instance.gpu_count
        (True, 8)
    """
    ctx = Context(path, dict(os.environ if environ is None else environ), options=dict(options or {}))
    value: Any = text
    plan: Any = None
    try:
        for step in passes:
            value = step(value, ctx)
            if step is parse or step is substitute:
                ctx.document = value
            if step is _resolve_transports or step is _resolve_bids:
                plan = value
            ctx.stop_if_errors()
    except CompileError as exc:
        return Result(None, exc.diagnostics)
    diagnostics = sorted(ctx.diagnostics, key=lambda d: d.sort_key)
    return Result(plan, diagnostics, value if passes[-1] is _emit else None)


def compile_file(path: str | Path, *, environ: Mapping[str, str] | None = None,
                 passes: tuple[Pass, ...] = PASSES, options: Mapping[str, Any] | None = None) -> Result:
    """Read and compile one file; unreadable files become an FLC107 diagnostic.

    Args:
        path: The file.
        environ: Variables for substitution.
        passes: Which passes to run.
        options: Settings for the emitters.

    Returns:
        The result.
    """
    name = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        ctx = Context(name)
        ctx.error("FLC107", f"cannot read the file: {reason.lower()}", at=Span(name, 1, 1),
                  help="flowc reads utf-8 yaml files")
        return Result(None, ctx.diagnostics)
    return compile_source(text, name, environ=environ, passes=passes, options=options)
