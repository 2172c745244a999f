"""The one diagnostic model: spans, diagnostics, and the errors that end a compilation or a command.

Positions are 1-based everywhere in this module; the parser converts ruamel.yaml's 0-based marks
exactly once (see :func:`Span.from_mark`).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass


class Severity(enum.StrEnum):
    """How bad a diagnostic is."""

    ERROR = "error"
    WARNING = "warning"


@dataclass(frozen=True, order=True)
class Span:
    """A region of a source file, 1-based, end inclusive of the last column's start.

    Example:
        >>> Span("t.yaml", 3, 5)
        Span(path='t.yaml', line=3, col=5, end_line=3, end_col=5)
    """

    path: str
    line: int
    col: int
    end_line: int = 0
    end_col: int = 0

    def __post_init__(self) -> None:
        """Default the end of the span to its start."""
        if not self.end_line:
            object.__setattr__(self, "end_line", self.line)
        if not self.end_col:
            object.__setattr__(self, "end_col", self.col)

    @classmethod
    def from_mark(cls, path: str, line0: int, col0: int, length: int = 0) -> Span:
        """Build a span from ruamel.yaml's 0-based line and column.

        Args:
            path: The file the mark belongs to.
            line0: 0-based line.
            col0: 0-based column.
            length: Width of the spanned text on that line, if known.

        Returns:
            The 1-based span.

        Example:
            >>> Span.from_mark("t.yaml", 0, 0, 4).end_col
            4
        """
        return cls(path, line0 + 1, col0 + 1, line0 + 1, col0 + max(length, 1))


@dataclass(frozen=True)
class Diagnostic:
    """One finding about the input, with where it is and how to fix it."""

    code: str
    severity: Severity
    message: str
    span: Span
    help: str | None = None
    notes: tuple[str, ...] = ()

    @property
    def sort_key(self) -> tuple:
        """Order diagnostics by file position, then code, then message."""
        return (self.span.path, self.span.line, self.span.col, self.code, self.message)


class UserError(Exception):
    """A problem with what the user handed a command (not a bug): the CLI prints it and exits 1."""


class CompileError(Exception):
    """Raised by the pipeline when a stage ends with errors; carries every diagnostic so far."""

    def __init__(self, diagnostics: list[Diagnostic]) -> None:
        """Keep the diagnostics, sorted by position.

        Args:
            diagnostics: Every diagnostic collected up to and including the failing stage.
        """
        super().__init__(f"{sum(d.severity is Severity.ERROR for d in diagnostics)} error(s)")
        self.diagnostics = sorted(diagnostics, key=lambda d: d.sort_key)
