"""Impossible ring counters and corrupt segments fail the node: in the launcher's report and in ``flowc launch``.

A sink once counted 10,141,176 messages of 30,645 sent from a corrupted segment and the launch exited 0 with
``failure: null``; what no correct ring can count is a failure of the node (exit 1).
"""

from __future__ import annotations

import json
import os
import re
import struct
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import pytest
from hypothesis import given
from hypothesis import strategies as st

from flowc.model.node_view import segment_prefix
from flowc.runtime import _ring
from flowc.runtime.report import build_report, impossible_counters
from flowc.runtime.ring import Ring, RingError

LAYOUT = _ring.LAYOUT
PREFIX = f"flowc-countersA-{os.getpid()}-"


@pytest.fixture
def ring_name(request: pytest.FixtureRequest) -> Iterator[str]:
    name = PREFIX + request.node.name.replace("[", "-").replace("]", "")
    Ring.unlink(name)
    yield name
    Ring.unlink(name)


def test_impossible_counters_are_a_node_failure(tmp_path: Path) -> None:
    # the numbers: a sink counted 10,141,176 messages of 30,645 sent, and the launch exited 0
    rings = {"ticks": SimpleNamespace(stats=lambda: {
        "sent": 30645, "sent_per_producer": [30645], "received": 10141176, "received_per_consumer": [10141176],
        "dropped": 0, "dropped_per_consumer": [0], "backpressure_waits": 0,
        "backpressure_waits_per_producer": [0]})}
    launcher = SimpleNamespace(rings=rings, children=[], node="dev", cpu_mapping={}, notes=[])
    report = build_report(launcher, str(tmp_path), None)
    assert report["failure"] == "channel 'ticks': consumer 0 received 10141176 and dropped 0 of 30645 messages sent"
    assert build_report(launcher, str(tmp_path), "'x' failed 6 times")["failure"] == "'x' failed 6 times"


@given(sent=st.lists(st.integers(0, 1 << 40), min_size=1, max_size=4),
       consumers=st.lists(st.tuples(st.integers(0, 1 << 41), st.integers(0, 1 << 41)), min_size=1, max_size=4),
       waits=st.lists(st.integers(0, 1 << 41), max_size=4))
def test_counters_are_flagged_exactly_when_impossible(sent: list[int], consumers: list[tuple[int, int]],
                                                      waits: list[int]) -> None:
    stats = {"sent_per_producer": sent, "received_per_consumer": [r for r, _ in consumers],
             "dropped_per_consumer": [d for _, d in consumers], "backpressure_waits_per_producer": waits}
    possible = all(r + d <= sum(sent) + len(sent) for r, d in consumers) and all(
        w <= s for w, s in zip(waits, sent, strict=False))
    assert (impossible_counters("c", stats) == []) == possible


def test_a_corrupted_header_at_report_time_is_a_node_failure(ring_name: str, tmp_path: Path) -> None:
    ring = Ring.create(ring_name, 4096, 1, 1)
    struct.pack_into("<Q", ring._mm, LAYOUT["capacity"], 0)
    launcher = SimpleNamespace(rings={"ticks": ring}, children=[], node="dev", cpu_mapping={}, notes=[])
    report = build_report(launcher, str(tmp_path), None)
    assert report["failure"] == "channel 'ticks': not a valid flowc ring segment: bad capacity"
    ring.close()


PIPELINE = """
actors:
  feed: {type: producer, outputs: [ticks], run: "flowc.actors:synthetic_producer",
         params: {rate: 2000, size: 64, count: 0}}
  sink: {type: consumer, inputs: [ticks], run: "flowc.actors:latency_sink"}
nodes:
  dev:
    hostname: localhost
    actors: {feed: {cpu: [0]}, sink: {cpu: [1]}}
    local_channels:
      ticks: {type: SPSC, buffer_size: 4KiB}
"""


@pytest.mark.parametrize(("field", "value", "failure"), [
    # the sink count (the launch exited 0 with it)
    ("received", 10_141_176, r"consumer 0 received 101\d{5} and dropped 0 of \d{1,5} messages sent"),
    # a hostile position: the sink's recv and the feed's send raise, the actors restart until one gives up (or
    # the duration ends first and the report finds the ring broken)
    ("published", 1 << 40, r"'(sink|feed)' failed \d+ times|channel 'ticks': the ring is broken"),
    ("", 0, None),  # untouched: the checks must not fail a healthy node
], ids=["impossible-count", "hostile-position", "healthy"])
def test_a_segment_corrupted_during_a_launch_fails_the_node(tmp_path: Path, field: str, value: int,
                                                             failure: str | None) -> None:
    source = tmp_path / f"hostileA-{os.getpid()}-{field}.yaml"
    source.write_text(PIPELINE)
    out = tmp_path / "out"
    built = subprocess.run([sys.executable, "-m", "flowc", "build", str(source), "-o", str(out)],
                           capture_output=True, text=True, check=False)
    assert built.returncode == 0, built.stderr
    prefix, report = segment_prefix(source.name, "dev"), tmp_path / "report.json"
    proc = subprocess.Popen([sys.executable, "-m", "flowc", "launch", str(out / "flowc" / "plan.json"), "--node",
                             "dev", "--duration", "4", "--report", str(report), "--oversubscribe"],
                            env={**os.environ, "FLOWC_RESTART_BACKOFF_S": "0.05"}, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 30
        segment = Path("/dev/shm") / f"{prefix}-ticks"  # the ring of channel 'ticks' (RingLayout's name)
        while True:
            try:
                ring = Ring.attach(segment.name)
                break
            except RingError:  # not there yet, or created but its header not yet written
                assert time.monotonic() < deadline, "the launcher never created its ring"
                time.sleep(0.02)
        time.sleep(0.5)  # let messages flow first
        consumer_line = LAYOUT["header_size"] + ring._info["producers"] * LAYOUT["line_size"]
        if field:
            offset = consumer_line + 8 if field == "received" else LAYOUT[field]  # cons_line: cursor, received
            struct.pack_into("<Q", ring._mm, offset, value)
        ring.close()
        assert proc.wait(timeout=60) == (1 if failure else 0), proc.stderr.read()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    data = json.loads(report.read_text())
    if failure is None:
        assert data["failure"] is None and data["channels"]["ticks"]["sent"] > 0
    else:
        assert data["failure"] and re.search(failure, data["failure"]), data["failure"]
