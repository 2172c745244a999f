"""The driver's contract: one ordered list of typed stages, each taking what the previous one produced."""

from __future__ import annotations

import json
import typing

import pytest

from flowc.emit.artifact import Artifact
from flowc.lazy import load
from flowc.model import ir
from flowc.model.document import Document
from flowc.model.ir import Spec
from flowc.model.plan import NodeSlice, Plan, UnknownNode
from flowc.passes.place import PlacementGraph
from flowc.pipeline import STAGES, compile_source, stages_until

from conftest import ROOT

KIND_TYPES = {"text": str, "document": Document, "spec": Spec, "graph": PlacementGraph, "plan": Plan,
              "artifacts": list[Artifact]}


def test_each_stage_consumes_what_the_previous_one_produced() -> None:
    assert STAGES[0].consumes == "text" and STAGES[-1].produces == "artifacts"
    for before, after in zip(STAGES, STAGES[1:], strict=False):
        assert after.consumes == before.produces, (before.name, after.name)


@pytest.mark.parametrize("stage", STAGES, ids=lambda s: s.name)
def test_stage_functions_are_annotated_with_their_kinds(stage) -> None:
    function = load(stage.run)
    # the registry imports its annotations' types only for type checkers (``flowc check`` must not load them)
    hints = typing.get_type_hints(function, localns={"ir": ir, "Plan": Plan, "Artifact": Artifact})
    first = next(iter(function.__code__.co_varnames[:1]))
    assert hints[first] == KIND_TYPES[stage.consumes], stage.name
    assert hints["return"] == KIND_TYPES[stage.produces], stage.name
    assert function.__name__ == stage.name


def test_check_stops_at_the_checked_spec_and_build_reaches_artifacts() -> None:
    text = (ROOT / "examples" / "multi-node.yaml").read_text()
    checked = compile_source(text, "m.yaml", environ={}, until="spec")
    assert isinstance(checked.values["spec"], Spec) and checked.plan is None and checked.artifacts is None
    assert [s.name for s in stages_until("spec")][-1] == "check_targets"
    built = compile_source(text, "m.yaml", environ={}, until="artifacts")
    assert isinstance(built.plan, Plan) and {a.path for a in built.artifacts} >= {"flowc/plan.json"}


def test_semantic_checks_report_together() -> None:
    """check_actors and check_routes are ungated: an actor error and a route error come out of one run."""
    text = ("actors:\n  p: {type: producer, outputs: [x]}\n  q: {type: consumer, inputs: [y]}\n"
            "nodes:\n  a: {hostname: a, actors: {p: {cpu: [0]}, q: {cpu: [1]}}}\n"
            "inter_node:\n  r: {source: ghost.x, targets: [a]}\n")
    codes = {d.code for d in compile_source(text, "t.yaml", environ={}, until="spec").diagnostics}
    assert "FLC320" in codes and codes & {"FLC301", "FLC302", "FLC303"}, codes


def test_plan_objects_carry_spans_that_are_never_serialized() -> None:
    text = (ROOT / "examples" / "multi-node.yaml").read_text()
    plan = compile_source(text, "m.yaml", environ={}).plan
    assert plan.nodes["data_node"].span.line > 1 and plan.nodes["data_node"].span.path == "m.yaml"
    assert "span" not in plan.to_json()


def _multi_node_plan() -> Plan:
    return compile_source((ROOT / "examples" / "multi-node.yaml").read_text(), "multi-node.yaml", environ={}).plan


def test_a_launcher_reads_only_its_node_slice() -> None:
    plan = _multi_node_plan()
    whole = NodeSlice.load(plan.to_json(), "data_node")
    assert set(whole.nodes) == {"data_node"}
    assert whole.peers == {"strategy_node": "strategy-01.prod"}, "from a whole plan, peers are their hostnames"
    sliced = plan.slices({"strategy_node": "strategy-node-routes"})["data_node"]
    data = json.loads(sliced.to_json())
    assert set(data) == {"format", "source", "nodes", "routes", "links", "peers"}, "no tasks, no target settings"
    assert NodeSlice.load(sliced.to_json(), "data_node").to_json() == sliced.to_json()
    with pytest.raises(UnknownNode, match="it has: data_node, strategy_node"):
        NodeSlice.load(plan.to_json(), "nowhere")
    with pytest.raises(ValueError, match="flowc.plan/v1"):
        NodeSlice.load('{"format": "something/v9"}', "data_node")


CHAIN = """
actors:
  src: {type: producer, outputs: [a]}
  one: {type: transformer, inputs: [a], outputs: [b]}
  two: {type: transformer, inputs: [b], outputs: [c]}
  sink: {type: consumer, inputs: [c]}
  left: {type: transformer, inputs: [c, back], outputs: [fwd]}
  right: {type: transformer, inputs: [fwd], outputs: [back]}
  far: {type: consumer, inputs: [a]}
nodes:
  box: {hostname: box, actors: {src: {cpu: [0]}, one: {cpu: [1]}, two: {cpu: [2]}, sink: {cpu: [3]},
        left: {cpu: [4]}, right: {cpu: [5]}}}
  other: {hostname: other, actors: {far: {cpu: [0]}}}
inter_node:
  feed: {source: box.a, targets: [other]}
"""


def test_start_stages_follow_the_dataflow() -> None:
    plan = compile_source(CHAIN, "chain.yaml", environ={}).plan
    box = plan.nodes["box"].start_stages
    assert box["sink"] == 0 and box["route:feed:out:other"] == 0, "readers nothing reads from start first"
    assert box["left"] == box["right"] == 0, "a cycle with no reader outside it is one stage, a sink"
    assert box["two"] == 1 and box["one"] == 2 and box["src"] == 3, "each writer starts after its readers"
    other = plan.nodes["other"].start_stages
    assert other == {"far": 0, "route:feed:in": 1}, "a receiver starts after the actors it delivers to"
