"""Suppressing diagnostics the way linters do: ``--ignore CODE``, a document's list and an inline comment.

``--ignore`` drops codes in every file checked. A document's top-level ``flowc: {ignore: [FLC504]}`` drops them
in that document only, and an inline ``# flowc: ignore[CODE]`` comment on the line it is on: a diagnostic whose
position is on that line and whose code it names is dropped (``# flowc: ignore[FLC504, FLC302]`` names several).
A list entry or a comment that suppressed nothing is itself reported under ``--strict`` as FLC001, where it is
written, so stale suppressions do not pile up.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from flowc.diagnostics.codes import CODES
from flowc.diagnostics.model import Diagnostic, Severity, Span

if TYPE_CHECKING:
    from flowc.model.document import Document

SECTION = "flowc"
"""The top-level key of a document that holds its ``ignore`` list."""

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


@dataclass(frozen=True)
class Listed:
    """One entry of a document's ``flowc: {ignore: [...]}`` list: a code dropped anywhere in that document."""

    code: str
    span: Span


def listed_suppressions(doc: Document) -> list[Listed]:
    """Every entry of the document's ``flowc: {ignore: [...]}`` list that names a registered code.

    The schema has already reported every other entry (FLC203), so those are left out here.

    Args:
        doc: The document, after the schema check.

    Returns:
        The entries, in the order written, each at its place in the list.

    Example:
        >>> from flowc.model.document import Document
        >>> doc = Document("t.yaml", {"flowc": {"ignore": ["FLC504", "FLC999"]}})
        >>> [entry.code for entry in listed_suppressions(doc)]
        ['FLC504']
    """
    section = doc.data.get(SECTION) if isinstance(doc.data, dict) else None
    codes = section.get("ignore") if isinstance(section, dict) else None
    if not isinstance(codes, list):
        return []
    return [Listed(code, doc.span((SECTION, "ignore", index)))
            for index, code in enumerate(codes) if isinstance(code, str) and code in CODES]


def apply(diagnostics: Iterable[Diagnostic], ignored: Iterable[str], inline: list[Inline],
          report_unused: bool, listed: Sequence[Listed] = ()) -> list[Diagnostic]:
    """Drop the suppressed diagnostics; under ``report_unused`` add FLC001 for each suppression that dropped nothing.

    A suppression is used when a diagnostic it names falls where it applies, even if another suppression (or
    ``--ignore``) names that diagnostic too: only one that matches nothing at all is stale.

    Args:
        diagnostics: What the compiler found.
        ignored: Codes ignored everywhere (``--ignore``).
        inline: The inline suppressions of the files checked.
        report_unused: Report unused inline suppressions and list entries (``--strict``).
        listed: The entries of the ``flowc: {ignore: [...]}`` lists of the files checked.

    Returns:
        The diagnostics left, in their order, then the FLC001 warnings (list entries first, then comments).
    """
    everywhere = {code.upper() for code in ignored}
    by_line = {(s.path, s.line): s for s in inline}
    by_file = {(entry.span.path, entry.code) for entry in listed}
    used: set[tuple[str, int, str]] = set()
    used_listed: set[tuple[str, str]] = set()
    kept = []
    for d in diagnostics:
        dropped = d.code in everywhere
        if (d.span.path, d.code) in by_file:
            used_listed.add((d.span.path, d.code))
            dropped = True
        here = by_line.get((d.span.path, d.span.line))
        if here is not None and d.code in here.codes:
            used.add((here.path, here.line, d.code))
            dropped = True
        if not dropped:
            kept.append(d)
    if report_unused:
        for entry in listed:
            if (entry.span.path, entry.code) not in used_listed:
                kept.append(Diagnostic("FLC001", Severity.WARNING, f"unused suppression of {entry.code}", entry.span,
                                       help=f"remove it from '{SECTION}: ignore': nothing in this document reports "
                                            "that code any more"))
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
