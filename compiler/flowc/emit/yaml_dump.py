"""The one YAML serializer of the emitters: PyYAML's C dumper (pure Python when it is not built).

Keys are sorted and no line is folded, so the same objects always give the same bytes.
"""

from __future__ import annotations

from typing import Any

import yaml

_Dumper = getattr(yaml, "CSafeDumper", yaml.SafeDumper)


def dump_yaml(document: Any) -> bytes:
    r"""Serialize one document as block-style YAML.

    Args:
        document: Plain dicts, lists and scalars.

    Returns:
        UTF-8 bytes ending in a newline.

    Example:
        >>> dump_yaml({"b": "4", "a": [1]}).decode()
        "a:\n- 1\nb: '4'\n"
    """
    text = yaml.dump(document, Dumper=_Dumper, sort_keys=True, default_flow_style=False, allow_unicode=True,
                     width=1 << 16)
    return text.encode("utf-8")
