"""``flowc diff`` and the change list a reload applies (flowc.model.plan_diff), on compiled documents."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from flowc.model.plan_diff import diff_plans
from flowc.pipeline import compile_source

BASE = """
actors:
  feed: {type: producer, outputs: [ticks], run: "flowc.actors:synthetic_producer", params: {rate: 100}}
  relay: {type: transformer, inputs: [ticks], outputs: [signals], run: "flowc.actors:relay"}
  sink: {type: consumer, inputs: [signals], run: "flowc.actors:latency_sink"}
  remote: {type: consumer, inputs: [ticks], run: "flowc.actors:latency_sink"}
nodes:
  a:
    hostname: host-a
    actors: {feed: {cpu: [0]}, relay: {cpu: [1]}, sink: {cpu: [2]}}
    local_channels: {ticks: {buffer_size: 1MiB}, signals: {buffer_size: 1MiB}}
  b:
    hostname: host-b
    actors: {remote: {cpu: [0]}}
inter_node:
  feed_route: {source: a.ticks, targets: [b]}
"""


def slices(text: str, name: str = "topology.yaml") -> dict:
    """Each node's slice of the compiled ``text``."""
    result = compile_source(text, name)
    assert result.ok, [d.message for d in result.diagnostics]
    plan = result.plan
    return plan.slices({n: info.hostname for n, info in plan.nodes.items()})


def changes(old: str, new: str) -> dict[str, list[str]]:
    """Node → its change lines; ``unchanged`` nodes map to an empty list."""
    return {d.node: [c.line() for c in d.changes] for d in diff_plans(slices(old), slices(new))}


def test_the_same_plan_changes_nothing_even_under_another_file_name() -> None:
    result = diff_plans(slices(BASE, "v1.yaml"), slices(BASE, "v2.yaml"))
    assert [(d.node, d.status, d.changes) for d in result] == [("a", "unchanged", ()), ("b", "unchanged", ())]
    assert result[0].unchanged_actors == ("feed", "relay", "sink")


def test_changed_params_restart_only_that_actor() -> None:
    new = BASE.replace("params: {rate: 100}", "params: {rate: 200}")
    assert changes(BASE, new) == {"a": ["~ restart actor feed: params changed"], "b": []}
    (a, _b) = diff_plans(slices(BASE), slices(new))
    assert a.unchanged_actors == ("relay", "sink")


def test_moved_cpus_restart_the_actor() -> None:
    new = BASE.replace("sink: {cpu: [2]}", "sink: {cpu: [3]}")
    assert changes(BASE, new)["a"] == ["~ restart actor sink: cpus changed"]


def test_a_resized_channel_is_replaced_and_its_ends_restart() -> None:
    new = BASE.replace("signals: {buffer_size: 1MiB}", "signals: {buffer_size: 4MiB}")
    assert changes(BASE, new)["a"] == [
        "~ replace channel signals: buffer_size 1048576 -> 4194304",
        "~ restart actor relay: channel 'signals' is replaced",
        "~ restart actor sink: channel 'signals' is replaced",
    ]


def test_a_policy_change_replaces_the_ring() -> None:
    new = BASE.replace("signals: {buffer_size: 1MiB}", "signals: {buffer_size: 1MiB, policy: drop_oldest}")
    assert changes(BASE, new)["a"][0] == "~ replace channel signals: policy backpressure -> drop_oldest"


def test_an_added_reader_adds_the_actor_and_widens_the_ring() -> None:
    new = BASE.replace("  remote:", "  audit: {type: consumer, inputs: [signals], run: \"flowc.actors:latency_sink\"}\n"
                                    "  remote:").replace("sink: {cpu: [2]}}", "sink: {cpu: [2]}, audit: {cpu: [3]}}")
    lines = changes(BASE, new)["a"]
    assert "~ replace channel signals: consumers 1 -> 2" in lines
    assert "+ add actor audit" in lines


def test_a_removed_actor_and_its_channel() -> None:
    relay_and_sink = ("  relay: {type: transformer, inputs: [ticks], outputs: [signals], run: \"flowc.actors:relay\"}\n"
                      "  sink: {type: consumer, inputs: [signals], run: \"flowc.actors:latency_sink\"}\n")
    new = (BASE.replace(relay_and_sink, "")
           .replace(", relay: {cpu: [1]}, sink: {cpu: [2]}", "")
           .replace(", signals: {buffer_size: 1MiB}", ""))
    lines = changes(BASE, new)["a"]
    assert lines[:1] == ["- remove channel signals"]
    assert {"- remove actor relay", "- remove actor sink"} <= set(lines)
    assert "~ replace channel ticks: consumers 2 -> 1" in lines


def test_a_route_with_another_codec_restarts_both_legs() -> None:
    new = BASE.replace("targets: [b]}", "targets: [b], compression: lz4}")
    result = changes(BASE, new)
    assert result["a"] == ["~ restart route feed_route out to b: compression none -> lz4"]
    assert result["b"] == ["~ restart route feed_route in from a: compression none -> lz4"]


def test_nodes_that_come_and_go() -> None:
    old_slices, new_slices = slices(BASE), slices(BASE)
    del new_slices["b"]
    result = {d.node: (d.status, [c.line() for c in d.changes]) for d in diff_plans(old_slices, new_slices)}
    assert result["b"] == ("removed", ["- remove actor remote"])
    result = {d.node: d.status for d in diff_plans(new_slices, old_slices)}
    assert result["b"] == "added"


def flowc(*args: str) -> subprocess.CompletedProcess:
    """Run the CLI."""
    return subprocess.run([sys.executable, "-m", "flowc", *args], capture_output=True, text=True, check=False)


def test_cli_on_documents_and_plans(tmp_path: Path) -> None:
    old, new = tmp_path / "old.yaml", tmp_path / "new.yaml"
    old.write_text(BASE)
    new.write_text(BASE.replace("params: {rate: 100}", "params: {rate: 5}"))
    text = flowc("diff", str(old), str(new))
    assert text.returncode == 0, text.stderr
    assert text.stdout.splitlines() == ["node a: changed", "  ~ restart actor feed: params changed",
                                        "  = 2 actor(s) untouched: relay, sink", "node b: unchanged"]
    assert flowc("build", str(old), "-o", str(tmp_path / "out"), "-t", "plan").returncode == 0
    plan = tmp_path / "out" / "flowc" / "plan.json"
    as_json = flowc("diff", str(plan), str(new), "--format", "json", "--node", "a")
    assert json.loads(as_json.stdout) == {"nodes": [{
        "node": "a", "status": "changed", "unchanged_actors": ["relay", "sink"],
        "changes": [{"action": "restart", "kind": "actor", "name": "feed", "why": "params changed"}]}]}
    assert flowc("diff", str(plan), str(old), "--exit-code").returncode == 0
    assert flowc("diff", str(plan), str(new), "--exit-code").returncode == 1


@pytest.mark.parametrize(("content", "message"), [
    ("{\"nodes\": 3}", "is not a flowc plan"),
    ("not json", "is not a flowc plan"),
])
def test_cli_refuses_what_is_not_a_plan(tmp_path: Path, content: str, message: str) -> None:
    bad, good = tmp_path / "bad.json", tmp_path / "good.yaml"
    bad.write_text(content)
    good.write_text(BASE)
    done = flowc("diff", str(bad), str(good))
    assert done.returncode == 1 and message in done.stderr and "Traceback" not in done.stderr


def test_cli_reports_a_broken_document(tmp_path: Path) -> None:
    bad, good = tmp_path / "bad.yaml", tmp_path / "good.yaml"
    bad.write_text(BASE.replace("type: transformer", "type: transformr"))
    good.write_text(BASE)
    done = flowc("diff", str(good), str(bad))
    assert done.returncode == 1
    assert "bad.yaml:" in done.stderr and "has errors" in done.stderr
