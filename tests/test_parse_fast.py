"""The fast path of pass ``parse`` (libyaml) against the reference parser (ruamel.yaml), on generated YAML text.

Documents are drawn as value trees and written out with random style choices (block or flow collections,
plain, quoted and block scalars, comments, blank lines, document markers, indentation of 2 or 4 spaces,
sometimes anchors, aliases, merge keys, tags and duplicate keys), so most of them are valid YAML and many are
ordinary enough for the fast path. Whenever ``parse_fast`` answers, its document must be the reference
parser's, and ``parse`` must never let the fast path hide a diagnostic the reference parser reports.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from ruamel.yaml.reader import Reader
from ruamel.yaml.resolver import VersionedResolver

from flowc.model.context import Context
from flowc.model.document import Document
from flowc.passes import yaml12
from flowc.passes.parse import parse, parse_reference
from flowc.passes.parse_fast import parse_fast

# A document may define an anchor twice; ruamel.yaml warns about it on top of the answer compared here.
pytestmark = pytest.mark.filterwarnings("ignore::ruamel.yaml.error.ReusedAnchorWarning")
ROOT = Path(__file__).resolve().parent.parent
NAME = "gen.yaml"
GENERATED = settings(max_examples=350, deadline=None,
                     suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

# ---------------------------------------------------------------------------------------------------
# Value trees
# ---------------------------------------------------------------------------------------------------

#: Plain scalars of every kind the YAML 1.2 resolver knows, and strings that only look like them.
_PLAIN_TOKENS = [
    "~", "null", "Null", "NULL", "true", "false", "True", "FALSE", "yes", "no", "on", "off", "Yes", "y", "n",
    "0", "-0", "-3", "42", "007", "+5", "1_000", "0x1F", "0o7", "0b101", "123456789012345678901234567890",
    "1" * 40, "1.5", "-2.25", ".5", "1.", "1e3", "1.5e-3", "-0.0", "0.0", "10.250", ".inf", "-.inf", ".nan",
    ".NaN", "2024-01-02", "2024-01-02 10:20:30", "2024-01-02T10:20:30Z", "2020-02-30", "12:30", "1:20",
    "=", "<<", "a100", "8xh100", "us-central1-b", "hello world", "x.y.z", "1.2.3", "v1.0", "0-3,8", "64MB",
    "é", "naïve text", "日本", "\U0001f600", "a/b/c", "-x", "x-", "a:b", "a#b", "100%", "@home",
]
_WORD_CHARS = "abcdefghijklmnopqrstuvwxyzABCXYZ0123456789_.-é"


@dataclass
class Scalar:
    """A scalar and how it is written: ``plain``, ``single``, ``double`` or ``block``."""

    style: str
    text: str
    block_header: str = "|"


@dataclass
class Collection:
    """A mapping (``pairs``) or a sequence (``items``), with how it is written."""

    kind: str
    pairs: list[tuple[Scalar, Any]] = field(default_factory=list)
    items: list[Any] = field(default_factory=list)
    flow: bool = False


@dataclass
class Decorated:
    """A node written with an anchor (``&a1 ``) or a tag (``!!str ``) before it."""

    node: Any
    prefix: str


_plain_words = st.tuples(st.sampled_from("abcdefghxyzé"), st.text(st.sampled_from(_WORD_CHARS), max_size=10)).map(
    "".join)
_plain_scalars = st.one_of(st.sampled_from(_PLAIN_TOKENS), _plain_words).map(lambda text: Scalar("plain", text))
#: Characters some YAML readers take for line breaks and others do not (U+2028, U+2029, NEL), a byte order mark,
#: a tab, and text that looks like YAML syntax.
_ODD_TEXT = ["x\u2028y", "p\u2029", "n\x85l", "\ufeffb", "tab\there", " lead", "trail ", "a  #b", "- x", "x: y"]
_quoted_text = st.one_of(
    st.sampled_from(_PLAIN_TOKENS),
    st.sampled_from(_ODD_TEXT),
    st.text(st.characters(codec="utf-8", exclude_categories=("Cc", "Cs")), max_size=12),
)
_ESCAPES = ["\\n", "\\t", "\\u00e9", "\\U0001F600", "\\x41", "\\\\", '\\"', "\\/", "\\0", "\\e", "\\ ",
            "\\N", "\\_", "\\L", "\\P", "\\ud83d\\ude00", "\\ud800", "\\r"]
_double_text = st.lists(st.one_of(
    _quoted_text.map(lambda text: text.replace("\\", "\\\\").replace('"', '\\"')),
    st.sampled_from(_ESCAPES)), max_size=4).map("".join)
_block_lines = st.lists(st.one_of(st.just(""), _plain_words, st.sampled_from(["  more indented", "# not a comment",
                                                                            "key: value", "- item", "'q'"])),
                        min_size=1, max_size=4)
_block_headers = st.sampled_from(["|", "|-", "|+", ">", ">-", ">+", "|2", ">2-"])
scalars = st.one_of(
    _plain_scalars,
    _quoted_text.map(lambda text: Scalar("single", text)),
    _double_text.map(lambda text: Scalar("double", text)),
    st.builds(lambda lines, header: Scalar("block", "\n".join(lines), header), _block_lines, _block_headers),
    st.just(Scalar("plain", "")),  # an empty value: 'key:' with nothing after it
)
_name_keys = st.sampled_from(["name", "instance_type", "tasks", "actors", "a", "b", "c", "x_y", "with-dash"]).map(
    lambda text: Scalar("plain", text))
_key_scalars = st.one_of(
    _name_keys, _name_keys, _name_keys, _name_keys, _name_keys, _name_keys,
    st.sampled_from(["1", "0", "-3", "007", "1.5", "true", "null", "~", "yes", "2024-01-02", "é", "a b"]).map(
        lambda text: Scalar("plain", text)),
    st.sampled_from(["1", "a b", "x: y", "", "true", "é"]).map(lambda text: Scalar("single", text)),
    st.sampled_from(["2", "a\\tb", "name", "\\u00e9"]).map(lambda text: Scalar("double", text)),
)
_ANCHORS = ["a1", "a2"]
_decorations = st.sampled_from(["&a1 ", "&a2 ", "!!str ", "!!int ", "!custom ", "!!map ", "!!seq ", "!!float "])


def _collections(children: st.SearchStrategy[Any]) -> st.SearchStrategy[Collection]:
    # Every choice is drawn and then picked from, so that each level names ``children`` once: a strategy
    # that repeats them (``one_of(x, x, x)``) grows exponentially with the depth of the recursion.
    entries = st.lists(st.tuples(_key_scalars, children), max_size=4, unique_by=lambda pair: pair[0].text)
    mappings = st.builds(_mapping, entries, st.integers(0, 19), st.integers(0, 1000),
                         st.sampled_from(["*a1", "{m: 1}"]), st.booleans())
    sequences = st.builds(lambda items, flow: Collection("seq", items=items, flow=flow),
                          st.lists(children, max_size=4), st.booleans())
    return st.one_of(mappings, sequences)


def _mapping(pairs: list[tuple[Scalar, Any]], oddity: int, which: int, merged: str, flow: bool) -> Collection:
    """A mapping of ``pairs``; now and then (``oddity`` 7 or 13) with a repeated key or a merge key.

    Rare choices sit in the middle of their range: hypothesis draws the ends of a range far more often.
    """
    if oddity == 7 and pairs:
        pairs = [*pairs, pairs[which % len(pairs)]]
    elif oddity == 13:
        pairs = [*pairs, (Scalar("plain", "<<"), Scalar("plain", merged))]
    return Collection("map", pairs=pairs, flow=flow)


def _decorate(node: Any, choice: int, prefix: str, anchor: str) -> Any:
    """Mostly the node itself; now and then with an anchor or a tag, or an alias instead."""
    if choice == 11:
        return Decorated(node, prefix)
    if choice == 17:
        return Scalar("plain", f"*{anchor}")
    return node


def _decorated(node: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.builds(_decorate, node, st.integers(0, 59), _decorations, st.sampled_from(_ANCHORS))


value_trees = st.recursive(_decorated(scalars), lambda children: _decorated(_collections(children)), max_leaves=14)
_root_entries = st.lists(st.tuples(_key_scalars, value_trees), min_size=1, max_size=6,
                         unique_by=lambda pair: pair[0].text)
_ROOTS = {
    "mapping": st.builds(_mapping, _root_entries, st.integers(0, 19), st.integers(0, 1000), st.just("{m: 1}"),
                         st.just(False)),
    "sequence": st.lists(value_trees, min_size=1, max_size=4).map(lambda items: Collection("seq", items=items)),
    "collection": _collections(value_trees),
    "any": value_trees,
}
#: Mostly block mappings, as flowc documents are; the rest anything a YAML file can hold.
documents = st.sampled_from(["mapping", "mapping", "mapping", "sequence", "collection", "any"]).flatmap(
    _ROOTS.__getitem__)

# ---------------------------------------------------------------------------------------------------
# Writing a tree as text
# ---------------------------------------------------------------------------------------------------


@dataclass
class Line:
    """One line of output; comments may follow it, and blank or comment lines may precede it."""

    text: str
    trailing_comment_ok: bool = True
    insert_before_ok: bool = True


class Writer:
    """Writes a value tree as YAML, drawing every style choice from hypothesis."""

    def __init__(self, draw: st.DrawFn) -> None:
        """Start a document; its indentation step is drawn once."""
        self.draw = draw
        self.step = draw(st.sampled_from([2, 2, 4]))
        # Tabs are only allowed in some places; one document in thirty uses them between tokens.
        self.tabs = draw(st.integers(0, 29)) == 19

    def choose(self, strategy: st.SearchStrategy[Any]) -> Any:
        return self.draw(strategy)

    def inline_scalar(self, node: Scalar, in_flow: bool) -> str:
        if node.style == "single":
            return "'" + node.text.replace("'", "''") + "'"
        if node.style == "double" or (node.style == "block" and in_flow):
            text = node.text if node.style == "double" else node.text.replace("\\", "\\\\").replace('"', '\\"')
            return '"' + text.replace("\n", "\\n") + '"'
        return node.text

    def inline(self, node: Any, in_flow: bool, indent: int) -> str:
        """The node on one line (scalars and flow collections)."""
        if isinstance(node, Decorated):
            return node.prefix + self.inline(node.node, in_flow, indent)
        if isinstance(node, Scalar):
            return self.inline_scalar(node, in_flow)
        return self.flow(node, indent)

    def flow(self, node: Collection, indent: int) -> str:
        # Continuation lines of a flow collection must be indented more than the block around it.
        breaks = self.choose(st.sampled_from([False, False, False, True]))
        joiner = ",\n" + " " * (indent + self.step) if breaks else self.choose(st.sampled_from([", ", ",", " , "]))
        if node.kind == "map":
            parts = [self.inline(key, True, indent) + ":" + (
                " " + self.inline(value, True, indent) if not _is_empty(value)
                else self.choose(st.sampled_from(["", " "]))) for key, value in node.pairs]
            if parts and self.choose(st.integers(0, 3)) == 0:
                parts.append("")  # a trailing comma
            return "{" + joiner.join(parts) + "}"
        # An empty entry is not allowed in a flow sequence: write the null out.
        parts = [self.inline(item, True, indent) if not _is_empty(item) else "~" for item in node.items]
        return "[" + joiner.join(parts) + "]"

    def block_scalar(self, node: Scalar, head: str, indent: int) -> list[Line]:
        body = indent + self.step if indent + self.step > 0 else self.step
        if node.block_header[1:2] == "2":
            body = indent + 2 if indent >= 0 else 2
        lines = [Line(head + node.block_header, trailing_comment_ok=True)]
        first = True
        for text in node.text.split("\n"):
            # An indentation indicator is needed when the first line starts with spaces; keep it plain.
            text = text.lstrip(" ") if first else text
            first = False
            lines.append(Line(" " * body + text if text else "", trailing_comment_ok=False, insert_before_ok=False))
        return lines

    def value_after(self, head: str, node: Any, indent: int, in_sequence: bool) -> list[Line]:
        """``head`` (``key:`` or ``-``) followed by ``node``, on the same line or the lines below."""
        prefix = ""
        target = node
        if isinstance(node, Decorated):
            prefix, target = node.prefix, node.node
        separator = self.choose(st.sampled_from([" ", " ", "  ", "\t" if self.tabs else " "]))
        if isinstance(target, Scalar):
            if target.style == "block":
                return self.block_scalar(target, head + separator + prefix, indent)
            text = self.inline_scalar(target, False)
            if not text and not prefix:
                return [Line(head)]
            return [Line(head + separator + prefix + text)]
        if target.flow or not (target.pairs or target.items):
            return [Line(head + separator + prefix + self.flow(target, indent))]
        compact = in_sequence and not prefix and self.choose(st.booleans())
        if compact:  # '- a: 1' with the rest of the mapping (or '- - x') aligned after the dash
            inner = self.block(target, indent + 2)
            inner[0] = Line(head + " " + inner[0].text[indent + 2:], inner[0].trailing_comment_ok)
            return inner
        if target.kind == "seq" and not in_sequence and self.choose(st.booleans()):
            child_indent = indent  # a sequence under a key need not be indented
        else:
            child_indent = indent + self.step
        return [Line(head + (" " + prefix.rstrip() if prefix else "")), *self.block(target, child_indent)]

    def block(self, node: Collection, indent: int) -> list[Line]:
        pad = " " * indent
        lines: list[Line] = []
        if node.kind == "map":
            for key, value in node.pairs:
                head = pad + self.inline(key, False, indent) + ":"
                lines.extend(self.value_after(head, value, indent, in_sequence=False))
        else:
            for item in node.items:
                lines.extend(self.value_after(pad + "-", item, indent, in_sequence=True))
        return lines

    def document(self, root: Any) -> str:
        if isinstance(root, Collection) and not root.flow and (root.pairs or root.items):
            lines = self.block(root, 0)
        elif isinstance(root, Scalar) and root.style == "block":
            lines = self.block_scalar(root, "--- ", -self.step)
        else:
            lines = [Line(self.inline(root, False, 0))]
        out: list[str] = []
        for line in lines:
            if line.insert_before_ok:
                extra = self.choose(st.sampled_from(["", "", "", "", "", "\n", "# a comment\n",
                                                     " " * self.step + "# indented comment\n", "#\n"]))
                out.append(extra)
            comment = ""
            if line.trailing_comment_ok and line.text and self.choose(st.integers(0, 6)) == 0:
                comment = self.choose(st.sampled_from([" # note", "  #x", "\t# tab" if self.tabs else " #"]))
            out.append(line.text + comment + "\n")
        text = "".join(out)
        starts = ["", "", "", "---\n", "--- # doc\n", "%YAML 1.2\n---\n", "# head\n"]
        if lines[0].text.startswith("--- "):
            starts = ["", "# head\n"]
        start = self.choose(st.sampled_from(starts))
        end = self.choose(st.sampled_from(["", "", "", "", "", "", "", "", "...\n", "\n\n", "...\n", "\n",
                                           "", "", "", "", "", "", "---\n", "---\nb: 2\n"]))
        text = start + text + end
        if self.choose(st.integers(0, 9)) == 0:
            text = text.rstrip("\n")
        if self.choose(st.integers(0, 9)) == 0:
            text = text.replace("\n", "\r\n")
        return text


def _is_empty(node: Any) -> bool:
    return isinstance(node, Scalar) and node.style == "plain" and not node.text


@st.composite
def yaml_texts(draw: st.DrawFn) -> str:
    """YAML text written from a random value tree in random styles."""
    return Writer(draw).document(draw(documents))


# ---------------------------------------------------------------------------------------------------
# Properties
# ---------------------------------------------------------------------------------------------------


def _shape(doc: Document) -> tuple[Any, ...]:
    """Everything a document says, in order, with types (``1 == True`` must not pass for equal data)."""
    return (repr(doc.data), list(doc.value_spans.items()), list(doc.key_spans.items()), sorted(doc.plain, key=repr))


def _diagnostics(ctx: Context) -> list[tuple[Any, ...]]:
    return [(d.code, d.severity, d.message, d.span, d.help) for d in ctx.diagnostics]


#: Disagreements found by these properties; each is a minimal document on which the fast path answers wrongly.
EMPTY_VALUE_BEFORE_NEXT_KEY = "a:\nb: 1\n"
EMPTY_VALUE_IN_FLOW_MAPPING = "{a: , b: 1}\n"
SCALAR_DOCUMENT_AFTER_COMMENT = "# c\nhello\n"
NULL_DOCUMENT = "~\n"
TAB_AFTER_COLON = "a:\t1\n"
TRAILING_TAB = "a: 1\t\n"
LINE_SEPARATOR_IN_QUOTES = "a: 'x\u2028y'\nb: 1\n"
ALIAS_AS_KEY = "a: &x foo\n*x : bar\n"


@GENERATED
@example(EMPTY_VALUE_BEFORE_NEXT_KEY)
@example(EMPTY_VALUE_IN_FLOW_MAPPING)
@example(SCALAR_DOCUMENT_AFTER_COMMENT)
@example(NULL_DOCUMENT)
@example(TAB_AFTER_COLON)
@example(TRAILING_TAB)
@example(LINE_SEPARATOR_IN_QUOTES)
@example(ALIAS_AS_KEY)
@given(yaml_texts())
def test_fast_path_answers_only_with_the_reference_document(text: str) -> None:
    fast = parse_fast(text, NAME)
    if fast is None:
        return
    ctx = Context(NAME)
    reference = parse_reference(text, ctx)
    assert _diagnostics(ctx) == [], text
    assert repr(fast.data) == repr(reference.data), text
    assert list(fast.value_spans.items()) == list(reference.value_spans.items()), text
    assert list(fast.key_spans.items()) == list(reference.key_spans.items()), text
    assert fast.plain == reference.plain, text
    assert fast.path == reference.path == NAME


@GENERATED
@example(EMPTY_VALUE_BEFORE_NEXT_KEY)
@example(NULL_DOCUMENT)
@example(TRAILING_TAB)
@example(LINE_SEPARATOR_IN_QUOTES)
@given(yaml_texts())
def test_parse_gives_the_reference_result_and_diagnostics(text: str) -> None:
    fast_ctx, reference_ctx = Context(NAME), Context(NAME)
    parsed = parse(text, fast_ctx)
    reference = parse_reference(text, reference_ctx)
    assert _diagnostics(fast_ctx) == _diagnostics(reference_ctx), text
    assert _shape(parsed) == _shape(reference), text


# ---------------------------------------------------------------------------------------------------
# The fast path is taken by ordinary documents
# ---------------------------------------------------------------------------------------------------

ORDINARY = {
    "task": "name: train\ninstance_type: 8xh100\nnum_instances: 2\nregion: us-central1-b\n",
    "nested with comments": (
        "# a training job\n"
        "tasks:\n"
        "  train:   # the main one\n"
        "    instance_type: 8xa100\n"
        "    max_price_per_hour: 12.5\n"
        "    spot: false\n"
        "    env: {A: '1', B: \"two\\n\"}\n"
        "    command:\n"
        "    - python\n"
        "    - train.py\n"
        "\n"
        "  eval:\n"
        "    instance_type: 1xa100\n"
        "    command: |\n"
        "      set -e\n"
        "      run eval\n"
    ),
    "flow and block": "actors:\n  p: {type: producer, outputs: [c]}\nnodes:\n  n:\n    hostname: h\n"
                      "    numa_topology: {0: \"0-1\", 1: \"2-3\"}\n",
    "document markers": "---\nname: x\ninstance_type: a100\nnote: ~\nempty: null\n...\n",
    "four-space indent": "tasks:\n    a:\n        instance_type: a100\n        cpus:\n"
                         "            - 0\n            - 1\n",
}
_EXAMPLES = sorted((ROOT / "examples").glob("*.yaml"))


@pytest.mark.parametrize("name", sorted(ORDINARY))
def test_ordinary_documents_take_the_fast_path(name: str) -> None:
    text = ORDINARY[name]
    fast = parse_fast(text, NAME)
    assert fast is not None
    ctx = Context(NAME)
    assert _shape(fast) == _shape(parse_reference(text, ctx))
    assert ctx.diagnostics == []


def test_examples_are_found() -> None:
    assert len(_EXAMPLES) >= 5, _EXAMPLES


@pytest.mark.parametrize("path", _EXAMPLES, ids=lambda path: path.name)
def test_examples_take_the_fast_path(path: Path) -> None:
    text = path.read_text(encoding="utf-8")
    fast = parse_fast(text, path.name)
    assert fast is not None
    ctx = Context(path.name)
    assert _shape(fast) == _shape(parse_reference(text, ctx))
    assert ctx.diagnostics == []


@pytest.mark.parametrize("text", ["when: 2024-01-01\n", "n: 0x1F\n", "a: &x 1\nb: *x\n", "a: !!str 1\n",
                                  "a: 1\na: 2\n", "a: 1\n---\nb: 2\n", "%YAML 1.2\n---\na: 1\n", "x: .inf\n",
                                  "<<: {a: 1}\n", "true: 1\n", "a: 1_000\n", "a: &x foo\n*x : bar\n"])
def test_unusual_documents_are_left_to_the_reference_parser(text: str) -> None:
    assert parse_fast(text, NAME) is None


# ---------------------------------------------------------------------------------------------------
# The rules the fast path shares with ruamel.yaml (flowc.passes.yaml12) are ruamel.yaml's, exactly
# ---------------------------------------------------------------------------------------------------


def _rules(table: dict) -> dict[str, list[tuple[str, str, int]]]:
    return {first: [(str(tag), regexp.pattern, regexp.flags) for tag, regexp in pairs]
            for first, pairs in table.items()}


def test_the_resolver_table_is_ruamel_yamls_for_yaml_1_2() -> None:
    resolver = VersionedResolver()
    assert resolver.processing_version == (1, 2), "the reference parser reads documents as YAML 1.2"
    theirs, ours = _rules(resolver.versioned_resolver), _rules(yaml12.table())
    assert ours == theirs
    assert list(ours) == list(theirs)


@pytest.mark.parametrize("first", sorted(VersionedResolver().versioned_resolver))
def test_each_first_character_gets_ruamel_yamls_resolvers_in_order(first: str) -> None:
    theirs = VersionedResolver().versioned_resolver[first]
    assert [(tag, regexp.pattern, regexp.flags) for tag, regexp in yaml12.resolvers(first)] == [
        (str(tag), regexp.pattern, regexp.flags) for tag, regexp in theirs
    ]


def test_a_character_no_implicit_type_starts_with_has_no_resolver() -> None:
    known = VersionedResolver().versioned_resolver
    for code in range(0x250):
        if chr(code) not in known:
            assert yaml12.resolvers(chr(code)) == (), chr(code)


@given(st.text(alphabet=st.sampled_from("0123456789-+._eExXoObB:TtZ ~nNulLfaseFASErR<=!&*"), max_size=24))
def test_every_plain_scalar_resolves_as_ruamel_yaml_resolves_it(text: str) -> None:
    theirs = VersionedResolver().versioned_resolver.get(text[:1], [])
    matched = [str(tag) for tag, regexp in theirs if regexp.match(text)]
    assert [tag for tag, regexp in yaml12.resolvers(text[:1]) if regexp.match(text)] == matched


def test_non_printable_is_ruamel_yamls_reader_pattern() -> None:
    assert yaml12.NON_PRINTABLE.pattern == Reader.NON_PRINTABLE.pattern
    assert yaml12.NON_PRINTABLE.flags == Reader.NON_PRINTABLE.flags


@pytest.mark.parametrize("text", ["ok: 1\n", "a\x00b", "bell\x07", "\x7f", "\ufffe", "tab\tand\nnewline\r\n",
                                  "\x85\u2028\ud800", "\U0001f600 é"])
def test_non_printable_finds_what_ruamel_yamls_reader_refuses(text: str) -> None:
    theirs = Reader.NON_PRINTABLE.search(text)
    ours = yaml12.NON_PRINTABLE.search(text)
    assert (ours and ours.span()) == (theirs and theirs.span())


def test_non_printable_is_also_pyyamls_reader_pattern() -> None:
    # PyYAML compiles the same text when it is imported, so the fast parser's check compiles nothing more
    import yaml.reader

    assert yaml12.NON_PRINTABLE is yaml.reader.Reader.NON_PRINTABLE or (
        yaml12.NON_PRINTABLE.pattern == yaml.reader.Reader.NON_PRINTABLE.pattern
    )
