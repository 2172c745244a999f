"""jsonschema-rs's screen agrees with ``jsonschema`` on which documents are valid.

``check_schema`` asks the screen first and only a document it rejects goes through ``jsonschema`` for
diagnostics, so a document the screen accepts while ``jsonschema`` finds errors would lose every schema
diagnostic. The documents here start from every example and golden input and are mutated the ways users get
them wrong: keys deleted or added, values of the wrong type, text with trailing newlines, odd digits or spaces,
numbers out of range or beyond 64 bits, and names with odd characters where identifiers belong.
"""

from __future__ import annotations

import copy
import math
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from flowc.model.context import Context
from flowc.passes.check_schema import _screen, _validator, schema_errors
from flowc.passes.parse import parse
from flowc.passes.substitute import substitute

from strategies import mutated_data

ROOT = Path(__file__).resolve().parent.parent
SOURCE_FILES = sorted([*(ROOT / "examples").glob("*.yaml"), *(ROOT / "tests" / "golden").glob("*/input*.yaml")])
MUTATED = settings(max_examples=1000, deadline=None,
                   suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


def _load(path: Path) -> Any:
    """The data ``check_schema`` sees for a file: parsed, then substituted with every variable unset."""
    ctx = Context(path.name, environ={})
    doc = substitute(parse(path.read_text(encoding="utf-8"), ctx), ctx)
    assert ctx.diagnostics == [], (path, ctx.diagnostics)
    return doc.data


SOURCES = {path.relative_to(ROOT).as_posix(): _load(path) for path in SOURCE_FILES}


def _screen_says_valid(data: Any) -> bool:
    screen = _screen()
    assert screen is not None, "jsonschema-rs is a dependency; without it this property checks nothing"
    return bool(screen.is_valid(data))


def _errors(data: Any) -> list[str]:
    return [f"{list(error.absolute_path)}: {error.message}" for error in _validator().iter_errors(data)]


# ---------------------------------------------------------------------------------------------------
# Mutations
# ---------------------------------------------------------------------------------------------------

#: Names that an identifier pattern must refuse, and some it must accept.
ODD_NAMES = ["A", "a\n", "a ", " a", "a-", "-a", "_a", "1a", "a.b", "a/b", "a b", "é", "ａ", "a" * 64, "a" * 63, "",
             "a\t", "a\x00", "a\u2028", "a\ufeff", "ſ", "K", "a١", "a_b", "a-b", "a1", "x", "𝟘"]
#: Text edits for string values: what a careless editor or a YAML block scalar leaves behind.
_TEXT_EDITS = [
    lambda text: text + "\n", lambda text: text + " ", lambda text: " " + text, lambda text: text + "\t",
    lambda text: text + "\r\n", lambda text: "\ufeff" + text, lambda text: text.upper(), lambda text: text[:-1],
    lambda text: text + "١", lambda text: "٣" + text, lambda text: text + "０", lambda text: text + "é",
    lambda text: text + "/..", lambda text: "../" + text, lambda text: text + "\u2028", lambda text: text + "\x85",
    lambda text: text + "\xa0", lambda text: text + "\x1f", lambda text: text + "\u3000", lambda text: text * 60,
    lambda text: text.replace("-", "_"), lambda text: text + "-", lambda text: text + ".", lambda text: "",
    lambda text: text + "B", lambda text: text + "KiB", lambda text: text + ",", lambda text: text + "'",
]
_NUMBER_EDITS = [
    lambda n: -n, lambda n: 0, lambda n: -1, lambda n: n + 1, lambda n: n * 1000, lambda n: 2**31, lambda n: 2**63 - 1,
    lambda n: 2**63, lambda n: 2**64, lambda n: -(2**63) - 1, lambda n: 10**30, lambda n: float(n), lambda n: n + 0.5,
    lambda n: 1e300, lambda n: -0.0, lambda n: str(n), lambda n: True, lambda n: [n], lambda n: None,
]
#: A value of every JSON type, to put where another type belongs.
other_values = st.one_of(
    st.none(), st.booleans(), st.integers(-5, 70_000), st.integers(-(2**70), 2**70),
    st.floats(allow_nan=False, allow_infinity=False), st.sampled_from(ODD_NAMES), st.text(max_size=8),
    st.lists(st.one_of(st.integers(-2, 100), st.sampled_from(ODD_NAMES)), max_size=3),
    st.dictionaries(st.sampled_from(ODD_NAMES), st.integers(0, 5), max_size=2),
    st.sampled_from(["packed", "spread", "spsc", "mpmc", "tcp", "0-3", "64MiB", "block", "file", "a100"]),
)


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    found = [prefix]
    if isinstance(value, dict):
        for key, item in value.items():
            found.extend(_paths(item, (*prefix, key)))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found.extend(_paths(item, (*prefix, index)))
    return found


def _get(data: Any, path: tuple[Any, ...]) -> Any:
    for part in path:
        data = data[part]
    return data


@st.composite
def one_mutation(draw: st.DrawFn, data: Any) -> Any:
    """Apply one targeted mutation to a copy of ``data``."""
    data = copy.deepcopy(data)
    paths = _paths(data)
    inner = [path for path in paths if path]
    op = draw(st.sampled_from(["delete", "add_key", "retype", "edit_text", "edit_number", "rename", "duplicate"]))
    if op == "add_key":
        owners = [path for path in paths if isinstance(_get(data, path), dict)]
        if owners:
            owner = _get(data, draw(st.sampled_from(owners)))
            known = sorted({path[-1] for path in inner if isinstance(path[-1], str)})
            key = draw(st.one_of(st.sampled_from(ODD_NAMES), st.sampled_from(known or ["x"]), st.text(max_size=6)))
            owner[key] = draw(other_values)
        return data
    if not inner:
        return draw(other_values)
    if op == "edit_text":
        inner = [path for path in inner if isinstance(_get(data, path), str)] or inner
    elif op == "edit_number":
        inner = [path for path in inner if type(_get(data, path)) in (int, float)] or inner
    elif op == "rename":
        inner = [path for path in inner if isinstance(path[-1], str)] or inner
    elif op == "duplicate":
        inner = [path for path in inner if isinstance(path[-1], int)] or inner
    path = draw(st.sampled_from(inner))
    parent, key = _get(data, path[:-1]), path[-1]
    value = parent[key]
    if op == "delete":
        del parent[key]
    elif op == "edit_text" and isinstance(value, str):
        parent[key] = draw(st.sampled_from(_TEXT_EDITS))(value)
    elif op == "edit_number" and type(value) in (int, float):
        parent[key] = draw(st.sampled_from(_NUMBER_EDITS))(value)
    elif op == "rename" and isinstance(parent, dict):
        parent[draw(st.one_of(st.sampled_from(ODD_NAMES), st.sampled_from(_TEXT_EDITS).map(lambda edit: edit(key))))] \
            = parent.pop(key)
    elif op == "duplicate" and isinstance(parent, list):
        twin = float(value) if type(value) is int and draw(st.booleans()) else copy.deepcopy(value)
        parent.insert(key, twin)
    else:
        parent[key] = draw(other_values)
    return data


@st.composite
def mutated_documents(draw: st.DrawFn) -> Any:
    """An example or golden input after one to three mutations (targeted ones, or the shared suite's)."""
    data = SOURCES[draw(st.sampled_from(sorted(SOURCES)))]
    for _ in range(draw(st.integers(1, 3))):
        data = draw(st.one_of(one_mutation(data), one_mutation(data), mutated_data(data)))
    return data


# ---------------------------------------------------------------------------------------------------
# Properties
# ---------------------------------------------------------------------------------------------------


def test_sources_are_the_examples_and_golden_inputs() -> None:
    assert any(name.startswith("examples/") for name in SOURCES)
    assert any(name.startswith("tests/golden/") for name in SOURCES)


@pytest.mark.parametrize("name", sorted(SOURCES))
def test_sources_are_valid_to_both(name: str) -> None:
    assert _errors(SOURCES[name]) == []
    assert _screen_says_valid(SOURCES[name])


@MUTATED
@given(mutated_documents())
def test_screen_accepts_exactly_what_jsonschema_accepts(data: Any) -> None:
    errors = _errors(data)
    # Accepting a document with errors would drop its diagnostics; rejecting a valid one only costs time.
    assert not (_screen_says_valid(data) and errors), errors
    assert _screen_says_valid(data) == (errors == [])
    assert [f"{list(error.absolute_path)}: {error.message}" for error in schema_errors(data)] == errors


_TASK = {"name": "x", "instance_type": "a100"}
_ACTORS = {"actors": {"p": {"type": "producer", "outputs": ["c"]}, "q": {"type": "consumer", "inputs": ["c"]}},
           "nodes": {"n": {"hostname": "h", "actors": {"p": {"cpu": [0]}, "q": {"cpu": [1]}}}}}


def _with_cpus(cpus: Any) -> dict[str, Any]:
    document = copy.deepcopy(_ACTORS)
    document["nodes"]["n"]["actors"]["p"]["cpu"] = cpus
    return document


#: Where two validators in two languages could part: code points against UTF-16 units, 1 against 1.0 and
#: True in uniqueItems, Unicode digits and whitespace in patterns, integral floats, numbers beyond 64 bits.
CORNERS = {
    "256 characters outside the BMP": {**_TASK, "ssh_keys": ["\U0001f600" * 256]},
    "257 characters outside the BMP": {**_TASK, "ssh_keys": ["\U0001f600" * 257]},
    "combining characters": {**_TASK, "ssh_keys": ["e\u0301" * 128]},
    "1 and 1.0 in a unique list": _with_cpus([1, 1.0]),
    "1 and True in a unique list": _with_cpus([1, True]),
    "integral float cpu": _with_cpus([2.0]),
    "fractional float cpu": _with_cpus([2.5]),
    "cpu beyond 64 bits": _with_cpus([2**64]),
    "float beyond any integer": {**_TASK, "num_instances": 1e300},
    "integer beyond 64 bits in env": {**_TASK, "env": {"A": 2**80}},
    "Arabic-Indic digit in a name": {**_TASK, "name": "a\u0661"},
    "mathematical digit in a name": {**_TASK, "name": "a\U0001d7d8"},
    "trailing newline in a name": {**_TASK, "name": "a\n"},
    "byte order mark in an image": {**_TASK, "image": "a\ufeffb"},
    "no-break space in an image": {**_TASK, "image": "a\xa0b"},
    "information separator in an image": {**_TASK, "image": "a\x1cb"},
    "Mongolian vowel separator in an image": {**_TASK, "image": "a\u180eb"},
    "boolean count": {**_TASK, "num_instances": True},
}


@pytest.mark.parametrize("name", sorted(CORNERS))
def test_screen_agrees_on_corner_cases(name: str) -> None:
    errors = _errors(CORNERS[name])
    assert _screen_says_valid(CORNERS[name]) == (errors == []), errors


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutated_documents(), st.sampled_from([math.inf, -math.inf, math.nan]), st.data())
def test_non_finite_numbers_never_pass_the_screen_with_errors(data: Any, bad: float, draws: st.DataObject) -> None:
    # jsonschema accepts .inf and .nan where numbers belong and check_schema reports them itself (FLC205);
    # the screen may reject them, but must not accept a document jsonschema finds errors in.
    numbers = [path for path in _paths(data) if path and type(_get(data, path)) in (int, float)]
    if numbers:
        path = draws.draw(st.sampled_from(numbers))
        _get(data, path[:-1])[path[-1]] = bad
    assert not (_screen_says_valid(data) and _errors(data))
