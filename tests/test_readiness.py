"""The launcher starts a stage once the one before is ready: no producer fills a ring its route cannot drain."""

from __future__ import annotations

import json
import os
import secrets
import socket
import subprocess
import sys
import time
from pathlib import Path

from flowc.runtime.readiness import ready_file, signal_ready

TESTS = Path(__file__).resolve().parent

TWO_NODES = """
actors:
  feed: {type: producer, outputs: [ticks], run: "flowc.actors:synthetic_producer",
         params: {rate: 2000, size: 64, count: 2000}}
  sink: {type: consumer, inputs: [ticks], run: "flowc.actors:latency_sink"}
nodes:
  edge:
    hostname: localhost
    actors: {feed: {cpu: [0]}}
    local_channels: {ticks: {buffer_size: 1MiB}}
  core:
    hostname: localhost
    actors: {sink: {cpu: [1]}}
    local_channels: {ticks: {buffer_size: 1MiB}}
inter_node:
  feed_route: {source: edge.ticks, targets: [core]}
"""


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def flowc(*args: str, **options) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "flowc", *args], capture_output=True, text=True, check=False,
                          **options)


def test_producers_wait_for_their_route_to_connect(tmp_path: Path) -> None:
    source = tmp_path / f"ready-{secrets.token_hex(4)}.yaml"
    source.write_text(TWO_NODES)
    assert flowc("build", str(source), "-o", str(tmp_path / "out")).returncode == 0
    plan = tmp_path / "out" / "flowc" / "plan.json"
    data = json.loads(plan.read_text())
    data["routes"]["feed_route"]["port"] = free_port()
    plan.write_text(json.dumps(data))
    assert flowc("keys", "generate", str(plan), "-o", str(tmp_path / "keys")).returncode == 0
    env = {**os.environ, "PYTHONPATH": f"{TESTS}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    common = ["--keys", str(tmp_path / "keys"), "--oversubscribe"]
    edge = subprocess.Popen([sys.executable, "-m", "flowc", "launch", str(plan), "--node", "edge", "--report",
                             str(tmp_path / "edge.json"), *common], env=env, stderr=subprocess.PIPE, text=True)
    time.sleep(2.0)  # the receiving node is not up yet: the sending node must hold its producer back
    core = subprocess.Popen([sys.executable, "-m", "flowc", "launch", str(plan), "--node", "core", "--report",
                             str(tmp_path / "core.json"), "--duration", "6", *common], env=env,
                            stderr=subprocess.PIPE, text=True)
    try:
        assert edge.wait(timeout=60) == 0, edge.stderr.read()
        assert core.wait(timeout=60) == 0, core.stderr.read()
    finally:
        for proc in (edge, core):
            if proc.poll() is None:
                proc.kill()
    report = json.loads((tmp_path / "core.json").read_text())
    sink = report["sinks"]["sink"]
    assert sink["count"] == 2000 and sink["out_of_order"] == 0
    # Had the producer started with its node, its first messages would have waited two seconds in the ring.
    assert report["latency_us"]["p999"] < 1_000_000, report["latency_us"]
    by_sink = report["latency_by_sink_us"]["sink"]
    assert by_sink["path"] == "route feed_route" and by_sink["count"] == 2000, "route latency is labelled as such"


def test_a_ready_file_is_written_only_inside_a_launcher(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.delenv("FLOWC_REPORT_DIR", raising=False)
    monkeypatch.delenv("FLOWC_CHILD", raising=False)
    signal_ready()  # nobody to tell: nothing happens
    assert list(tmp_path.iterdir()) == []
    monkeypatch.setenv("FLOWC_REPORT_DIR", str(tmp_path))
    monkeypatch.setenv("FLOWC_CHILD", "route:feed:out:0")
    signal_ready()
    assert Path(ready_file(str(tmp_path), "route:feed:out:0")).exists()
