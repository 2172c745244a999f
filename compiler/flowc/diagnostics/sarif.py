"""Diagnostics as a SARIF 2.1.0 log, the format code-scanning services (GitHub's among them) upload.

One run of the tool ``flowc``: a rule per code that occurs, and a result per diagnostic (every one, in order, none
grouped). Relative paths become relative URIs under ``%SRCROOT%`` (where the scan started), absolute ones ``file:``
URIs; columns count code points, as flowc's spans do.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import PurePath
from typing import Any
from urllib.parse import quote

from flowc import __version__
from flowc.diagnostics.codes import CODES
from flowc.diagnostics.model import Diagnostic, Severity, Span

SCHEMA = "https://json.schemastore.org/sarif-2.1.0.json"
INFORMATION_URI = "https://github.com/flowc/flowc"  # the repository action.yml is used from (flowc/flowc@<rev>)
SOURCE_ROOT = "%SRCROOT%"
_LEVELS = {Severity.ERROR: "error", Severity.WARNING: "warning"}


def render_sarif(diagnostics: Iterable[Diagnostic]) -> str:
    """Render as a SARIF 2.1.0 log with one run; no diagnostics make a log with no results.

    Args:
        diagnostics: What to render.

    Returns:
        The JSON text (keys sorted) with a trailing newline.

    Example:
        >>> from flowc.diagnostics import Span
        >>> d = Diagnostic("FLC201", Severity.ERROR, "unknown key 'nmae'", Span("t.yaml", 2, 3, 2, 6))
        >>> run = json.loads(render_sarif([d]))["runs"][0]
        >>> [rule["id"] for rule in run["tool"]["driver"]["rules"]]
        ['FLC201']
        >>> result = run["results"][0]
        >>> result["level"], result["locations"][0]["physicalLocation"]["region"]
        ('error', {'endColumn': 7, 'startColumn': 3, 'startLine': 2})
    """
    found = list(diagnostics)
    codes = sorted({d.code for d in found})
    index = {code: number for number, code in enumerate(codes)}
    log = {
        "$schema": SCHEMA,
        "version": "2.1.0",
        "runs": [{
            "tool": {"driver": {
                "name": "flowc",
                "informationUri": INFORMATION_URI,
                "version": __version__,
                "rules": [{"id": code, "shortDescription": {"text": CODES[code]}} for code in codes],
            }},
            "columnKind": "unicodeCodePoints",
            "results": [_result(d, index[d.code]) for d in found],
        }],
    }
    return json.dumps(log, indent=2, sort_keys=True) + "\n"


def _result(d: Diagnostic, rule_index: int) -> dict[str, Any]:
    lines = [d.message]
    if d.help:
        lines.append(f"help: {d.help}")
    lines += [f"note: {note}" for note in d.notes]
    return {
        "ruleId": d.code,
        "ruleIndex": rule_index,
        "level": _LEVELS[d.severity],
        "message": {"text": "\n".join(lines)},
        "locations": [{"physicalLocation": {"artifactLocation": artifact_location(d.span.path),
                                            "region": region(d.span)}}],
    }


def artifact_location(path: str) -> dict[str, str]:
    """Name a file the way SARIF does: a relative URI under ``%SRCROOT%``, or a ``file:`` URI when absolute.

    Args:
        path: The file as the user gave it.

    Returns:
        A SARIF ``artifactLocation``.

    Example:
        >>> artifact_location("topologies/my app.yaml")
        {'uri': 'topologies/my%20app.yaml', 'uriBaseId': '%SRCROOT%'}
        >>> artifact_location("/srv/t.yaml")
        {'uri': 'file:///srv/t.yaml'}
    """
    pure = PurePath(path)
    if pure.is_absolute():
        return {"uri": pure.as_uri()}
    return {"uri": quote(pure.as_posix(), safe="/"), "uriBaseId": SOURCE_ROOT}


def region(span: Span) -> dict[str, int]:
    """Turn a span into a SARIF ``region``, whose end column is the one after the last (flowc's is the last).

    A span as wide as one column carries no end: flowc does not know the width of every span it reports.

    Args:
        span: The 1-based span.

    Returns:
        ``startLine`` and ``startColumn``, with ``endLine`` and ``endColumn`` when the span is wider.

    Example:
        >>> region(Span("t.yaml", 3, 5))
        {'startLine': 3, 'startColumn': 5}
        >>> region(Span("t.yaml", 3, 5, 4, 2))
        {'startLine': 3, 'startColumn': 5, 'endLine': 4, 'endColumn': 3}
    """
    out = {"startLine": span.line, "startColumn": span.col}
    if (span.end_line, span.end_col) > (span.line, span.col):
        if span.end_line != span.line:
            out["endLine"] = span.end_line
        out["endColumn"] = span.end_col + 1
    return out
