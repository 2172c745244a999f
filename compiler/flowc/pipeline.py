"""The compiler driver: the one place that orders the stages, folded in order.

:data:`STAGES` reads top to bottom as the compilation does: text → document → spec (the IR, checked) → placement
graph → plan → artifacts. Each stage is one function ``stage(value, ctx) -> value`` loaded on first use, so
``flowc check`` never imports what only a build needs. A stage with ``gate`` ends the compilation when it (or
an ungated stage before it) reported an error: errors of one phase are collected, then reported together.
"""

from __future__ import annotations

import contextlib
import gc
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from flowc.diagnostics import CompileError, Diagnostic, Span
from flowc.lazy import load
from flowc.model.context import Context
from flowc.model.options import BuildOptions

Kind = Literal["text", "document", "spec", "graph", "plan", "artifacts"]


@dataclass(frozen=True)
class Stage:
    """One step of the compilation.

    Attributes:
        name: The stage's name (its function's).
        run: ``"module:function"``, called as ``function(value, ctx)``.
        consumes: The kind of value it takes.
        produces: The kind of value it returns.
        gate: Stop after this stage when an error has been reported.
    """

    name: str
    run: str
    consumes: Kind
    produces: Kind
    gate: bool = True


def _pass(name: str, consumes: Kind, produces: Kind, gate: bool = True) -> Stage:
    return Stage(name, f"flowc.passes.{name}:{name}", consumes, produces, gate)


STAGES: tuple[Stage, ...] = (
    _pass("parse", "text", "document"),
    _pass("substitute", "document", "document"),
    _pass("check_schema", "document", "document"),
    _pass("lower", "document", "spec"),
    # The semantic checks form one phase: every FLC3xx of the document is reported together.
    _pass("check_actors", "spec", "spec", gate=False),
    _pass("check_routes", "spec", "spec", gate=False),
    _pass("check_tasks", "spec", "spec"),
    _pass("check_transports", "spec", "spec"),
    Stage("check_targets", "flowc.emit.registry:check_targets", "spec", "spec"),
    _pass("place", "spec", "graph"),
    _pass("resolve_transports", "graph", "plan"),
    _pass("choose_offers", "plan", "plan"),
    Stage("emit_targets", "flowc.emit.registry:emit_targets", "plan", "artifacts"),
)


def stages_until(kind: Kind) -> tuple[Stage, ...]:
    """Return the stages up to and including the last one that produces ``kind``.

    Example:
        >>> [s.name for s in stages_until("spec")][-1], [s.name for s in stages_until("plan")][-1]
        ('check_targets', 'choose_offers')
    """
    last = max(i for i, stage in enumerate(STAGES) if stage.produces == kind)
    return STAGES[:last + 1]


@dataclass(frozen=True)
class Result:
    """What a compilation produced, by kind, and every diagnostic.

    ``values`` holds the last value of each kind that a stage produced and its gate let through: after an error,
    what the compilation had before it (the checked document, when the error was a semantic one).
    """

    diagnostics: list[Diagnostic]
    values: Mapping[Kind, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        """Whether no error was reported."""
        return not any(d.severity == "error" for d in self.diagnostics)

    @property
    def plan(self) -> Any:
        """The :class:`~flowc.model.plan.Plan`, when the compilation reached it."""
        return self.values.get("plan")

    @property
    def artifacts(self) -> Any:
        """The emitted :class:`~flowc.emit.artifact.Artifact` list, when the compilation reached it."""
        return self.values.get("artifacts")


def compile_source(text: str, path: str, *, environ: Mapping[str, str] | None = None, until: Kind = "plan",
                   options: BuildOptions | None = None) -> Result:
    r"""Fold the stages over one document, up to the stage that produces ``until``.

    Args:
        text: The document's text.
        path: Its name in diagnostics.
        environ: Variables for ``${VAR}`` substitution (defaults to the process environment).
        until: ``"spec"`` checks (what ``flowc check`` runs), ``"plan"`` plans, ``"artifacts"`` builds.
        options: Price data, targets and their command-line settings.

    Returns:
        The result; it holds no value when an error stopped the compilation.

    Example:
        >>> result = compile_source("name: x\ninstance_type: 8xh100\n", "t.yaml")
        >>> result.ok, result.plan.tasks["x"].instance.gpu_count
        (True, 8)
    """
    ctx = Context(path, dict(os.environ if environ is None else environ), options=options or BuildOptions(),
                  emits=until == "artifacts")
    value: Any = text
    values: dict[Kind, Any] = {}
    try:
        with collector_paused():
            for stage in stages_until(until):
                value = load(stage.run)(value, ctx)
                if stage.gate:
                    ctx.stop_if_errors()
                values[stage.produces] = value
    except CompileError as exc:
        return Result(exc.diagnostics, values)
    return Result(sorted(ctx.diagnostics, key=lambda d: d.sort_key), values)


@contextlib.contextmanager
def collector_paused() -> Iterator[None]:
    """Pause Python's cyclic garbage collector for a compilation, and restore it after.

    The stages build hundreds of thousands of objects that reference counting frees; the cyclic collector would
    scan the growing young heap again and again for cycles that are not there, which made large builds grow
    faster than linearly (a third of a 1,000-node build's parse time). On the way out the objects still alive go
    to the oldest generation, so the first allocation after the block does not pay for scanning all of them.

    Yields:
        Nothing; the collector runs again (if it ran before) when the block ends.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        # Everything allocated meanwhile sits in the youngest generation, and the collector would scan all of it at
        # the next allocation; freezing and unfreezing moves it to the oldest generation instead, which a full
        # collection (rare, and sized to the heap) scans when it comes.
        gc.freeze()
        gc.unfreeze()
        if was_enabled:
            gc.enable()


def compile_file(path: str | Path, *, environ: Mapping[str, str] | None = None, until: Kind = "plan",
                 options: BuildOptions | None = None) -> Result:
    """Read and compile one file; unreadable files become an FLC107 diagnostic, oversized ones FLC102.

    At most :data:`~flowc.passes.parse.MAX_BYTES` + 1 bytes are read, so a device or a pipe that never ends
    (``/dev/zero``) is refused without being read to its end.

    Args:
        path: The file.
        environ: Variables for substitution.
        until: Where to stop (see :func:`compile_source`).
        options: Price data, targets and their command-line settings.

    Returns:
        The result.
    """
    from flowc.passes.parse import MAX_BYTES

    name = str(path)
    try:
        with Path(path).open("rb") as handle:
            raw = handle.read(MAX_BYTES + 1)
        if len(raw) > MAX_BYTES:
            ctx = Context(name)
            ctx.error("FLC102", f"input is larger than {MAX_BYTES // (1024 * 1024)} MiB", at=Span(name, 1, 1),
                      help="split the topology into several files")
            return Result(ctx.diagnostics)
        # Universal newlines, as a file opened in text mode reads them.
        text = raw.decode("utf-8").replace("\r\n", "\n").replace("\r", "\n")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        ctx = Context(name)
        ctx.error("FLC107", f"cannot read the file: {reason.lower()}", at=Span(name, 1, 1),
                  help="flowc reads utf-8 yaml files")
        return Result(ctx.diagnostics)
    return compile_source(text, name, environ=environ, until=until, options=options)
