"""The fast path of pass ``parse``: libyaml's composer (PyYAML's C parser) for documents with nothing unusual.

The reference parser (ruamel.yaml's round-trip loader, :mod:`flowc.passes.parse_ruamel`) defines what a document
means and every diagnostic about its text; it is also about forty times slower. This path composes the document with
libyaml, which keeps the line and column of every node, and builds the same plain data, spans and plain-scalar
set the reference parser would. It gives up — returns ``None``, and the caller runs the reference parser — on
anything the reference parser reports, types or places in a way of its own: a libyaml error, several documents,
a directive, a non-printable character, a tab, a Unicode line separator, an empty or scalar document, an explicit
tag, an anchor used by an alias, a merge key, a duplicate key, a key that is not a name or a decimal number, an
empty value, and any plain scalar that resolves to something other than a string, a null, a boolean, a decimal
integer or a decimal number (dates, hexadecimal, underscores, ``.inf``...).
So every diagnostic comes from the reference parser, word for word, and the fast path only has to agree with it
on ordinary documents (a property test compares the two on generated YAML). It does not import ruamel.yaml:
the rules it shares with it (which characters are refused, how a plain scalar is typed) are in
:mod:`flowc.passes.yaml12`, so an ordinary document never pays for loading the reference parser.
"""

from __future__ import annotations

import re
from typing import Any

from flowc.model.document import Document, Marks, Path
from flowc.passes.yaml12 import NON_PRINTABLE, resolvers

try:  # PyYAML built without libyaml has no C parser: the reference parser does all the work then
    from yaml import YAMLError
    from yaml._yaml import CParser
except ImportError:  # pragma: no cover - depends on how PyYAML was built
    CParser = None

_PLAIN, _QUOTED = "flowc:plain", "flowc:quoted"
_MAP, _SEQ = "flowc:map", "flowc:seq"
_INT = re.compile(r"-?(?:0|[1-9][0-9]{0,30})\Z")  # longer: the reference parser checks the digit cap
_FLOAT = re.compile(r"-?(?:0|[1-9][0-9]{0,30})\.[0-9]{1,30}\Z")
_NULLS = frozenset(("", "~", "null", "Null", "NULL"))
_BOOLS = {"true": True, "True": True, "TRUE": True, "false": False, "False": False, "FALSE": False}
_DIRECTIVE = re.compile(r"^%", re.MULTILINE)
# Where libyaml and ruamel.yaml part ways: libyaml takes tabs ruamel.yaml refuses (``a:\t1``) and counts U+0085,
# U+2028 and U+2029 as line breaks, which moves every later line number, and skips U+FEFF in its columns.
_APART = "\t\x85\u2028\u2029\ufeff"  # each looked for with ``in``: faster than a regex, nothing to compile
_MISSING = object()
_PENDING = (0, 0, 0)  # replaced once the value is built


class _Defer(Exception):
    """The document needs the reference parser."""


if CParser is not None:

    class _Composer(CParser):
        """libyaml's composer with a resolver that only says how a node was written.

        An explicit tag reaches the node unchanged; every implicit one is replaced by one of this module's
        markers, so a node whose tag is not a marker had a tag in the text.
        """

        def resolve(self, kind: type, value: Any, implicit: tuple[bool, bool]) -> str:
            """Mark a node plain, quoted, a mapping or a sequence (the converter types the scalars)."""
            if kind.__name__ == "ScalarNode":
                return _PLAIN if implicit[0] else _QUOTED
            return _MAP if kind.__name__ == "MappingNode" else _SEQ

        def descend_resolver(self, parent: Any, index: Any) -> None:
            """Path-dependent resolution is not used."""

        def ascend_resolver(self) -> None:
            """Path-dependent resolution is not used."""


class _Scalars:
    """Plain scalar text → value, as ruamel.yaml's YAML 1.2 resolver and round-trip constructor give it."""

    def __init__(self) -> None:
        self.known: dict[str, Any] = {}

    def value(self, text: str) -> tuple[Any, bool]:
        """Return the value of a plain scalar and whether it stays a string (then its path is "plain").

        Raises:
            _Defer: The scalar is of a kind only the reference parser builds.
        """
        found = self.known.get(text, _MISSING)
        if found is _MISSING:
            found = self.known[text] = self._type(text)
        if found is _Defer:
            raise _Defer
        return found

    def _type(self, text: str) -> Any:
        if not any(regexp.match(text) for _, regexp in resolvers(text[:1])):  # YAML 1.2's, by first character
            return text, True  # what ruamel.yaml's resolve() gives a plain scalar no implicit resolver matches
        if text in _NULLS:
            return None, False
        if text in _BOOLS:
            return _BOOLS[text], False
        if _INT.match(text):
            return int(text), False
        if _FLOAT.match(text):
            return float(text), False
        return _Defer


def parse_fast(text: str, path: str) -> Document | None:
    r"""Parse an ordinary document with libyaml, or return ``None`` when the reference parser must.

    Args:
        text: The file's contents (already known to be within the size cap).
        path: The file name for spans.

    Returns:
        The document exactly as the reference parser would build it, or ``None``.

    Example:
        >>> doc = parse_fast("name: x\nnum_instances: 2\n", "t.yaml")
        >>> doc.data, doc.span(("num_instances",)).line
        ({'name': 'x', 'num_instances': 2}, 2)
        >>> parse_fast("when: 2024-01-01\n", "t.yaml") is None  # a date: the reference parser types it
        True
    """
    if CParser is None or NON_PRINTABLE.search(text) or _DIRECTIVE.search(text):
        return None
    if any(char in text for char in _APART):
        return None
    try:
        root = _Composer(text).get_single_node()
    except YAMLError:
        return None
    except RecursionError:
        return None
    if root is None or root.tag not in (_MAP, _SEQ):
        return None  # an empty or scalar document: the reference parser reports it (and places it its own way)
    try:
        return _Converter(path, aliases_possible="*" in text).document(root)
    except (_Defer, RecursionError):
        return None


class _Converter:
    """libyaml's nodes → plain data, value and key spans, and the paths of plain strings.

    The hot loop of a large document: scalars are handled inline rather than through :meth:`convert`, and the
    alias check (the same node met twice) runs only when the text has a ``*`` at all.
    """

    def __init__(self, path: str, aliases_possible: bool = True) -> None:
        self.path = path
        self.values: dict[Path, tuple[int, int, int]] = {}
        self.keys: dict[Path, tuple[int, int, int]] = {}
        self.plain: set[Path] = set()
        self.seen: set[int] | None = set() if aliases_possible else None
        self.scalars = _Scalars()
        self.names: dict[str, str] = {}

    def document(self, root: Any) -> Document:
        self.values[()] = (root.start_mark.line, root.start_mark.column, 0)
        data = self.convert(root, ())
        return Document(self.path, data, Marks(self.path, self.values), Marks(self.path, self.keys),
                        frozenset(self.plain))

    def convert(self, node: Any, path: Path) -> Any:
        if self.seen is not None:
            if id(node) in self.seen:
                raise _Defer  # an alias: the reference parser refuses it
            self.seen.add(id(node))
        tag = node.tag
        if tag is _MAP:
            return self.mapping(node, path)
        if tag is _SEQ:
            return self.sequence(node, path)
        return self.scalar(node, path)

    def sequence(self, node: Any, path: Path) -> list[Any]:
        values = self.values
        items = []
        for index, item in enumerate(node.value):
            child = (*path, index)
            values[child] = _PENDING  # keeps the reference parser's order of spans
            value = self.convert(item, child)
            values[child] = self.span(item, value)
            items.append(value)
        return items

    def mapping(self, node: Any, path: Path) -> dict[str, Any]:
        values, keys, names = self.values, self.keys, self.names
        out: dict[str, Any] = {}
        for key_node, value_node in node.value:
            name = names.get(key_node.value) if key_node.tag is _PLAIN and self.seen is None else None
            if name is None:
                name = self.key(key_node)
            if name in out:
                raise _Defer  # a duplicate key: the reference parser reports it
            child = (*path, name)
            mark = key_node.start_mark
            keys[child] = (mark.line, mark.column, len(name))
            values[child] = _PENDING
            value = self.convert(value_node, child)
            values[child] = self.span(value_node, value)
            out[name] = value
        return out

    def key(self, node: Any) -> str:
        if self.seen is not None:
            if id(node) in self.seen:
                raise _Defer  # an alias as a key
            self.seen.add(id(node))
        if node.tag is _QUOTED and node.style in ("'", '"'):
            return self.text(node.value)
        if node.tag is not _PLAIN or node.value == "<<":
            raise _Defer  # a tag, a collection, a block scalar or a merge key as a key
        value, is_text = self.scalars.value(node.value)
        if is_text:
            name = self.text(value)
        elif type(value) is int:
            name = str(value)
        else:
            raise _Defer  # null, boolean or number keys: the reference parser reports them
        self.names[node.value] = name
        return name

    def scalar(self, node: Any, path: Path) -> Any:
        if node.tag is _QUOTED:
            if node.style not in ("'", '"'):
                self.plain.add(path)  # a block scalar is not quoted
            return self.text(node.value)
        if node.tag is not _PLAIN:
            raise _Defer  # an explicit tag
        if not node.value:
            raise _Defer  # an empty value: the two parsers place it differently (after ':' or at the next token)
        value, is_text = self.scalars.value(node.value)
        if is_text:
            self.plain.add(path)
            return self.text(value)
        return value

    @staticmethod
    def span(node: Any, value: Any) -> tuple[int, int, int]:
        mark = node.start_mark
        kind = type(value)
        if kind is str:
            width = len(value) + (2 if node.style in ("'", '"') else 0)
        elif value is None or kind is dict or kind is list:
            width = 1
        else:
            width = len(str(value))
        return mark.line, mark.column, width

    @staticmethod
    def text(value: str) -> str:
        if not value.isascii():
            try:
                value.encode("utf-8")
            except UnicodeEncodeError:
                raise _Defer from None  # a surrogate: the reference parser pairs or reports it
        return value
