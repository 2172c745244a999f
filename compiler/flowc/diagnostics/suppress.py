"""Suppressing diagnostics the way linters do: ``--ignore CODE`` and an inline ``# flowc: ignore[CODE]`` comment.

An inline comment applies to the line it is on: a diagnostic whose position is on that line and whose code it
names is dropped (``# flowc: ignore[FLC504, FLC302]`` names several). A comment that suppressed nothing is itself
reported under ``--strict`` as FLC001, at the comment, so stale suppressions do not pile up.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from flowc.diagnostics.model import Diagnostic, Severity, Span

_INLINE = re.compile(r"#\s*flowc:\s*ignore\[([A-Za-z0-9_,\s]+)\]")
_CODE = re.compile(r"FLC[0-9]{3}")


@dataclass(frozen=True)
class Inline:
    """One inline suppression: the codes it names on one line of one file."""

    path: str
    line: int
    col: int
    codes: frozenset[str]


def inline_suppressions(path: str, text: str) -> list[Inline]:
    r"""Every ``# flowc: ignore[...]`` comment of a document.

    Example:
        >>> text = "a: 1\nb: 2  # flowc: ignore[FLC504]\n"
        >>> [(s.line, sorted(s.codes)) for s in inline_suppressions("t.yaml", text)]
        [(2, ['FLC504'])]
    """
    found = []
    for number, line in enumerate(text.splitlines(), start=1):
        match = _INLINE.search(line)
        if match:
            codes = frozenset(c.upper() for c in re.split(r"[,\s]+", match.group(1)) if c)
            found.append(Inline(path, number, match.start() + 1, codes))
    return found


def apply(diagnostics: Iterable[Diagnostic], ignored: Iterable[str], inline: list[Inline],
          report_unused: bool) -> list[Diagnostic]:
    """Drop the suppressed diagnostics; under ``report_unused`` add FLC001 for each inline one that dropped nothing.

    Args:
        diagnostics: What the compiler found.
        ignored: Codes ignored everywhere (``--ignore``).
        inline: The inline suppressions of the files checked.
        report_unused: Report unused inline suppressions (``--strict``).

    Returns:
        The diagnostics left, in their order, then the FLC001 warnings.
    """
    everywhere = {code.upper() for code in ignored}
    by_line = {(s.path, s.line): s for s in inline}
    used: set[tuple[str, int, str]] = set()
    kept = []
    for d in diagnostics:
        if d.code in everywhere:
            continue
        here = by_line.get((d.span.path, d.span.line))
        if here is not None and d.code in here.codes:
            used.add((here.path, here.line, d.code))
            continue
        kept.append(d)
    if report_unused:
        for s in inline:
            for code in sorted(s.codes):
                if (s.path, s.line, code) not in used:
                    kept.append(Diagnostic("FLC001", Severity.WARNING, f"unused suppression of {code}",
                                           Span(s.path, s.line, s.col, s.line, s.col),
                                           help="remove it: nothing here reports that code any more"))
    return kept


def valid_code(code: str) -> bool:
    """Whether ``code`` looks like a flowc diagnostic code (``FLC`` and three digits)."""
    return bool(_CODE.fullmatch(code.upper()))
