"""Renderers for diagnostics: concise text, JSON, GitHub Actions annotations and SARIF (:mod:`.sarif`).

Renderers only format; they never print or exit (the CLI does both).
"""

from __future__ import annotations

import json
from collections.abc import Iterable

from flowc.diagnostics import Diagnostic
from flowc.diagnostics.codes import CODES
from flowc.diagnostics.sarif import render_sarif


def render_text(diagnostics: Iterable[Diagnostic]) -> str:
    """Render as ``path:line:col: severity[code] message`` with an indented ``help:`` line.

    Repeated diagnostics of one code are grouped: the first in full where it falls, then how many more there are
    and each one's place and message on a line of its own, with its help when it differs from the first's (so a
    warning that applies to a hundred nodes takes a hundred lines, not two hundred). JSON and the other formats
    list every diagnostic as it is.

    Args:
        diagnostics: What to render.

    Returns:
        The text, one block per diagnostic or group, ending in a newline (empty when there is nothing).

    Example:
        >>> from flowc.diagnostics import Severity, Span
        >>> d = Diagnostic("FLC201", Severity.ERROR, "unknown key 'nmae'", Span("t.yaml", 1, 1), "did you mean 'name'?")
        >>> print(render_text([d]), end="")
        t.yaml:1:1: error[FLC201] unknown key 'nmae'
          help: did you mean 'name'?
    """
    groups: dict[str, list[Diagnostic]] = {}
    for d in diagnostics:
        groups.setdefault(d.code, []).append(d)
    lines = []
    for first, *more in groups.values():
        lines.append(f"{first.span.path}:{first.span.line}:{first.span.col}: {first.severity.value}[{first.code}] "
                     f"{first.message}")
        if first.help:
            lines.append(f"  help: {first.help}")
        lines.extend(f"  note: {note}" for note in first.notes)
        if more:
            lines.append(f"  and {len(more)} more {first.code} ({CODES.get(first.code, first.code)}):")
            lines.extend(f"    {d.span.path}:{d.span.line}:{d.span.col}: {d.severity.value} {d.message}"
                         + (f" (help: {d.help})" if d.help and d.help != first.help else "") for d in more)
    return "".join(line + "\n" for line in lines)


def render_json(diagnostics: Iterable[Diagnostic]) -> str:
    """Render as a JSON list of objects with code, title, severity, message, help and span.

    Args:
        diagnostics: What to render.

    Returns:
        The JSON text with a trailing newline.
    """
    items = [{
        "code": d.code, "title": CODES[d.code], "severity": d.severity.value, "message": d.message,
        "help": d.help, "notes": list(d.notes),
        "span": {"path": d.span.path, "line": d.span.line, "col": d.span.col, "end_line": d.span.end_line,
                 "end_col": d.span.end_col},
    } for d in diagnostics]
    return json.dumps(items, indent=2, sort_keys=True) + "\n"


def _escape_data(text: str) -> str:
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def _escape_property(text: str) -> str:
    return _escape_data(text).replace(":", "%3A").replace(",", "%2C")


def render_github(diagnostics: Iterable[Diagnostic]) -> str:
    """Render as GitHub Actions workflow commands (``::error file=...,line=...,col=...::message``).

    Args:
        diagnostics: What to render.

    Returns:
        One workflow command per line.

    Example:
        >>> from flowc.diagnostics import Severity, Span
        >>> d = Diagnostic("FLC201", Severity.WARNING, "x", Span("t.yaml", 2, 3))
        >>> render_github([d]).strip()
        '::warning file=t.yaml,line=2,col=3,endLine=2,endColumn=3,title=FLC201::x'
    """
    out = []
    for d in diagnostics:
        s = d.span
        props = (f"file={_escape_property(s.path)},line={s.line},col={s.col},endLine={s.end_line},"
                 f"endColumn={s.end_col},title={d.code}")
        message = d.message + (f"\nhelp: {d.help}" if d.help else "")
        out.append(f"::{d.severity.value} {props}::{_escape_data(message)}\n")
    return "".join(out)


RENDERERS = {"text": render_text, "json": render_json, "github": render_github, "sarif": render_sarif}
