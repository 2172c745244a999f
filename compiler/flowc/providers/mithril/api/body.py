"""Decode a Mithril response body into plain JSON values without trusting its size, depth or numbers.

:func:`decode_json` is the only way the client turns bytes into values. A body the rest of flowc could choke on
is refused here with :class:`BodyError` (a ``ValueError``), which the client turns into
:class:`~.errors.MalformedResponse`: nesting deeper than :data:`MAX_DEPTH` (Python's own decoder would raise
``RecursionError`` on 100,000 brackets, and every later walk over the value would recurse as deep), integers
longer than :data:`MAX_INT_DIGITS` digits, non-finite numbers (``NaN``, ``Infinity``, ``1e999``), invalid UTF-8
and lone surrogates, which no later encoder (sqlite, the terminal) accepts.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

MAX_DEPTH = 64
"""Deepest nesting of arrays and objects accepted; the documented bodies need 4."""

MAX_INT_DIGITS = 30
"""Longest integer accepted, in digits (a sign aside); counts and cents need far fewer."""

_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
_NOT_BRACKET = bytes(b for b in range(256) if b not in b"[]{}")
_DEPTH_STEP = {ord("["): 1, ord("{"): 1, ord("]"): -1, ord("}"): -1}


class BodyError(ValueError):
    """A body that is not JSON flowc accepts; ``str()`` says why, in lower case."""


def max_depth(raw: bytes) -> int:
    """Return how deeply the arrays and objects of a JSON text nest, without parsing it.

    Strings are removed first, so brackets inside them do not count; the scan is linear and never recurses.

    Example:
        >>> max_depth(b'{"a": [[1], "]]]"]}'), max_depth(b"7")
        (3, 0)
    """
    brackets = _STRING.sub(b"", raw).translate(None, _NOT_BRACKET)
    depth = deepest = 0
    for byte in brackets:
        depth += _DEPTH_STEP[byte]
        if depth > deepest:
            deepest = depth
    return deepest


def _parse_int(text: str) -> int:
    if len(text.lstrip("-")) > MAX_INT_DIGITS:
        raise BodyError(f"an integer has more than {MAX_INT_DIGITS} digits")
    return int(text)


def _parse_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise BodyError(f"a number is out of range ({text[:20]}{'...' if len(text) > 20 else ''})")
    return value


def _parse_constant(text: str) -> float:
    raise BodyError(f"'{text}' is not a json number")


def decode_json(raw: bytes) -> Any:
    """Decode a UTF-8 JSON body within the limits above.

    Args:
        raw: The whole body.

    Returns:
        The value: dicts, lists, str, int, finite float, bool or ``None``, nested at most :data:`MAX_DEPTH` deep.

    Raises:
        BodyError: The body is not UTF-8 JSON, or breaks a limit.

    Example:
        >>> decode_json(b'{"price": "$11.20", "n": [1, 2.5]}')
        {'price': '$11.20', 'n': [1, 2.5]}
        >>> decode_json(b"[" * 100_000 + b"]" * 100_000)
        Traceback (most recent call last):
        flowc.providers.mithril.api.body.BodyError: arrays and objects nest deeper than 64 levels
        >>> decode_json(b"[1e999]")
        Traceback (most recent call last):
        flowc.providers.mithril.api.body.BodyError: a number is out of range (1e999)
    """
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise BodyError("the body is not utf-8") from None
    if max_depth(raw) > MAX_DEPTH:
        raise BodyError(f"arrays and objects nest deeper than {MAX_DEPTH} levels")
    try:
        value = json.loads(text, parse_int=_parse_int, parse_float=_parse_float, parse_constant=_parse_constant)
    except BodyError:
        raise
    except ValueError as exc:  # JSONDecodeError, and int()'s own digit limit as a backstop
        raise BodyError(f"the body is not json ({str(exc).split(':')[0].lower()})") from None
    for item in walk_strings(value):
        try:
            item.encode("utf-8")
        except UnicodeEncodeError:
            raise BodyError("a string holds a lone surrogate (an invalid \\u escape)") from None
    return value


def walk_strings(value: Any) -> list[str]:
    """Return every string in a decoded JSON value, object keys included, without recursion.

    Example:
        >>> walk_strings({"a": ["b", 1, {"c": None}]})
        ['a', 'b', 'c']
    """
    found: list[str] = []
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            found.append(item)
        elif isinstance(item, dict):
            for key, child in reversed(list(item.items())):
                stack.append(child)
                stack.append(key)
        elif isinstance(item, list):
            stack.extend(reversed(item))
    return found
