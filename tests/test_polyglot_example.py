"""``examples/polyglot.yaml`` runs as its comment says: a C producer, the Python relay and a Rust sink on one node."""

from __future__ import annotations

import json
import shlex
import subprocess
import sys
from pathlib import Path

from conftest import ROOT, require_tool


def test_c_python_and_rust_actors_share_a_node(tmp_path: Path) -> None:
    cc = require_tool("cc", "gcc")
    cargo = require_tool("cargo")
    flowc = [sys.executable, "-m", "flowc"]

    def ring_include(flag: str) -> list[str]:
        answer = subprocess.run([*flowc, "ring-include", flag], capture_output=True, text=True, check=True)
        return shlex.split(answer.stdout)

    producer = tmp_path / "quotes"
    subprocess.run([cc, *ring_include("--cflags"), "-O2", "-Wall", "-Wextra", "-Werror",
                    str(ROOT / "examples" / "polyglot" / "quotes.c"), *ring_include("--libs"), "-o", str(producer)],
                   check=True, capture_output=True)
    subprocess.run([cargo, "build", "--release", "--offline", "--examples", "--manifest-path",
                    str(ROOT / "rust" / "flowc-ring" / "Cargo.toml")], check=True, capture_output=True, timeout=600)
    # The document names the programs relative to the repository; this copy points at the test's build.
    document = (ROOT / "examples" / "polyglot.yaml").read_text().replace("command: examples/polyglot/quotes",
                                                                          f"command: {producer}")
    source = tmp_path / "polyglot.yaml"
    source.write_text(document)
    assert subprocess.run([*flowc, "build", str(source), "-o", str(tmp_path / "out")], capture_output=True,
                          check=False).returncode == 0
    report = tmp_path / "report.json"
    launch = subprocess.run([*flowc, "launch", str(tmp_path / "out" / "flowc" / "plan.json"), "--node", "box",
                             "--duration", "20", "--report", str(report), "--oversubscribe"], cwd=ROOT,
                            capture_output=True, text=True, timeout=120, check=False)
    assert launch.returncode == 0, launch.stderr
    data = json.loads(report.read_text())
    assert {name: a["exit_code"] for name, a in data["actors"].items()} == {"count_sink": 0, "quotes": 0, "relay": 0}
    assert data["channels"]["ticks"]["sent"] == data["channels"]["signals"]["received"] == 20000
    assert "quotes: sent 20000 messages" in launch.stderr
    assert "count_sink: received 20000 messages, in order" in launch.stderr
