"""The context every stage reports through: the file, its environment, what the command line asked, the findings.

It lives in the model because it carries :class:`~flowc.model.options.BuildOptions`; the findings themselves are
the one diagnostic model of :mod:`flowc.diagnostics`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from flowc.diagnostics.codes import CODES
from flowc.diagnostics.model import CompileError, Diagnostic, Severity, Span
from flowc.model.options import BuildOptions


@dataclass
class Context:
    """What a pass reports through: the file being compiled and the diagnostics found so far.

    Passes never build positions or message prefixes themselves; they call :meth:`error` or
    :meth:`warn` with a span (every IR and plan object carries its own) and the pipeline stops after any
    stage that reported an error. ``options`` is what the command line asked for (price data, targets and
    their settings, a :class:`~flowc.model.options.BuildOptions`); ``emits`` whether the emitters run after the
    checks (a build rather than ``flowc check``).
    """

    path: str
    environ: dict[str, str] = field(default_factory=dict)
    diagnostics: list[Diagnostic] = field(default_factory=list)
    options: BuildOptions = field(default_factory=BuildOptions)
    emits: bool = False

    def error(self, code: str, message: str, *, at: Span, help: str | None = None) -> None:
        """Record an error.

        Args:
            code: A registered code, ``FLCnnn``.
            message: Lower case, no trailing period, names quoted ``'like_this'``.
            at: Where the problem is.
            help: How to fix it.
        """
        self._add(code, Severity.ERROR, message, at, help)

    def warn(self, code: str, message: str, *, at: Span, help: str | None = None) -> None:
        """Record a warning; same arguments as :meth:`error`."""
        self._add(code, Severity.WARNING, message, at, help)

    def _add(self, code: str, severity: Severity, message: str, at: Span, help: str | None) -> None:
        if code not in CODES:
            raise KeyError(f"unregistered diagnostic code {code}")
        self.diagnostics.append(Diagnostic(code, severity, message, at, help))

    @property
    def has_errors(self) -> bool:
        """Whether any error has been recorded."""
        return any(d.severity is Severity.ERROR for d in self.diagnostics)

    def stop_if_errors(self) -> None:
        """End the compilation after a stage that found errors (collect, then raise).

        Raises:
            CompileError: When an error was recorded.
        """
        if self.has_errors:
            raise CompileError(self.diagnostics)
