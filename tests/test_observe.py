"""NodeReader follows a node's rings as they come, go and come back (a restarted node, a replaced ring)."""

from __future__ import annotations

import secrets

from flowc.model.node_view import NodeView
from flowc.pipeline import compile_source
from flowc.runtime.observe import NodeReader
from flowc.runtime.ring import Ring

DOC = """
actors:
  feed: {type: producer, outputs: [ticks], run: "flowc.actors:synthetic_producer"}
  sink: {type: consumer, inputs: [ticks], run: "flowc.actors:latency_sink"}
nodes:
  solo:
    hostname: localhost
    actors: {feed: {cpu: [0]}, sink: {cpu: [1]}}
"""


def test_a_reader_sees_a_ring_that_was_removed_and_created_again() -> None:
    plan = compile_source(DOC, f"observe-{secrets.token_hex(4)}.yaml").plan
    layout = NodeView.of(plan.slices({"solo": "localhost"})["solo"], "solo")
    name = layout.rings["ticks"].name
    reader = NodeReader(layout)
    try:
        assert reader.read().missing_channels == ["ticks"]
        first = Ring.create(name, 4096, 1, 1)
        first.producer(0).send(b"one")
        assert reader.read().channels["ticks"].sent == 1
        first.close()
        Ring.unlink(name)
        assert reader.read().missing_channels == ["ticks"]
        second = Ring.create(name, 8192, 1, 1)
        for _ in range(3):
            second.producer(0).send(b"again")
        state = reader.read().channels["ticks"]
        assert (state.sent, state.capacity_bytes) == (3, 8192)
        second.close()
    finally:
        reader.close()
        Ring.unlink(name)
