"""An actor whose channels are missing or broken fails as the node's problem (exit 1), never as a flowc bug."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

DOCUMENT = """
actors:
  src: {type: producer, outputs: [x], run: "flowc.actors:synthetic_producer"}
  sink: {type: consumer, inputs: [x], run: "flowc.actors:latency_sink"}
nodes:
  n: {hostname: localhost, actors: {src: {cpu: [0]}, sink: {cpu: [1]}}}
"""


def test_an_actor_without_its_channels_exits_1_with_the_reason(tmp_path: Path) -> None:
    source = tmp_path / "actor-errors-probe.yaml"
    source.write_text(DOCUMENT)
    subprocess.run([sys.executable, "-m", "flowc", "build", str(source), "-o", str(tmp_path / "out")], check=True,
                   capture_output=True)
    proc = subprocess.run([sys.executable, "-m", "flowc", "run-actor", str(tmp_path / "out/flowc/plan.json"),
                           "--node", "n", "--actor", "sink"], capture_output=True, text=True, check=False)
    assert proc.returncode == 1, proc.stderr
    assert "actor 'sink': a channel is unusable: no ring segment named" in proc.stderr
    assert "internal error" not in proc.stderr and "Traceback" not in proc.stderr
