"""The reference parser of pass ``parse``: ruamel.yaml's round-trip loader, and every diagnostic about YAML text.

It defines what a document means; the fast path (:mod:`flowc.passes.parse_fast`) answers only where it builds the
very same document, and leaves everything else here. Only :func:`flowc.passes.parse.parse_reference` imports this
module, so ruamel.yaml loads only for a document the fast path leaves (see :mod:`flowc.passes.parse` for the codes).
"""

from __future__ import annotations

import datetime as dt
import sys
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.composer import Composer, ComposerError
from ruamel.yaml.constructor import DuplicateKeyError, RoundTripConstructor
from ruamel.yaml.error import MarkedYAMLError
from ruamel.yaml.events import AliasEvent
from ruamel.yaml.nodes import ScalarNode
from ruamel.yaml.reader import ReaderError

from flowc.diagnostics import Span
from flowc.model.context import Context
from flowc.model.document import Document, Path

_QUOTED = ("SingleQuotedScalarString", "DoubleQuotedScalarString")


class _AliasRefused(MarkedYAMLError):
    """An alias was found; flowc refuses them (FLC105: no small file may expand into a huge one)."""


class _NoAliasComposer(Composer):
    """A composer that stops at the first alias instead of sharing the anchored node."""

    def compose_node(self, parent: Any, index: Any) -> Any:
        """Refuse aliases, then compose as usual."""
        if self.parser.check_event(AliasEvent):
            event = self.parser.peek_event()
            raise _AliasRefused(problem=f"alias '*{event.anchor}'", problem_mark=event.start_mark)
        return super().compose_node(parent, index)


class _UnreadableScalar(MarkedYAMLError):
    """ruamel.yaml could not build a value from a node (an impossible date, ``!!int x``, ``0x_``...)."""

    def __init__(self, node: Any, explicit: bool) -> None:
        super().__init__(problem=_scalar_text(node), problem_mark=node.start_mark)
        self.tag = str(node.ctag.value)
        self.explicit = explicit
        self.digits = sum(ch.isdigit() for ch in node.value) if isinstance(node.value, str) else 0


class _CheckedConstructor(RoundTripConstructor):
    """A constructor whose failures on one node become a marked error for that node.

    ruamel.yaml resolves a plain scalar's type from its shape alone (``2020-02-30`` is a timestamp,
    ``0x_`` an integer) and then raises ``ValueError``, ``IndexError``... while building it; an explicit
    tag (``!!omap a100``) can name a constructor that does not fit the node at all. Every such failure
    is a property of the input, so it is reported at the node instead of escaping as an internal error.
    """

    def construct_object(self, node: Any, deep: bool = False) -> Any:
        """Build one node, turning a constructor's failure into :class:`_UnreadableScalar`."""
        try:
            return super().construct_object(node, deep)
        except MarkedYAMLError:
            raise
        except (ValueError, TypeError, AttributeError, IndexError, KeyError, OverflowError) as exc:
            if not isinstance(node, ScalarNode):
                raise  # a collection's own failures (an unhashable key) are reported by parse()
            self.recursive_objects.pop(node, None)
            raise _UnreadableScalar(node, node.ctag.handle is not None) from exc


def _scalar_text(node: Any) -> str:
    value = node.value if isinstance(node.value, str) else ""
    if not value.isprintable():
        value = value.encode("unicode_escape").decode("ascii")  # one diagnostic, one line
    return value if len(value) <= 40 else f"{value[:20]}...{value[-10:]}"


_KINDS = {"int": "an integer", "float": "a number", "timestamp": "a date or time", "bool": "a boolean"}


def _unreadable(ctx: Context, exc: _UnreadableScalar) -> None:
    at = _mark_span(ctx, exc)
    if exc.explicit:
        ctx.error("FLC108", f"unsupported yaml tag '{exc.tag}' on '{exc.problem}'", at=at,
                  help="remove the explicit tag; flowc reads plain yaml scalars, lists and maps")
        return
    kind = _KINDS.get(exc.tag.rsplit(":", 1)[-1], "a typed value")
    if kind == "an integer" and exc.digits > sys.get_int_max_str_digits():
        message = f"integer has {exc.digits} digits; flowc reads at most {sys.get_int_max_str_digits()}"
    else:
        message = f"'{exc.problem}' looks like {kind} but is not a valid one"
    ctx.error("FLC112", message, at=at,
              help="quote the value to make it a string, or write a valid value")


def _yaml() -> YAML:
    yaml = YAML(typ="rt", pure=True)
    yaml.Composer = _NoAliasComposer
    yaml.Constructor = _CheckedConstructor
    yaml.preserve_quotes = True
    yaml.allow_duplicate_keys = False
    return yaml


def parse_reference(text: str, ctx: Context) -> Document:
    """Parse with ruamel.yaml (through :func:`flowc.passes.parse.parse_reference`, which imports this module).

    Args:
        text: The file's contents, within the size cap.
        ctx: The compilation context.

    Returns:
        The document; when errors were reported its data is ``None``.
    """
    start = Span(ctx.path, 1, 1)
    try:
        root = _yaml().load(text)
    except _AliasRefused as exc:
        ctx.error("FLC105", f"yaml {exc.problem} is not supported", at=_mark_span(ctx, exc),
                  help="write the value out in full; anchors and aliases are refused")
        return Document(ctx.path, None)
    except _UnreadableScalar as exc:
        _unreadable(ctx, exc)
        return Document(ctx.path, None)
    except DuplicateKeyError as exc:
        key = str(exc.problem).split('"')[1] if '"' in str(exc.problem) else "?"
        ctx.error("FLC104", f"duplicate key '{key}'", at=_mark_span(ctx, exc),
                  help=f"the first '{key}' is on line {exc.context_mark.line + 1}; keep one of them")
        return Document(ctx.path, None)
    except ComposerError as exc:
        if "another document" in str(exc.problem):
            ctx.error("FLC106", "more than one yaml document in the file", at=_mark_span(ctx, exc),
                      help="put each topology in its own file")
        else:
            ctx.error("FLC101", f"yaml: {exc.problem}", at=_mark_span(ctx, exc))
        return Document(ctx.path, None)
    except RecursionError:
        ctx.error("FLC101", "yaml: the document is nested too deeply", at=start,
                  help="flatten the structure; topologies need only a few levels")
        return Document(ctx.path, None)
    except TypeError as exc:
        # ruamel.yaml raises TypeError for a list or map used inside a complex mapping key.
        ctx.error("FLC101", f"yaml: unsupported mapping key ({exc})", at=start,
                  help="mapping keys are names or numbers")
        return Document(ctx.path, None)
    except ReaderError as exc:
        line = text.count("\n", 0, exc.position) + 1
        col = exc.position - (text.rfind("\n", 0, exc.position) + 1) + 1
        code = exc.character if isinstance(exc.character, int) else ord(str(exc.character)[:1] or "\0")
        ctx.error("FLC101", f"yaml: control character U+{code:04X} is not allowed", at=Span(ctx.path, line, col),
                  help="remove it, or write it as an escape inside a double-quoted string")
        return Document(ctx.path, None)
    except MarkedYAMLError as exc:
        ctx.error("FLC101", f"yaml: {exc.problem or exc.context}", at=_mark_span(ctx, exc),
                  help=_syntax_help(str(exc.problem)) or _context_help(exc))
        return Document(ctx.path, None)
    if root is None:
        ctx.error("FLC103", "the document is empty", at=start,
                  help="a topology needs at least 'name' and 'instance_type', or 'actors' and 'nodes'")
        return Document(ctx.path, None)
    try:
        return _Converter(ctx).document(root)
    except RecursionError:
        ctx.error("FLC101", "yaml: the document is nested too deeply", at=start,
                  help="flatten the structure; topologies need only a few levels")
        return Document(ctx.path, None)


def _mark_span(ctx: Context, exc: MarkedYAMLError) -> Span:
    mark = exc.problem_mark or exc.context_mark
    if mark is None:
        return Span(ctx.path, 1, 1)
    return Span.from_mark(ctx.path, mark.line, mark.column)


def _context_help(exc: MarkedYAMLError) -> str | None:
    if exc.context and exc.context_mark is not None and exc.problem:
        where = f"line {exc.context_mark.line + 1}, column {exc.context_mark.column + 1}"
        return f"{exc.context.removeprefix('while ')} that starts at {where}"
    return None


def _syntax_help(problem: str) -> str | None:
    if "tab" in problem or "'\\t'" in problem:
        return "indent with spaces, not tabs"
    if "mapping values are not allowed" in problem:
        return "check the indentation of this line, or quote a value that contains ': '"
    if "could not find expected ':'" in problem or "simple key" in problem:
        return "a mapping entry needs 'key: value'"
    return None


class _Converter:
    """Turns ruamel.yaml's commented containers into plain data and records spans."""

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self.values: dict[Path, Span] = {}
        self.keys: dict[Path, Span] = {}
        self.plain: set[Path] = set()

    def document(self, root: Any) -> Document:
        lc = getattr(root, "lc", None)
        line, col = (lc.line or 0, lc.col or 0) if lc is not None else (0, 0)
        self.values[()] = Span.from_mark(self.ctx.path, line, col)
        data = self.convert(root, ())
        return Document(self.ctx.path, data, self.values, self.keys, frozenset(self.plain))

    def convert(self, node: Any, path: Path) -> Any:
        tag = getattr(getattr(node, "tag", None), "value", None)
        if isinstance(node, CommentedMap | CommentedSeq) and tag is not None:
            self.ctx.error("FLC108", f"unsupported yaml tag '{tag}'", at=self.values[path],
                           help="remove the explicit tag; flowc reads plain yaml scalars, lists and maps")
            return None
        if isinstance(node, CommentedMap):
            return self.mapping(node, path)
        if isinstance(node, CommentedSeq):
            items = []
            for index, value in enumerate(node):
                line, col = node.lc.item(index)
                child = (*path, index)
                self.values[child] = Span.from_mark(self.ctx.path, line, col, _width(value))
                items.append(self.convert(value, child))
            return items
        return self.scalar(node, path)

    def mapping(self, node: CommentedMap, path: Path) -> dict[str, Any]:
        if getattr(node, "merge", None):
            self.ctx.error("FLC105", "yaml merge key '<<' is not supported", at=self.values[path],
                           help="write the merged keys out in full")
        out: dict[str, Any] = {}
        own = node.lc.data or {}  # None when every key came from '<<'
        for key, value in node.items():
            if key not in own:
                continue  # merged in by '<<', reported above
            kline, kcol = node.lc.key(key)
            vline, vcol = node.lc.value(key)
            name = self.key_text(key, path, kline, kcol)
            child = (*path, name)
            if name in out:
                first = self.keys[child]
                self.ctx.error("FLC104", f"duplicate key '{name}'", at=Span.from_mark(self.ctx.path, kline, kcol),
                               help=f"the first '{name}' is on line {first.line}; keep one of them")
                continue
            self.keys[child] = Span.from_mark(self.ctx.path, kline, kcol, len(name))
            self.values[child] = Span.from_mark(self.ctx.path, vline, vcol, _width(value))
            out[name] = self.convert(value, child)
        return out

    def text(self, value: str, span: Span) -> str:
        try:
            value.encode("utf-8")
            return value
        except UnicodeEncodeError:
            pass
        try:
            # A pair of \u escapes (as JSON writes characters outside the BMP) is one character.
            value = value.encode("utf-16", "surrogatepass").decode("utf-16")
        except UnicodeDecodeError:
            self.ctx.error("FLC109", "the text holds an unpaired surrogate escape (such as '\\ud800')", at=span,
                           help="write the character itself, or a '\\U' escape of a real code point")
        return value

    def key_text(self, key: Any, path: Path, line: int, col: int) -> str:
        if isinstance(key, str | int) and not isinstance(key, bool):
            return self.text(str(key), Span.from_mark(self.ctx.path, line, col))
        self.ctx.error("FLC209", f"mapping key {key!r} must be a name or a number",
                       at=Span.from_mark(self.ctx.path, line, col))
        return str(key)

    def scalar(self, node: Any, path: Path) -> Any:
        kind = type(node).__name__
        if node is None or isinstance(node, bool):
            return node
        if kind == "ScalarBoolean":
            return bool(node)
        if isinstance(node, str):
            if kind not in _QUOTED:
                self.plain.add(path)
            return self.text(str(node), self.values[path])
        if isinstance(node, int):
            return int(node)
        if isinstance(node, float):
            return float(node)
        if isinstance(node, dt.date):
            return node.isoformat()
        if kind == "TaggedScalar" and node.tag.value == "tag:yaml.org,2002:str":
            return str(node.value)
        tag = getattr(getattr(node, "tag", None), "value", None) or kind
        self.ctx.error("FLC108", f"unsupported yaml tag '{tag}'", at=self.values[path],
                       help="remove the explicit tag; flowc reads plain yaml scalars, lists and maps")
        return None


def _width(value: Any) -> int:
    if isinstance(value, CommentedMap | CommentedSeq) or value is None:
        return 1
    text = str(value)
    return len(text) + (2 if type(value).__name__ in _QUOTED else 0)
