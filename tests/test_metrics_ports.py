"""Each node's metrics endpoint in the plan: defaults that never clash on one host, and the checks around it."""

from __future__ import annotations

from flowc.pipeline import compile_source

DOC = """
actors:
  feed: {type: producer, outputs: [ticks], run: "flowc.actors:synthetic_producer"}
  sink: {type: consumer, inputs: [ticks], run: "flowc.actors:latency_sink"}
  other: {type: consumer, inputs: [ticks], run: "flowc.actors:latency_sink"}
nodes:
  a:
    hostname: box
    actors: {feed: {cpu: [0]}}
A_EXTRA
  b:
    hostname: box
    actors: {sink: {cpu: [1]}}
B_EXTRA
  c:
    hostname: elsewhere
    actors: {other: {cpu: [1]}}
inter_node:
  r: {source: a.ticks, targets: [b, c]}
"""


def build(a: str = "", b: str = "") -> object:
    """Compile the document with extra lines for nodes ``a`` and ``b``."""
    return compile_source(DOC.replace("A_EXTRA\n", a).replace("B_EXTRA\n", b), "ports.yaml")


def test_nodes_on_one_host_get_distinct_default_ports() -> None:
    plan = build().plan
    assert {n: (m.metrics.address, m.metrics.port) for n, m in plan.nodes.items()} == {
        "a": ("0.0.0.0", 9464), "b": ("0.0.0.0", 9465), "c": ("0.0.0.0", 9464)}


def test_defaults_step_over_given_ports_and_route_ports() -> None:
    plan = build(a="    metrics: {port: 9465}\n").plan
    assert plan.nodes["a"].metrics.port == 9465 and plan.nodes["b"].metrics.port == 9464
    route_port = plan.routes["r"].port
    clash = build(b=f"    metrics: {{port: {route_port}}}\n")
    assert [(d.code, d.message) for d in clash.diagnostics] == [
        ("FLC344", f"metrics port {route_port} of node 'b' is already taken on host 'box' by route 'r'")]


def test_a_port_given_twice_on_one_host_is_an_error() -> None:
    result = build(a="    metrics: {port: 9500}\n", b="    metrics: {port: 9500}\n")
    assert [d.code for d in result.diagnostics] == ["FLC344"]
    assert "already taken on host 'box' by the metrics of node 'a'" in result.diagnostics[0].message


def test_addresses_are_checked_and_loopback_warns_for_kubernetes() -> None:
    bad = build(a="    metrics: {address: '1.2.3.4.5'}\n")
    assert [d.code for d in bad.diagnostics] == ["FLC208"]
    loopback = compile_source(DOC.replace("A_EXTRA\n", "    metrics: {address: '::1'}\n").replace("B_EXTRA\n", ""),
                              "ports.yaml", until="artifacts")
    assert [d.code for d in loopback.diagnostics if d.code != "FLC504"] == ["FLC507"]
    assert loopback.plan.nodes["a"].metrics.address == "::1"
