"""The one YAML serializer of the emitters: PyYAML's C emitter (pure Python when it is not built).

Keys are sorted and no line is folded, so the same objects always give the same bytes. The representation tree
is built here rather than by PyYAML's representer, which spends most of a large build's YAML time on alias
bookkeeping that plain manifests never need; values other than plain dicts, lists, strings, integers, booleans
and None (floats) are still represented by PyYAML's ``SafeRepresenter``, and a dict or list met twice in one
document is refused (PyYAML would have written an anchor and an alias, which manifests must not hold).
"""

from __future__ import annotations

from typing import Any

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

_Dumper = getattr(yaml, "CSafeDumper", yaml.SafeDumper)
_STR, _INT = "tag:yaml.org,2002:str", "tag:yaml.org,2002:int"
_BOOL, _NULL = "tag:yaml.org,2002:bool", "tag:yaml.org,2002:null"
_MAP, _SEQ = "tag:yaml.org,2002:map", "tag:yaml.org,2002:seq"
_CACHED_LENGTH = 64  # names, keys and short values; a plan's JSON text is resolved once and not kept


class _CachedDumper(_Dumper):  # type: ignore[misc, valid-type]
    """The dumper with its implicit-tag resolution remembered per value (manifests repeat their keys a lot).

    The emitter asks twice for every scalar: as if it were plain, and as if it were quoted. Without path resolvers
    (the safe dumper has none) a quoted scalar always resolves to a string, so only the plain question needs the
    resolver's patterns, and its answer depends on the value alone.
    """

    _plain: dict[str, str] = {}

    def resolve(self, kind: type, value: Any, implicit: Any) -> str:
        """Return the tag PyYAML's resolver gives ``value``, from the cache when it was asked before."""
        if kind is not ScalarNode:
            return super().resolve(kind, value, implicit)
        if not implicit[0]:
            return self.DEFAULT_SCALAR_TAG
        tag = self._plain.get(value)
        if tag is None:
            tag = super().resolve(kind, value, implicit)
            if len(value) <= _CACHED_LENGTH:
                self._plain[value] = tag
        return tag

    def descend_resolver(self, current_node: Any, current_index: Any) -> None:
        """Nothing to track: the dumper has no path resolvers."""

    def ascend_resolver(self) -> None:
        """Nothing to track: the dumper has no path resolvers."""


class _Tree:
    """Plain data → PyYAML nodes, as ``SafeRepresenter`` with ``sort_keys`` and block style builds them."""

    def __init__(self) -> None:
        self.seen: set[int] = set()
        self.representer = yaml.SafeDumper(None, sort_keys=True, default_flow_style=False)

    def node(self, value: Any) -> Node:
        kind = type(value)
        if kind is str:
            return ScalarNode(_STR, value)
        if kind is dict or kind is list:
            if id(value) in self.seen:
                raise ValueError("a dict or list appears twice in one document; emitters build fresh objects")
            self.seen.add(id(value))
            if kind is list:
                return SequenceNode(_SEQ, [self.node(item) for item in value], flow_style=False)
            try:
                items = sorted(value.items())
            except TypeError:
                items = list(value.items())
            return MappingNode(_MAP, [(self.node(k), self.node(v)) for k, v in items], flow_style=False)
        if kind is bool:
            return ScalarNode(_BOOL, "true" if value else "false")
        if kind is int:
            return ScalarNode(_INT, str(value))
        if value is None:
            return ScalarNode(_NULL, "null")
        return self.representer.represent_data(value)


def dump_yaml(document: Any) -> bytes:
    r"""Serialize one document as block-style YAML.

    Args:
        document: Plain dicts, lists and scalars.

    Returns:
        UTF-8 bytes ending in a newline.

    Raises:
        ValueError: One dict or list object appears twice in the document.

    Example:
        >>> dump_yaml({"b": "4", "a": [1, 2.5, None, True]}).decode()
        "a:\n- 1\n- 2.5\n- null\n- true\nb: '4'\n"
    """
    text = yaml.serialize(_Tree().node(document), Dumper=_CachedDumper, allow_unicode=True, width=1 << 16)
    return text.encode("utf-8")
