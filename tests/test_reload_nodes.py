"""Reloading two nodes: an actor moves from one node to the other, and no message is lost or repeated.

Node ``a`` runs the producer and, at first, the consumer; the new document moves the consumer to node ``b``
behind a route. Both launchers reload (``b`` first: its receiver listens before ``a``'s sender starts; the other
order only delays delivery, since ``a``'s ring holds what the sender has not taken). The consumer's end of the ring
on ``a`` passes to the route sender at the same index, so the sender goes on from the first message the consumer
did not read.
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
import time
from pathlib import Path

import pytest

from node_runs import build_plan, free_port
from test_reload import check_streams

TESTS = Path(__file__).resolve().parent

BEFORE = """
actors:
  feed: {type: producer, outputs: [ticks], run: "runtime_actors:seq_producer",
         params: {rate: 2000, count: 8000, sent: "SENT", linger: true}}
  sink: {type: consumer, inputs: [ticks], run: "runtime_actors:seq_recorder", params: {out: "GOT"}}
nodes:
  a:
    hostname: localhost
    actors: {feed: {cpu: [0]}, sink: {cpu: [1]}}
    local_channels: {ticks: {buffer_size: 1MiB}}
  b:
    hostname: localhost
    actors: {}
"""

AFTER = """
actors:
  feed: {type: producer, outputs: [ticks], run: "runtime_actors:seq_producer",
         params: {rate: 2000, count: 8000, sent: "SENT", linger: true}}
  sink: {type: consumer, inputs: [ticks], run: "runtime_actors:seq_recorder", params: {out: "GOT"}}
nodes:
  a:
    hostname: localhost
    actors: {feed: {cpu: [0]}}
    local_channels: {ticks: {buffer_size: 1MiB}}
  b:
    hostname: localhost
    actors: {sink: {cpu: [1]}}
    local_channels: {ticks: {buffer_size: 1MiB}}
inter_node:
  feed_route: {source: a.ticks, targets: [b], auth: none}
"""


class Files:
    """What the actors write, readable by :func:`test_reload.check_streams`."""

    def __init__(self, tmp: Path) -> None:
        """Name the files."""
        self.sent = tmp / "sent.txt"
        self.files = {"got": tmp / "got.bin"}

    def received(self, which: str = "got") -> list[tuple[int, int, int]]:
        """Records of the sink (both of its places)."""
        from runtime_actors import RECORD

        data = self.files[which].read_bytes() if self.files[which].exists() else b""
        return [RECORD.unpack_from(data, i) for i in range(0, len(data) - len(data) % RECORD.size, RECORD.size)]


def build(tmp: Path, version: str, text: str, name: str, port: int, files: Files) -> Path:
    """Build one version of the document (same file name) with the route on ``port``."""
    text = text.replace("SENT", str(files.sent)).replace("GOT", str(files.files["got"]))
    plan = build_plan(tmp / version, name, text)
    data = json.loads(plan.read_text())
    for route in data["routes"].values():
        route["port"] = port
    plan.write_text(json.dumps(data))
    return plan


@pytest.mark.parametrize("order", [("b", "a"), ("a", "b")])
def test_moving_a_consumer_to_another_node_loses_nothing(tmp_path: Path, order: tuple[str, str]) -> None:
    files, name, port = Files(tmp_path), f"move-{secrets.token_hex(4)}.yaml", free_port()
    before = build(tmp_path, "v1", BEFORE, name, port, files)
    after = build(tmp_path, "v2", AFTER, name, port, files)
    env = {**os.environ, "PYTHONPATH": f"{TESTS}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    launchers = {node: subprocess.Popen([sys.executable, "-m", "flowc", "launch", str(before), "--node", node,
                                         "--oversubscribe", "--report", str(tmp_path / f"{node}.json")],
                                        env=env, stderr=subprocess.PIPE, text=True) for node in ("a", "b")}
    try:
        end = time.monotonic() + 30
        while len(files.received()) < 1000:
            assert time.monotonic() < end and all(p.poll() is None for p in launchers.values())
            time.sleep(0.05)
        answers = {}
        for node in order:
            done = subprocess.run([sys.executable, "-m", "flowc", "reload", str(after), "--node", node, "--format",
                                   "json"], capture_output=True, text=True, check=False, env=env)
            answers[node] = json.loads(done.stdout)
            assert answers[node]["applied"], answers[node]["why"]
        assert answers["a"]["changes"] == ["- remove actor sink", "+ add route feed_route out to b"]
        assert set(answers["a"]["untouched"]) == {"feed"}
        assert answers["b"]["changes"] == ["+ add channel ticks", "+ add actor sink",
                                           "+ add route feed_route in from a"]
        # the producer sends 8000 at 2000/s and then lingers: then a stops (its sender drains what it took), then b
        end = time.monotonic() + 60
        while not files.sent.exists():
            assert time.monotonic() < end, f"the producer did not finish; {len(files.received())} arrived"
            time.sleep(0.1)
    finally:
        for node in ("a", "b"):
            if launchers[node].poll() is None:
                launchers[node].send_signal(2)
            launchers[node].communicate(timeout=60)
    check_streams(files)
