"""``flowc.model.json_text`` writes the standard library's JSON bytes, through orjson where it can.

The reference is ``json.dumps`` with the options the module documents; every generated value must give
byte-identical text from ``pretty`` and ``compact``, and a non-finite float must be refused by both.
"""

from __future__ import annotations

import json
import math
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

import flowc.model.json_text as json_text
from flowc.model.json_text import compact, pretty

GENERATED = settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])

#: Floats at the edges of both writers' number formats: where repr switches to an exponent, the smallest
#: subnormal, the largest double, negative zero, integral floats and long mantissas.
_EDGE_FLOATS = [0.0, -0.0, 1.0, -1.0, 0.1, 1.5, 1e15, 1e16, 1e17, 9007199254740993.0, 123456789012345.67,
                1234567890123456.0, 1e-4, 1e-5, 1e-7, 0.0001, 0.00001234, 5e-324, -5e-324, 2.2250738585072014e-308,
                1.7976931348623157e308, 1e22, 1e21, 1e100, 1e-100, 2.5e-5, 3.0000000000000004, 0.30000000000000004]
_EDGE_INTS = [0, -1, 1, 2**31, 2**53 + 1, 2**63 - 1, 2**63, -(2**63), -(2**63) - 1, 2**64 - 1, 2**64, -(2**64),
              10**30, -(10**30), 10**300]
#: Text that JSON writers escape differently if they differ at all.
_EDGE_TEXT = ["", '"', "\\", "\\\\\"", "/", "\x00", "\x1f", "\x7f", "\x80", "\x9f", "\b\f\n\r\t", "\u2028", "\u2029",
              "\ufeff", "\ufffe", "\uffff", "é", "日本", "\U0001f600", "\U0010ffff", "</script>", "a\u0301", "\x1b[0m"]

finite_floats = st.one_of(st.floats(allow_nan=False, allow_infinity=False), st.sampled_from(_EDGE_FLOATS),
                          st.sampled_from(_EDGE_FLOATS).map(lambda x: -x))
integers = st.one_of(st.integers(), st.integers(-(2**70), 2**70), st.integers(-(10**400), 10**400),
                     st.sampled_from(_EDGE_INTS))
#: Every code point but the surrogates (a lone surrogate is not text a file can hold).
texts = st.one_of(st.text(st.characters(codec="utf-8")), st.sampled_from(_EDGE_TEXT),
                  st.lists(st.sampled_from(_EDGE_TEXT), max_size=4).map("".join))
scalars = st.one_of(st.none(), st.booleans(), integers, finite_floats, texts)
json_values = st.recursive(
    scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=5),
        st.lists(children, max_size=3).map(tuple),
        st.dictionaries(texts, children, max_size=5),
    ),
    max_leaves=25,
)


def _reference_pretty(data: Any) -> str:
    return json.dumps(data, sort_keys=True, indent=2, ensure_ascii=False, allow_nan=False) + "\n"


def _reference_compact(data: Any) -> str:
    return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


@GENERATED
@example({"b": 1e16, "a": [5e-324, -0.0, 1e-7]})
@example({"é": 1, "e": 2, "\U0001f600": 3, "\uffff": 4, "Z": 5, "": 6})
@example([2**64, -(2**63) - 1, 2**63 - 1, 10**30])
@example({"text": "\x00\x1f\x7f\u2028\u2029\"\\/\t\n"})
@example(())
@given(json_values)
def test_pretty_and_compact_are_the_standard_library_bytes(data: Any) -> None:
    assert pretty(data) == _reference_pretty(data)
    assert compact(data) == _reference_compact(data)


_NON_FINITE = [math.inf, -math.inf, math.nan]


@settings(max_examples=150, deadline=None)
@given(json_values, st.sampled_from(_NON_FINITE), st.integers(0, 3))
def test_non_finite_floats_are_refused_by_both(data: Any, bad: float, placement: int) -> None:
    # The bad number alone, beside the data in a list, as a value of a mapping, or deep inside one.
    wrapped = [bad, [data, bad], {"k": data, "z": bad}, {"k": [data, {"deep": bad}]}][placement]
    with pytest.raises(ValueError):
        pretty(wrapped)
    with pytest.raises(ValueError):
        compact(wrapped)
    with pytest.raises(ValueError):
        _reference_pretty(wrapped)


#: What plans hold: nested mappings of names, small integers, plain decimals, booleans and text.
PLAN_LIKE = {
    "version": 1,
    "source": "examples/multi-node.yaml",
    "tasks": {"train": {"instance_type": "8xh100", "num_instances": 2, "max_price_per_hour": 24.5,
                        "spot": False, "region": None, "env": {"LANG": "C.UTF-8", "NOTE": "é ✓ \U0001f600"},
                        "command": ["python", "train.py", "--lr", "0.001"]}},
    "nodes": {"n0": {"cpus": [0, 1, 2, 3], "numa_topology": {"0": "0-3"}, "buffer_size": 4194304}},
    "links": [{"producer_node": "n0", "consumer_node": "n1", "transport": "tcp", "port": 7001}],
}


def test_orjson_writes_ordinary_plans() -> None:
    orjson = json_text.orjson
    assert orjson is not None, "orjson is a dependency; without it every plan takes the slow encoder"
    # pretty() writes orjson's text exactly when orjson's compact form is the standard library's.
    assert orjson.dumps(PLAN_LIKE, option=orjson.OPT_SORT_KEYS).decode("utf-8") == compact(PLAN_LIKE)
    indented = orjson.dumps(PLAN_LIKE, option=orjson.OPT_SORT_KEYS | orjson.OPT_INDENT_2 | orjson.OPT_APPEND_NEWLINE)
    assert pretty(PLAN_LIKE) == indented.decode("utf-8") == _reference_pretty(PLAN_LIKE)


@pytest.mark.parametrize("value", [1e-7, 1e-5, 2**64, -(2**63) - 1, 10**30],
                         ids=["1e-7", "1e-5", "2**64", "-2**63-1", "10**30"])
def test_values_orjson_writes_differently_still_get_the_standard_library_bytes(value: Any) -> None:
    data = {"a": [value, 1.5], "b": PLAN_LIKE}
    orjson = json_text.orjson
    assert orjson is not None
    try:
        differs = orjson.dumps(data, option=orjson.OPT_SORT_KEYS).decode("utf-8") != compact(data)
    except orjson.JSONEncodeError:
        differs = True  # orjson refuses integers beyond 64 bits
    assert differs, "the fallback is not exercised by this value any more; pick another"
    assert pretty(data) == _reference_pretty(data)
