"""JSON text of plans, byte for byte as the standard library writes it, at the speed of orjson.

``json.dumps(..., indent=2)`` runs the standard library's pure-Python encoder (its C encoder does not indent),
which was most of a large build's time. orjson writes the same bytes for flowc's data (sorted keys, two-space
indent, UTF-8 text, the same escapes) except for floats in exponent notation (``1e+16`` against ``1e16``) and
integers beyond 64 bits; data with either, and any machine without orjson, gets the standard library's encoder.
A property test holds the two to the same bytes.
"""

from __future__ import annotations

import json
import math
from typing import Any

try:
    import orjson
except ImportError:  # pragma: no cover - orjson is a dependency; the fallback keeps a source install working
    orjson = None

_INT64 = 1 << 63


def pretty(data: Any) -> str:
    r"""Return ``data`` as sorted, two-space indented JSON with a trailing newline.

    Args:
        data: JSON-compatible plain data (dicts with string keys, lists, strings, numbers, booleans, None).

    Returns:
        The text ``json.dumps(data, sort_keys=True, indent=2, ensure_ascii=False, allow_nan=False) + "\n"``.

    Raises:
        ValueError: A float is not finite.

    Example:
        >>> print(pretty({"b": [1, 2.5], "a": "é"}), end="")
        {
          "a": "é",
          "b": [
            1,
            2.5
          ]
        }
    """
    if orjson is not None and _plain(data):
        return orjson.dumps(data, option=orjson.OPT_SORT_KEYS | orjson.OPT_INDENT_2 | orjson.OPT_APPEND_NEWLINE
                            ).decode("utf-8")
    return json.dumps(data, sort_keys=True, indent=2, ensure_ascii=False, allow_nan=False) + "\n"


def compact(data: Any) -> str:
    """Return ``data`` as sorted JSON without any insignificant whitespace (for size-limited places).

    Args:
        data: JSON-compatible plain data.

    Returns:
        The text ``json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)``.

    Raises:
        ValueError: A float is not finite.

    Example:
        >>> compact({"b": [1, 2.5], "a": None})
        '{"a":null,"b":[1,2.5]}'
    """
    if orjson is not None and _plain(data):
        return orjson.dumps(data, option=orjson.OPT_SORT_KEYS).decode("utf-8")
    return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def _plain(value: Any) -> bool:
    """Whether orjson writes ``value`` as the standard library does: no exponent float, no huge int, str keys."""
    kind = type(value)
    if kind is dict:
        return all(type(key) is str and _plain(item) for key, item in value.items())
    if kind is list or kind is tuple:
        return all(_plain(item) for item in value)
    if kind is float:
        return math.isfinite(value) and "e" not in repr(value)
    if kind is int:
        return -_INT64 <= value < _INT64
    return kind is str or kind is bool or value is None
