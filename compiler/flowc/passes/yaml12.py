"""Two rules of ruamel.yaml's YAML 1.2 loader that the fast parser applies without loading ruamel.yaml.

The fast path of pass ``parse`` (:mod:`flowc.passes.parse_fast`) must read a document exactly as the reference
parser (:mod:`flowc.passes.parse_ruamel`) does, and it must not import ruamel.yaml to do so: that import costs
more than the whole parse of an ordinary file. So this module holds, character for character, the patterns
ruamel.yaml uses for:

* the characters its reader refuses (:data:`NON_PRINTABLE`, ``ruamel.yaml.reader.Reader.NON_PRINTABLE``);
* the implicit types of plain scalars in YAML 1.2 (:func:`resolvers`, the table of
  ``ruamel.yaml.resolver.VersionedResolver`` for version 1.2: tag and pattern, by first character, in its order).

``tests/test_parse_fast.py`` holds both equal to what the installed ruamel.yaml gives, so they cannot drift apart.
"""

from __future__ import annotations

import re

#: A character ruamel.yaml's reader refuses (the same text as PyYAML's reader, which compiles it on import).
NON_PRINTABLE = re.compile("[^\x09\x0a\x0d\x20-\x7e\x85\xa0-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")

_DIGITS = tuple("0123456789")

#: ruamel.yaml's implicit resolvers for YAML 1.2: tag, pattern, flags and the first characters they apply to.
_RESOLVERS: tuple[tuple[str, str, int, tuple[str, ...]], ...] = (
    ("tag:yaml.org,2002:bool", """^(?:true|True|TRUE|false|False|FALSE)$""", re.X, tuple("tTfF")),
    ("tag:yaml.org,2002:float", """^(?:
         [-+]?(?:[0-9][0-9_]*)\\.[0-9_]*(?:[eE][-+]?[0-9]+)?
        |[-+]?(?:[0-9][0-9_]*)(?:[eE][-+]?[0-9]+)
        |[-+]?\\.[0-9_]+(?:[eE][-+][0-9]+)?
        |[-+]?\\.(?:inf|Inf|INF)
        |\\.(?:nan|NaN|NAN))$""", re.X, ("-", "+", *_DIGITS, ".")),
    ("tag:yaml.org,2002:int", """^(?:[-+]?0b[0-1_]+
        |[-+]?0o?[0-7_]+
        |[-+]?[0-9_]+
        |[-+]?0x[0-9a-fA-F_]+)$""", re.X, ("-", "+", *_DIGITS)),
    ("tag:yaml.org,2002:merge", "^(?:<<)$", 0, ("<",)),
    ("tag:yaml.org,2002:null", """^(?: ~
        |null|Null|NULL
        | )$""", re.X, ("~", "n", "N", "")),
    ("tag:yaml.org,2002:timestamp", """^(?:[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]
        |[0-9][0-9][0-9][0-9] -[0-9][0-9]? -[0-9][0-9]?
        (?:[Tt]|[ \\t]+)[0-9][0-9]?
        :[0-9][0-9] :[0-9][0-9] (?:\\.[0-9]*)?
        (?:[ \\t]*(?:Z|[-+][0-9][0-9]?(?::[0-9][0-9])?))?)$""", re.X, _DIGITS),
    ("tag:yaml.org,2002:value", "^(?:=)$", 0, ("=",)),
    ("tag:yaml.org,2002:yaml", "^(?:!|&|\\*)$", 0, tuple("!&*")),
)

_BY_FIRST: dict[str, tuple[tuple[str, re.Pattern[str]], ...]] = {}


def resolvers(first: str) -> tuple[tuple[str, re.Pattern[str]], ...]:
    """Return the implicit resolvers that apply to a plain scalar starting with ``first``.

    A pattern is compiled when a scalar first needs it, as ruamel.yaml does.

    Args:
        first: The scalar's first character, or ``""`` for an empty scalar.

    Returns:
        ``(tag, pattern)`` pairs in ruamel.yaml's order; empty when no implicit type starts with ``first``.

    Example:
        >>> [tag for tag, _ in resolvers("1")]
        ['tag:yaml.org,2002:float', 'tag:yaml.org,2002:int', 'tag:yaml.org,2002:timestamp']
        >>> resolvers("a")
        ()
    """
    found = _BY_FIRST.get(first)
    if found is None:
        found = _BY_FIRST[first] = tuple(
            (tag, re.compile(pattern, flags)) for tag, pattern, flags, firsts in _RESOLVERS if first in firsts
        )
    return found


def table() -> dict[str, list[tuple[str, re.Pattern[str]]]]:
    """Return the whole table, by first character, in the shape of ``VersionedResolver().versioned_resolver``.

    Example:
        >>> [tag for tag, _ in table()["~"]]
        ['tag:yaml.org,2002:null']
    """
    firsts = dict.fromkeys(first for *_, chars in _RESOLVERS for first in chars)
    return {first: list(resolvers(first)) for first in firsts}
