"""Did-you-mean suggestions for misspelled names and enum values."""

from __future__ import annotations

import difflib
from collections.abc import Iterable


def did_you_mean(word: str, candidates: Iterable[str]) -> str | None:
    """Return the closest candidate to ``word``, if one is close enough.

    Args:
        word: What the user wrote.
        candidates: The valid spellings.

    Returns:
        The best match, or ``None``.

    Example:
        >>> did_you_mean("packd", ["packed", "spread", "cluster"])
        'packed'
    """
    pool = sorted({str(c) for c in candidates})
    lowered = {c.lower(): c for c in pool}
    if word.lower() in lowered:
        return lowered[word.lower()]
    matches = difflib.get_close_matches(word, pool, n=1, cutoff=0.6)
    return matches[0] if matches else None


def help_for(word: str, candidates: Iterable[str], noun: str = "one of") -> str:
    """Build a help line: a did-you-mean when a candidate is close, else the list of valid values.

    Args:
        word: What the user wrote.
        candidates: The valid spellings.
        noun: How to introduce the list.

    Returns:
        The help text.

    Example:
        >>> help_for("sprad", ["packed", "spread"])
        "did you mean 'spread'?"
        >>> help_for("zzz", ["packed", "spread"])
        "expected one of: 'packed', 'spread'"
    """
    pool = sorted({str(c) for c in candidates})
    guess = did_you_mean(word, pool)
    if guess is not None:
        return f"did you mean '{guess}'?"
    listed = ", ".join(f"'{c}'" for c in pool[:12]) + (", ..." if len(pool) > 12 else "")
    return f"expected {noun}: {listed}" if pool else "remove it"
