"""The compiler's quick ways of building objects build exactly what the libraries' own calls build.

``lower`` makes IR objects with :meth:`~flowc.model.ir.Located.trusted` instead of pydantic's ``model_construct``,
and ``place`` fills its networkx graph's adjacency as ``add_edge`` would; both are held here to the slow way, on
every example, on generated topologies and on random operations.
"""

from __future__ import annotations

from typing import Any

import networkx as nx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from flowc.model import ir
from flowc.model.context import Context
from flowc.passes.place import _builder, place
from flowc.pipeline import compile_source

from conftest import ROOT
from strategies import dump_yaml, valid_documents

EXAMPLES = sorted((ROOT / "examples").glob("*.yaml"))


def _located(value: Any) -> list[ir.Located]:
    """Every IR object inside ``value`` (a spec, a tuple, an object), depth first."""
    if isinstance(value, (tuple, list)):
        return [found for item in value for found in _located(item)]
    if isinstance(value, (ir.Located, ir.Spec)):
        inner = [found for name in type(value).model_fields for found in _located(getattr(value, name))]
        return [value, *inner] if isinstance(value, ir.Located) else inner
    return []


def _same_as_model_construct(spec: ir.Spec) -> None:
    objects = _located(spec)
    assert objects
    for obj in objects:
        values = {name: obj.__dict__[name] for name in obj.model_fields_set}
        slow = type(obj).model_construct(**values)
        assert list(obj.__dict__.items()) == list(slow.__dict__.items()), type(obj).__name__
        assert obj.model_fields_set == slow.model_fields_set
        assert obj.__pydantic_extra__ == slow.__pydantic_extra__
        assert obj.__pydantic_private__ == slow.__pydantic_private__
        assert obj == slow and obj.model_dump() == slow.model_dump()


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda p: p.stem)
def test_lower_builds_what_model_construct_builds(example) -> None:
    result = compile_source(example.read_text(), example.name, environ={"IMAGE": "x", "TAG": "1"}, until="spec")
    assert result.values.get("spec") is not None
    _same_as_model_construct(result.values["spec"])


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(valid_documents())
def test_lower_builds_what_model_construct_builds_for_generated_topologies(generated: Any) -> None:
    document, _ = generated
    result = compile_source(dump_yaml(document, "block"), "gen.yaml", environ={}, until="spec")
    assert result.values.get("spec") is not None
    _same_as_model_construct(result.values["spec"])


def test_trusted_fills_defaults_and_drops_unknown_names_as_model_construct_does() -> None:
    span = ir.Span("t.yaml", 1, 1)
    for cls, values in ((ir.Constraints, {"span": span}), (ir.NumaDomain, {"span": span, "id": 2, "no_such": 1}),
                        (ir.LocalChannel, {"span": span, "name": "c", "policy": "drop_oldest"})):
        fast, slow = cls.trusted(**values), cls.model_construct(**values)
        assert list(fast.__dict__.items()) == list(slow.__dict__.items())
        assert fast.model_fields_set == slow.model_fields_set


def test_trusted_refuses_a_model_it_cannot_fill_faithfully() -> None:
    from pydantic import Field

    class Aliased(ir.Located):
        value: int = Field(default=0, alias="v")

    with pytest.raises(TypeError, match="model_construct"):
        Aliased.trusted(span=ir.Span("t.yaml", 1, 1))


_VERTICES = st.tuples(st.sampled_from(["actor", "channel", "node"]), st.sampled_from("abc"))
_OPS = st.lists(st.one_of(st.tuples(st.just("vertex"), _VERTICES),
                          st.tuples(st.just("edge"), _VERTICES, _VERTICES,
                                    st.sampled_from(["reads", "writes", "r:x"]))),
                max_size=40)


@settings(max_examples=200, deadline=None)
@given(_OPS)
def test_the_graph_builder_makes_the_graph_add_edge_makes(ops: list[tuple[Any, ...]]) -> None:
    fast, slow = nx.MultiDiGraph(), nx.MultiDiGraph()
    vertex, edge = _builder(fast)
    for op in ops:
        if op[0] == "vertex":
            vertex(op[1])
            slow.add_node(op[1])
        else:
            edge(*op[1:])
            slow.add_edge(op[1], op[2], key=op[3])
    assert list(fast.nodes(data=True)) == list(slow.nodes(data=True))
    assert list(fast.edges(keys=True, data=True)) == list(slow.edges(keys=True, data=True))
    assert [(v, list(p)) for v, p in fast.pred.items()] == [(v, list(p)) for v, p in slow.pred.items()]
    assert nx.utils.graphs_equal(fast, slow)


def test_the_placement_graph_answers_as_networkx_does_on_every_example() -> None:
    for example in EXAMPLES:
        ctx = Context(example.name, environ={"IMAGE": "x", "TAG": "1"})
        result = compile_source(example.read_text(), example.name, environ={"IMAGE": "x", "TAG": "1"}, until="spec")
        spec = result.values["spec"]
        graph = place(spec, ctx)
        reading = nx.DiGraph((u, v) for u, v, kind in graph._graph.edges(keys=True)
                             if kind == "reads" or kind.startswith("route:"))
        for link in graph.links():
            channel = ("channel", link.producer[0], link.channel)
            consumer = ("actor", link.consumer[1])
            assert nx.has_path(reading, channel, consumer), (example.name, link)
        for node, actor in {(n.name, p.actor) for n in spec.nodes for p in n.placements}:
            expected = next((p[2] for p in graph._graph.predecessors(("actor", actor))
                             if p[0] == "numa" and p[1] == node), None)
            assert graph.numa_of(node, actor) == expected
