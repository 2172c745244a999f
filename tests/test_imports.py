"""``flowc check`` and ``flowc --help`` must not pay for libraries they do not use."""

from __future__ import annotations

import json
import subprocess
import sys

from conftest import ROOT

PROBE = """
import json, sys
from click.testing import CliRunner
from flowc.cli import main
result = CliRunner().invoke(main, sys.argv[1:])
print(json.dumps({"exit": result.exit_code, "output": result.output, "modules": sorted(sys.modules)}))
"""

HEAVY = ("networkx", "jinja2", "kubernetes", "rich", "httpx", "zmq")


def probe(*args: str) -> dict:
    """Run ``flowc ARGS`` in a fresh interpreter; return its exit code, output and every module it loaded."""
    proc = subprocess.run([sys.executable, "-c", PROBE, *args], capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["exit"] == 0, f"flowc {' '.join(args)} exited with {result['exit']}:\n{result['output']}"
    return result


def test_check_does_not_import_heavy_libraries() -> None:
    result = probe("check", str(ROOT / "examples" / "multi-node.yaml"))
    loaded = {m.split(".")[0] for m in result["modules"]}
    assert {"jsonschema_rs", "yaml", "flowc"} <= loaded, "the probe must exercise the real check path"
    assert not loaded.intersection(HEAVY), loaded.intersection(HEAVY)
    assert "flowc.model.plan" not in result["modules"] and "flowc.emit.kubernetes.emitter" not in result["modules"]
    # a valid document needs only the compiled screen; jsonschema explains what an invalid one breaks
    assert "jsonschema" not in loaded
    assert not {"flowc.cli.tasks", "flowc.cli.run", "flowc.cli.top"} & set(result["modules"]), "other commands"
    # an ordinary document is read by libyaml alone; ruamel.yaml is the reference parser for unusual ones
    assert "flowc.passes.parse_fast" in result["modules"]
    assert "ruamel" not in loaded and "flowc.passes.parse_ruamel" not in result["modules"]


def test_check_of_an_unusual_document_uses_the_reference_parser() -> None:
    duplicate_key = ROOT / "tests" / "invalid" / "duplicate-key.yaml"
    proc = subprocess.run([sys.executable, "-c", PROBE, "check", str(duplicate_key)],
                          capture_output=True, text=True, check=False)
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["exit"] == 1 and "FLC104" in result["output"]
    assert "flowc.passes.parse_ruamel" in result["modules"] and "ruamel" in {m.split(".")[0] for m in result["modules"]}


def test_check_of_an_invalid_document_explains_with_jsonschema() -> None:
    proc = subprocess.run([sys.executable, "-c", PROBE, "check", str(ROOT / "tests" / "invalid" / "unknown-enum.yaml")],
                          capture_output=True, text=True, check=False)
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["exit"] == 1 and "FLC203" in result["output"]
    assert "jsonschema" in {m.split(".")[0] for m in result["modules"]}


def test_help_imports_only_click() -> None:
    result = probe("--help")
    assert "Usage:" in result["output"]
    loaded = {m.split(".")[0] for m in result["modules"]}
    assert not loaded.intersection({*HEAVY, "jsonschema", "jsonschema_rs", "pydantic", "ruamel", "yaml"})


def test_build_uses_networkx() -> None:
    result = probe("graph", str(ROOT / "examples" / "multi-node.yaml"))
    assert "digraph" in result["output"], "the probe must have drawn the graph"
    assert "networkx" in {m.split(".")[0] for m in result["modules"]}
