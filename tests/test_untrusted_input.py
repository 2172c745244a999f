"""Properties over classes of hostile input to the front end: names, YAML scalars, values, plans.

Each test covers a class of issue 11's findings, not only its reproducer (the reproducers are golden cases
in ``tests/invalid/``): every schema pattern is a full match, every typed-looking plain scalar and every
explicit tag reads or becomes a diagnostic, every number and size is bounded by what a ring and a launcher
can hold, and a hand-edited plan is either refused on load or safe to lay out.
"""

from __future__ import annotations

import copy
import json
import subprocess
import sys
from array import array
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import regress
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from flowc import data
from flowc.emit import graph
from flowc.model.context import Context
from flowc.model.node_view import NodeView
from flowc.model.plan import NodeSlice
from flowc.model.units import MAX_BUFFER, MIN_BUFFER, parse_size
from flowc.passes.parse import MAX_BYTES, parse
from flowc.passes.substitute import substitute
from flowc.pipeline import compile_file, compile_source
from flowc.runtime import actors

from conftest import ROOT
from strategies import dump_yaml, valid_documents

NAME = "gen.yaml"
_SLOW = [HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much]
PROPERTY = settings(max_examples=150, deadline=None, suppress_health_check=_SLOW)
_END = "(?![\\s\\S])"


def _errors(result: Any) -> list[Any]:
    return [d for d in result.diagnostics if d.severity == "error"]


def _no_crash(text: str, environ: dict[str, str] | None = None) -> Any:
    result = compile_source(text, NAME, environ=environ or {})
    for d in result.diagnostics:
        assert d.span.line >= 1 and d.span.col >= 1, d
        assert "\n" not in d.message, d
    return result


# ---------------------------------------------------------------------------------------------------
# Names: every schema pattern is a full match (a trailing newline never passes)
# ---------------------------------------------------------------------------------------------------


def _patterns(node: Any, under_not: bool = False) -> list[tuple[str, bool]]:
    found: list[tuple[str, bool]] = []
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "pattern" and isinstance(value, str):
                found.append((value, under_not))
            else:
                found.extend(_patterns(value, under_not or key == "not"))
    elif isinstance(node, list):
        for item in node:
            found.extend(_patterns(item, under_not))
    return found


PATTERNS = sorted({p for p, negated in _patterns(data.schema()) if not negated})


def test_every_schema_pattern_is_anchored_at_both_ends() -> None:
    assert len(PATTERNS) >= 20
    for pattern in PATTERNS:
        assert pattern.startswith("^") and pattern.endswith(_END), pattern


@pytest.mark.parametrize("pattern", PATTERNS)
@settings(max_examples=25, deadline=None, suppress_health_check=_SLOW)
@given(data=st.data())
def test_a_pattern_rejects_its_valid_values_with_a_line_break_appended(pattern: str, data: st.DataObject) -> None:
    body = pattern.removeprefix("^").removesuffix(_END)
    value = data.draw(st.from_regex(body, fullmatch=True), label="valid value")
    tail = data.draw(st.sampled_from(["\n", "\r\n", "\r", "\n\n", "\x00", "\u2028"]), label="tail")
    validator = jsonschema.Draft202012Validator({"type": "string", "pattern": pattern})
    assert validator.is_valid(value), value
    assert not validator.is_valid(value + tail), value + tail


@pytest.mark.parametrize("pattern", PATTERNS)
def test_ecma_262_reads_the_end_anchor_the_same_way(pattern: str) -> None:
    # Editors and check-jsonschema read patterns as ECMA-262, where '\\Z' does not exist.
    ecma = regress.Regex("^a" + _END)
    assert ecma.find("a") is not None and ecma.find("a\n") is None and ecma.find("a\r\n") is None
    assert regress.Regex(pattern).find("\n") is None


def _recording_validator() -> type:
    """A validator whose ``pattern`` keyword fails every string, so its errors list the patterned places."""
    def pattern(validator: Any, value: str, instance: Any, schema: Any) -> Any:
        if isinstance(instance, str):
            yield jsonschema.ValidationError("patterned")

    return jsonschema.validators.extend(jsonschema.Draft202012Validator, {"pattern": pattern})


_RECORDER = _recording_validator()(data.schema())


def _patterned_places(document: Any) -> set[tuple[tuple[Any, ...], bool]]:
    """(path, is_key) of every string of ``document`` that a schema pattern judges."""
    places: set[tuple[tuple[Any, ...], bool]] = set()
    stack = list(_RECORDER.iter_errors(document))
    while stack:
        error = stack.pop()
        stack.extend(error.context or ())
        if error.message == "patterned":
            path = tuple(error.absolute_path)
            is_key = "propertyNames" in error.absolute_schema_path
            places.add(((*path, error.instance) if is_key else path, is_key))
    return places


def _with_newline(document: Any, path: tuple[Any, ...], is_key: bool) -> Any:
    document = copy.deepcopy(document)
    parent = document
    for part in path[:-1]:
        parent = parent[part]
    if is_key:
        parent[path[-1] + "\n"] = parent.pop(path[-1])
    else:
        parent[path[-1]] += "\n"
    return document


@PROPERTY
@given(valid_documents(), st.data())
def test_a_line_break_after_any_patterned_value_of_a_document_is_an_error(case: Any, draw: st.DataObject) -> None:
    document, _ = case
    places = sorted(_patterned_places(document), key=repr)
    if not places:
        return
    path, is_key = draw.draw(st.sampled_from(places), label="place")
    text = json.dumps(_with_newline(document, path, is_key), indent=1)
    result = _no_crash(text)
    assert _errors(result), (path, is_key)
    assert result.plan is None


# ---------------------------------------------------------------------------------------------------
# YAML: plain scalars that look typed, explicit tags, merge keys
# ---------------------------------------------------------------------------------------------------

_digits = st.text("0123456789", min_size=1, max_size=4)
typed_looking = st.one_of(
    st.builds("{}-{}-{}".format, _digits, _digits, _digits),
    st.builds("{}-{}-{} {}:{}:{}".format, _digits, _digits, _digits, _digits, _digits, _digits),
    st.builds("{}-{}-{}T{}:{}:{}.{}Z".format, _digits, _digits, _digits, _digits, _digits, _digits, _digits),
    st.builds("{}{}{}".format, st.sampled_from(["", "-", "+"]), st.sampled_from(["0x", "0o", "0b", "0"]),
              st.text("0123456789abcdefxo_", max_size=4)),
    st.integers(4250, 4400).map(lambda n: "9" * n),
    st.builds("{}{}".format, st.sampled_from(["", "-"]), st.integers(300, 400).map(lambda n: "9" * n + ".5e9")),
    st.builds("{}:{}:{}".format, _digits, _digits, _digits),
)
_TAGS = ["!!int", "!!float", "!!bool", "!!null", "!!str", "!!timestamp", "!!binary", "!!omap", "!!set",
         "!!pairs", "!!map", "!!seq", "!!merge", "!!value", "!custom", "!<tag:yaml.org,2002:int>"]
tagged = st.builds("{} {}".format, st.sampled_from(_TAGS),
                   st.one_of(typed_looking, st.sampled_from(["x", "a100", "[a]", "{a: 1}", "''", "~", "@@"])))


@PROPERTY
@given(st.one_of(typed_looking, tagged), st.sampled_from(["region", "num_instances", "image", "name"]),
       st.booleans())
def test_typed_looking_scalars_and_tags_read_or_give_a_diagnostic(scalar: str, field: str, as_key: bool) -> None:
    body = {"name": "x", "instance_type": "a100", field: "PLACEHOLDER"}
    text = dump_yaml(body, "block").replace("PLACEHOLDER", scalar)
    if as_key:
        text += f"env:\n  {scalar}: 1\n"
    result = _no_crash(text)
    if result.plan is None:
        assert _errors(result)


@PROPERTY
@given(st.dictionaries(st.sampled_from(["placement", "constraints", "x"]), st.sampled_from(["spread", "{}"]),
                       max_size=2), st.booleans())
def test_a_merge_key_is_refused_whatever_else_the_mapping_holds(merged: dict[str, str], flow: bool) -> None:
    inner = ", ".join(f"{k}: {v}" for k, v in merged.items())
    text = f"name: x\ninstance_type: a100\ntopology: {{<<: {{{inner}}}}}\n"
    if not flow:
        text = f"name: x\ninstance_type: a100\ntopology:\n  <<: {{{inner}}}\n"
    assert [d.code for d in _errors(_no_crash(text))] == ["FLC105"]


# ---------------------------------------------------------------------------------------------------
# Substitution: the shell's ':-' and '-'
# ---------------------------------------------------------------------------------------------------


def _shell(reference: str, value: str | None) -> str:
    env = {} if value is None else {"V": value}
    proc = subprocess.run(["sh", "-c", f'printf %s "{reference}"'], env=env, capture_output=True, text=True,
                          check=True)
    return proc.stdout


@pytest.mark.parametrize("value", [None, "", "set"])
@pytest.mark.parametrize("reference", ["${V:-fallback}", "${V-fallback}", "${V:-}", "${V-}", "a${V:-b}c"])
def test_defaults_follow_the_shell(reference: str, value: str | None) -> None:
    environ = {} if value is None else {"V": value}
    ctx = Context(NAME, environ=environ)
    doc = substitute(parse(f"n: '{reference}'\n", ctx), ctx)
    assert ctx.diagnostics == []
    assert doc.data == {"n": _shell(reference, value)}


@PROPERTY
@given(st.one_of(st.none(), st.text("ab0", max_size=3)), st.text("xy1", max_size=3), st.sampled_from([":-", "-"]))
def test_defaults_model(value: str | None, default: str, sep: str) -> None:
    environ = {} if value is None else {"V": value}
    ctx = Context(NAME, environ=environ)
    doc = substitute(parse(f"n: 'v=${{V{sep}{default}}}'\n", ctx), ctx)
    unset_or_empty = value is None or (sep == ":-" and value == "")
    assert doc.data == {"n": "v=" + (default if unset_or_empty else value)}


@PROPERTY
@given(st.integers(4290, 4400), st.sampled_from(["", "-", "+"]))
def test_a_substituted_integer_of_any_length_gives_a_diagnostic_or_a_value(length: int, sign: str) -> None:
    result = _no_crash("name: x\ninstance_type: a100\nnum_instances: ${N}\n", {"N": sign + "9" * length})
    assert _errors(result)
    assert result.plan is None


# ---------------------------------------------------------------------------------------------------
# Values: sizes, numbers beyond 64 bits, ring ends
# ---------------------------------------------------------------------------------------------------

size_texts = st.one_of(
    st.integers(-(2**80), 2**80),
    st.floats(allow_nan=True, allow_infinity=True),
    st.builds("{}{}{}".format, st.text("0123456789", min_size=1, max_size=30),
              st.sampled_from(["", ".5", ".0000001"]), st.sampled_from(["", "B", "KB", "MiB", "GB", "TiB", "TB"])),
)


@PROPERTY
@given(size_texts)
def test_a_buffer_size_is_in_range_or_refused(value: Any) -> None:
    try:
        size = parse_size(value, minimum=MIN_BUFFER, maximum=MAX_BUFFER)
    except ValueError as exc:
        assert "\n" not in str(exc) and len(str(exc)) < 200
        return
    assert MIN_BUFFER <= size <= MAX_BUFFER


_CHANNEL = """\
actors:
  p: {type: producer, outputs: [c], run: flowc.actors:synthetic_producer}
  s: {type: consumer, inputs: [c], run: flowc.actors:latency_sink, memory_max: MEMORY}
nodes:
  n:
    hostname: localhost
    actors: {p: {cpu: [0]}, s: {cpu: [1]}}
    local_channels:
      c: {buffer_size: SIZE}
"""


@PROPERTY
@given(st.one_of(size_texts.map(lambda v: json.dumps(v) if not isinstance(v, float) else repr(v)),
                 st.integers(-(2**300), 2**300).map(str)),
       st.sampled_from(['"1GiB"', '"0"', "0", '"0.4B"', "1", str(2**64), '"9999999TB"']))
def test_values_a_build_cannot_hold_fail_the_check(size: str, memory: str) -> None:
    text = _CHANNEL.replace("SIZE", size).replace("MEMORY", memory)
    result = _no_crash(text)
    if result.plan is not None:
        channel = result.plan.nodes["n"].channels["c"]
        assert MIN_BUFFER <= channel.buffer_size <= MAX_BUFFER
        assert 1 <= result.plan.nodes["n"].actors["s"].memory_max < 2**63


@PROPERTY
@given(st.sampled_from(["max_price_per_hour", "num_instances", "max_run_time_hours"]),
       st.integers(2**63, 2**1200) | st.integers(-(2**1200), -(2**63)))
def test_numbers_beyond_64_bits_are_diagnostics(field: str, value: int) -> None:
    result = _no_crash(f"name: x\ninstance_type: a100\n{field}: {value}\n")
    assert "FLC205" in [d.code for d in _errors(result)]


@pytest.mark.parametrize(("producers", "consumers", "codes"), [(1024, 1, []), (1025, 1, ["FLC342"]),
                                                                (1, 1025, ["FLC342"])])
def test_ring_ends_are_bounded_at_check_time(producers: int, consumers: int, codes: list[str]) -> None:
    actors_ = {f"p{i}": {"type": "producer", "outputs": ["c"]} for i in range(producers)}
    actors_.update({f"s{i}": {"type": "consumer", "inputs": ["c"]} for i in range(consumers)})
    cpus = {name: {"cpu": [i]} for i, name in enumerate(actors_)}
    document = {"actors": actors_, "nodes": {"n": {"hostname": "h", "actors": cpus}}}
    result = compile_source(json.dumps(document), NAME, environ={}, until="spec")
    assert [d.code for d in _errors(result)] == codes


# ---------------------------------------------------------------------------------------------------
# Hand-edited plans
# ---------------------------------------------------------------------------------------------------

_DEMO = compile_source((ROOT / "examples" / "datapath-demo.yaml").read_text(encoding="utf-8"),
                       "datapath-demo.yaml", environ={}).plan
assert _DEMO is not None
_PLAN = json.loads(_DEMO.to_json())


def _places(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = []
    if isinstance(value, dict):
        for key, item in value.items():
            out.append((*prefix, key))
            out.extend(_places(item, (*prefix, key)))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            out.append((*prefix, index))
            out.extend(_places(item, (*prefix, index)))
    return out


_NODE_PLACES = [p for p in _places(_PLAN) if p[:2] in (("nodes", "dev_node"),) or p[:1] in (("routes",), ("links",))]
hostile_values = st.one_of(
    st.integers(-(2**70), 2**70), st.sampled_from([-1, 0, 2**64, 2**63, 255, 256, 65536, 1024, 1025]),
    st.sampled_from(["nope", "", "market_data", "signals", "executor", "route:x:in"]),
    st.lists(st.sampled_from(["nope", "signals", "market_data", "executor", "flash_arbitrage"]), max_size=3),
    st.none(), st.booleans(), st.floats(),
)


@settings(max_examples=300, deadline=None, suppress_health_check=_SLOW)
@given(st.lists(st.tuples(st.sampled_from(_NODE_PLACES), hostile_values), min_size=1, max_size=3))
def test_a_hand_edited_plan_is_refused_or_safe_to_lay_out(edits: list[tuple[tuple[Any, ...], Any]]) -> None:
    plan = copy.deepcopy(_PLAN)
    for path, value in edits:
        parent = plan
        try:
            for part in path[:-1]:
                parent = parent[part]
            parent[path[-1]] = value
        except (KeyError, IndexError, TypeError):
            continue
    try:
        loaded = NodeSlice.load(json.dumps(plan), "dev_node")
    except (ValueError, LookupError):
        return
    layout = NodeView.of(loaded, "dev_node")
    for ring in layout.rings.values():
        assert MIN_BUFFER <= ring.buffer_size <= MAX_BUFFER
        assert 1 <= ring.producers <= 1024 and 1 <= ring.consumers <= 1024


@pytest.mark.parametrize(("path", "value"), [
    (("channels", "signals", "buffer_size"), -1),
    (("channels", "signals", "buffer_size"), 0),
    (("channels", "signals", "buffer_size"), 2**64),
    (("actors", "executor", "inputs"), ["nowhere"]),
    (("actors", "executor", "cpus"), [-1]),
    (("channels", "signals", "producers"), ["flash_arbitrage"] * 1100),
])
def test_impossible_plans_are_not_valid_flowc_plans(tmp_path: Path, path: tuple[str, ...], value: Any) -> None:
    plan = copy.deepcopy(_PLAN)
    parent = plan["nodes"]["dev_node"]
    for part in path[:-1]:
        parent = parent[part]
    parent[path[-1]] = value
    file = tmp_path / "plan.json"
    file.write_text(json.dumps(plan), encoding="utf-8")
    proc = subprocess.run([sys.executable, "-m", "flowc", "launch", str(file), "--node", "dev_node",
                           "--duration", "0.1"], capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 1, proc.stderr
    assert "is not a flowc plan" in proc.stderr and "Traceback" not in proc.stderr


# ---------------------------------------------------------------------------------------------------
# Reading, the graph, the bid, the latency sink
# ---------------------------------------------------------------------------------------------------


def test_an_endless_file_is_refused_after_the_cap() -> None:
    result = compile_file("/dev/zero", until="spec")
    assert [d.code for d in result.diagnostics] == ["FLC102"]


def test_the_cap_counts_bytes_and_keeps_universal_newlines(tmp_path: Path) -> None:
    big = tmp_path / "big.yaml"
    big.write_bytes(b"#" * MAX_BYTES + b"\n")
    assert [d.code for d in compile_file(big, until="spec").diagnostics] == ["FLC102"]
    crlf = tmp_path / "crlf.yaml"
    crlf.write_bytes(b"name: x\r\ninstance_type: a100\r\nnum_instances: 2\r\n")
    result = compile_file(crlf)
    assert result.plan is not None and result.plan.tasks["x"].num_instances == 2


@PROPERTY
@given(st.text(max_size=30))
def test_dot_strings_escape_once(text: str) -> None:
    quoted = graph._q(text)
    assert quoted.startswith('"') and quoted.endswith('"') and "\n" not in quoted
    body, out, i = quoted[1:-1], [], 0
    while i < len(body):
        if body[i] == "\\":
            out.append({"n": "\n", "\\": "\\", '"': '"'}[body[i + 1]])
            i += 2
        else:
            assert body[i] != '"'
            out.append(body[i])
            i += 1
    assert "".join(out) == text.replace("\r", "")


def test_graph_labels_break_lines_instead_of_showing_backslash_n() -> None:
    dot = graph.render_dot(_DEMO)
    assert "\\\\n" not in dot
    assert 'label="executor\\nconsumer cpu 2"' in dot


def test_memory_gb_is_an_integer_in_the_bid() -> None:
    from flowc.emit.registry import emit_targets

    text = "name: x\ninstance_type: a100\nmithril:\n  memory_gb: 16.0\n"
    result = compile_source(text, NAME, environ={})
    assert result.plan is not None
    bids = [a for a in emit_targets(result.plan, Context(NAME))
            if a.path.startswith("mithril/") and a.path.endswith(".json")]
    body = json.loads(bids[0].content)
    assert body["launch_specification"]["memory_gb"] == 16
    assert isinstance(body["launch_specification"]["memory_gb"], int)


class _Input:
    def __init__(self, messages: list[bytes]) -> None:
        self.messages = list(messages)

    def recv(self, timeout: float | None = None) -> bytes | None:
        return self.messages.pop(0) if self.messages else None

    @property
    def closed(self) -> bool:
        return not self.messages


@PROPERTY
@given(st.lists(st.binary(max_size=actors.HEADER.size + 4), max_size=30))
def test_the_latency_sink_counts_short_messages_as_malformed(messages: list[bytes]) -> None:
    reports: list[tuple[array, dict[str, Any]]] = []
    original = actors._write_report
    actors._write_report = lambda samples, summary: reports.append((samples, summary))
    try:
        actors.latency_sink({"in": _Input(messages)}, {}, {})
    finally:
        actors._write_report = original
    (samples, summary), = reports
    short = sum(len(m) < actors.HEADER.size for m in messages)
    assert summary["malformed"] >= short
    assert summary["count"] + summary["malformed"] == len(messages)
    assert summary["count"] == len(samples)
