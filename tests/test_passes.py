"""Behaviour of individual passes that golden files do not make obvious."""

from __future__ import annotations

import pytest

from flowc.model import catalog
from flowc.model.context import Context
from flowc.model.units import format_cpuset, parse_cpuset, parse_size
from flowc.passes.parse import parse
from flowc.passes.substitute import substitute
from flowc.pipeline import compile_source

from conftest import ROOT

PIPE = """
actors:
  feed_a: {type: producer, outputs: [ticks]}
  feed_b: {type: producer, outputs: [ticks]}
  book: {type: transformer, inputs: [ticks], outputs: [quotes]}
  far: {type: consumer, inputs: [quotes]}
nodes:
  edge:
    hostname: edge-01
    numa_topology: {0: "0-1", 1: "2-3"}
    actors:
      feed_a: {cpu: [0]}
      feed_b: {cpu: "2"}
      book: {numa: 0, cpu: [1]}
  core:
    hostname: core-01
    actors: {far: {cpu: [0]}}
inter_node:
  quotes_out: {source: edge.quotes, targets: [core], compression: zstd}
"""


def codes(text: str, environ: dict[str, str] | None = None) -> list[str]:
    return [d.code for d in compile_source(text, "t.yaml", environ=environ or {}, until="spec").diagnostics]


def test_parse_keeps_key_and_value_positions() -> None:
    ctx = Context("t.yaml")
    doc = parse("nodes:\n  box:\n    hostname:   box-1\n    actors: {a: {cpu: [0, 7]}}\n", ctx)
    assert ctx.diagnostics == []
    assert (doc.key_span(("nodes", "box", "hostname")).line, doc.key_span(("nodes", "box", "hostname")).col) == (3, 5)
    assert (doc.span(("nodes", "box", "hostname")).line, doc.span(("nodes", "box", "hostname")).col) == (3, 17)
    assert doc.span(("nodes", "box", "actors", "a", "cpu", 1)).col == 27
    assert doc.span(("nodes", "box", "nowhere", "deeper")).line == 3, "unknown paths fall back to the nearest parent"


@pytest.mark.parametrize(("text", "environ", "expected"), [
    ("n: ${N}", {"N": "4"}, 4),
    ("n: ${N}", {"N": "2.5"}, 2.5),
    ("n: ${N}", {"N": "true"}, True),
    ("n: '${N}'", {"N": "4"}, "4"),
    ("n: ${N:-7}", {}, 7),
    ("n: ${N:-}", {}, ""),
    ("n: x-${A}-${B:-b}", {"A": "a"}, "x-a-b"),
    ("n: cost $$5", {}, "cost $5"),
    ("n: ${N:-a:-b}", {}, "a:-b"),
])
def test_substitution(text: str, environ: dict[str, str], expected: object) -> None:
    ctx = Context("t.yaml", environ=environ)
    assert substitute(parse(text, ctx), ctx).data == {"n": expected}
    assert ctx.diagnostics == []


def test_substitution_errors_point_at_the_value() -> None:
    ctx = Context("t.yaml", environ={})
    substitute(parse("a: 1\nimage: repo/${IMG}\nb: ${bad name}\n", ctx), ctx)
    assert [(d.code, d.span.line, d.span.col) for d in ctx.diagnostics] == [("FLC110", 2, 8), ("FLC111", 3, 4)]


def test_units() -> None:
    assert parse_cpuset("0-2,8, 10-11") == (0, 1, 2, 8, 10, 11)
    assert format_cpuset(parse_cpuset("0-2,8,10-11")) == "0-2,8,10-11"
    with pytest.raises(ValueError, match="backwards"):
        parse_cpuset("3-1")
    with pytest.raises(ValueError, match="twice"):
        parse_cpuset("0-3,2")
    assert parse_size("64MB") == parse_size("64MiB") == 64 * 1024 * 1024
    assert parse_size("1.5KiB") == 1536 and parse_size(" 512 B ") == 512
    with pytest.raises(ValueError):
        parse_size("0MB")


def test_catalog_spellings() -> None:
    assert catalog.lookup("8xh100") == catalog.lookup("h100-80gb.sxm.8x") == catalog.lookup("h100:8")
    assert catalog.lookup("4xa100").gpu_count == 4
    assert catalog.lookup("a100").name == "a100-80gb.sxm.1x"
    assert catalog.lookup("32xh100").known is False
    assert catalog.lookup("8xquantum") is None


def test_plan_resolves_transports_types_and_ports() -> None:
    result = compile_source(PIPE, "t.yaml", environ={})
    assert result.ok, result.diagnostics
    assert [d.code for d in result.diagnostics] == ["FLC401"], "feed_b on numa 1 feeds book on numa 0"
    plan = result.plan
    edge = plan.nodes["edge"]
    assert edge.actors["feed_b"].numa == 1 and edge.actors["feed_a"].numa == 0, "numa derived from the cpu map"
    ticks = edge.channels["ticks"]
    assert (ticks.type, ticks.type_inferred, ticks.buffer_size) == ("MPSC", True, 4 * 1024 * 1024)
    assert ticks.producers == ("feed_a", "feed_b") and ticks.consumers == ("book",)
    assert edge.channels["quotes"].routes_out == ("quotes_out",)
    assert plan.nodes["core"].channels["quotes"].routes_in == ("quotes_out",)
    assert plan.routes["quotes_out"].port == 7400 and plan.routes["quotes_out"].compression == "zstd"
    links = {(link.producer, link.consumer): link for link in plan.links}
    assert links[("feed_b", "book")].cross_numa and links[("feed_b", "book")].transport == "shm"
    assert not links[("feed_a", "book")].cross_numa
    assert links[("book", "far")].transport == "tcp" and links[("book", "far")].route == "quotes_out"


def test_all_errors_of_a_stage_are_reported_together() -> None:
    text = PIPE.replace("feed_a: {cpu: [0]}", "feed_a: {cpu: [1]}").replace("targets: [core]", "targets: [cor]")
    found = codes(text)
    assert "FLC307" in found and "FLC320" in found and "FLC322" in found


def test_schema_errors_stop_before_semantics() -> None:
    assert codes(PIPE.replace("compression: zstd", "compression: gzip")) == ["FLC203"]


def test_cycle_is_reported_once_per_cycle() -> None:
    text = """
actors:
  a: {type: transformer, inputs: [z], outputs: [x]}
  b: {type: transformer, inputs: [x], outputs: [y]}
  c: {type: transformer, inputs: [y], outputs: [z]}
  d: {type: transformer, inputs: [w], outputs: [v]}
  e: {type: transformer, inputs: [v], outputs: [w]}
nodes:
  n: {hostname: n, actors: {a: {cpu: [0]}, b: {cpu: [1]}, c: {cpu: [2]}, d: {cpu: [3]}, e: {cpu: [4]}}}
"""
    result = compile_source(text, "t.yaml", environ={}, until="spec")
    cycles = sorted(d.message for d in result.diagnostics if d.code == "FLC402")
    assert cycles == ["actors form a cycle: 'a' -> 'b' -> 'c' -> 'a'", "actors form a cycle: 'd' -> 'e' -> 'd'"]


def test_topology_shorthand_and_distance() -> None:
    text = "tasks:\n  a: {instance_type: a100, num_instances: 3, topology: spread}\n" \
           "  b: {instance_type: 8xh100, num_instances: 2, topology: {constraints: {same_zone: true}}}\n"
    plan = compile_source(text, "t.yaml", environ={}).plan
    assert plan.tasks["a"].topology.placement == "spread" and plan.tasks["a"].topology.distance is None
    assert plan.tasks["b"].topology.placement == "packed" and plan.tasks["b"].topology.distance == "zone"
    assert plan.tasks["b"].topology.group == "b"


@pytest.mark.parametrize("example", sorted((ROOT / "examples").glob("*.yaml")), ids=lambda p: p.stem)
def test_lowered_ir_passes_full_validation(example) -> None:
    """``lower`` skips pydantic validation for speed; prove the IR it builds is valid anyway."""
    from flowc.passes.check_schema import check_schema
    from flowc.passes.lower import lower

    ctx = Context(example.name, environ={})
    spec = lower(check_schema(substitute(parse(example.read_text(), ctx), ctx), ctx), ctx)
    assert not ctx.has_errors
    for model in (spec, *spec.tasks, *spec.actors, *spec.nodes, *spec.routes):
        rebuilt = type(model).model_validate(model.model_dump(round_trip=True))
        assert rebuilt == model
