"""``bridge_cpus``: where a node's route bridges run, in the plan, the launcher, systemd and Kubernetes."""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
import time
from pathlib import Path

import yaml

from flowc.model.options import BuildOptions
from flowc.pipeline import compile_source

TWO_NODES = """
actors:
  feed: {{type: producer, outputs: [ticks], run: "flowc.actors:synthetic_producer", params: {{rate: 100}}}}
  sink: {{type: consumer, inputs: [ticks], run: "flowc.actors:latency_sink"}}
nodes:
  edge:
    hostname: edge-1
    actors: {{feed: {{cpu: [0]}}}}
  core:
    hostname: core-1
    bridge_cpus: {bridge_cpus}
    actors: {{sink: {{cpu: [0]}}}}
inter_node:
  feed_route: {{source: edge.ticks, targets: [core]}}
"""


def build(bridge_cpus: str) -> object:
    result = compile_source(TWO_NODES.format(bridge_cpus=bridge_cpus), "bridges.yaml", until="artifacts",
                            options=BuildOptions())
    assert result.artifacts is not None, result.diagnostics
    return result


def test_the_plan_units_and_pod_carry_the_bridge_cpus() -> None:
    result = build('"1"')
    files = {a.path: a.content.decode() for a in result.artifacts}
    assert json.loads(files["flowc/plan.json"])["nodes"]["core"]["bridge_cpus"] == [1]
    assert json.loads(files["flowc/plan.json"])["nodes"]["edge"]["bridge_cpus"] == []
    assert "CPUAffinity=1\n" in files["systemd/core/flowc-bridges-route-feed_route-in-0.service"]
    assert "CPUAffinity" not in files["systemd/edge/flowc-bridges-route-feed_route-out-0.service"]
    pod = yaml.safe_load(files["deployment-core.yaml"])["spec"]["template"]["spec"]["containers"][0]
    assert pod["resources"]["limits"]["cpu"] == "2", "the actor's cpu and the bridges' cpu"
    assert not [d for d in result.diagnostics if d.code == "FLC343"]


def test_bridges_on_an_actors_cpu_are_a_warning() -> None:
    result = build("[0]")
    (warning,) = [d for d in result.diagnostics if d.code == "FLC343"]
    assert "pinned to cpu 0, which 'sink' is pinned to" in warning.message and warning.span.line == 11


def test_the_launcher_pins_its_bridges(tmp_path: Path) -> None:
    source = tmp_path / f"bridges-{secrets.token_hex(4)}.yaml"
    source.write_text(TWO_NODES.format(bridge_cpus="[1]").replace("edge-1", "localhost").replace("core-1",
                                                                                                   "localhost"))
    flowc = [sys.executable, "-m", "flowc"]
    assert subprocess.run([*flowc, "build", str(source), "-o", str(tmp_path / "out"), "-t", "plan"],
                          capture_output=True, check=False).returncode == 0
    plan = tmp_path / "out" / "flowc" / "plan.json"
    assert subprocess.run([*flowc, "keys", "generate", str(plan), "-o", str(tmp_path / "keys")],
                          capture_output=True, check=False).returncode == 0
    core = subprocess.Popen([*flowc, "launch", str(plan), "--node", "core", "--duration", "4", "--oversubscribe",
                             "--keys", str(tmp_path / "keys")], stderr=subprocess.PIPE, text=True)
    try:
        allowed = None
        deadline = time.monotonic() + 20
        while allowed is None and time.monotonic() < deadline and core.poll() is None:
            for pid in os.listdir("/proc"):
                if not pid.isdigit():
                    continue
                try:
                    cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
                    status = Path(f"/proc/{pid}/status").read_text()
                except OSError:
                    continue
                if b"run-bridge" in cmdline and str(plan).encode() in cmdline:
                    allowed = next(line.split()[1] for line in status.splitlines()
                                   if line.startswith("Cpus_allowed_list"))
            time.sleep(0.05)
        assert core.wait(timeout=30) == 0, core.stderr.read()
    finally:
        if core.poll() is None:
            core.kill()
    expected = str(sorted(os.sched_getaffinity(0))[1 % len(os.sched_getaffinity(0))])
    assert allowed == expected, "the receiver runs on the bridge cpu (mapped onto the allowed set)"
