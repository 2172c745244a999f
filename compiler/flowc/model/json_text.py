"""JSON text of plans, byte for byte as the standard library writes it, at the speed of orjson.

``json.dumps(..., indent=2)`` runs the standard library's pure-Python encoder (its C encoder does not indent),
which was most of a large build's time. orjson writes the same bytes for flowc's data (sorted keys, two-space
indent, UTF-8 text, the same escapes) except for floats in exponent notation (``1e+16`` against ``1e16``),
integers beyond 64 bits and non-finite floats; :func:`pretty` checks each text against the standard library's
compact form and falls back to it on any difference, as on a machine without orjson. A property test holds the
two to the same bytes.
"""

from __future__ import annotations

import json
from typing import Any

try:
    import orjson
except ImportError:  # pragma: no cover - orjson is a dependency; the fallback keeps a source install working
    orjson = None

_PRETTY = 0 if orjson is None else orjson.OPT_SORT_KEYS | orjson.OPT_INDENT_2 | orjson.OPT_APPEND_NEWLINE


def pretty(data: Any) -> str:
    r"""Return ``data`` as sorted, two-space indented JSON with a trailing newline.

    The standard library's C encoder writes the compact form first (it raises what ``json.dumps`` raises); when
    orjson's compact form is the same bytes, its indented form is ``json.dumps``'s too, and it is the one written.

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
    exact = compact(data)
    if orjson is not None:
        try:
            same = orjson.dumps(data, option=orjson.OPT_SORT_KEYS) == exact.encode("utf-8")
        except (orjson.JSONEncodeError, UnicodeEncodeError):
            same = False
        if same:
            return orjson.dumps(data, option=_PRETTY).decode("utf-8")
    return json.dumps(data, sort_keys=True, indent=2, ensure_ascii=False, allow_nan=False) + "\n"


def compact(data: Any) -> str:
    """Return ``data`` as sorted JSON without any insignificant whitespace (for size-limited places).

    Args:
        data: JSON-compatible plain data.

    Returns:
        The text ``json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)``
        (the standard library's C encoder writes it).

    Raises:
        ValueError: A float is not finite.

    Example:
        >>> compact({"b": [1, 2.5], "a": None})
        '{"a":null,"b":[1,2.5]}'
    """
    return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
