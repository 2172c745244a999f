"""The exported JSON Schema is valid for other validators, not only for flowc's own."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from conftest import ROOT, require_tool


def _check_jsonschema() -> list[str]:
    beside = Path(sys.executable).parent / "check-jsonschema"  # this interpreter's, when its bin/ is not on PATH
    return [str(beside) if beside.exists() else require_tool("check-jsonschema")]


def test_schema_is_valid_draft_2020_12_with_ecma_regexes() -> None:
    proc = subprocess.run([*_check_jsonschema(), "--check-metaschema", str(ROOT / "schemas" / "flowc.schema.json")],
                          capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_examples_validate_with_an_independent_validator() -> None:
    examples = sorted(str(p) for p in (ROOT / "examples").glob("*.yaml"))
    proc = subprocess.run([*_check_jsonschema(), "--schemafile", str(ROOT / "schemas" / "flowc.schema.json"),
                           *examples], capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_independent_validator_rejects_what_flowc_rejects() -> None:
    bad = ROOT / "tests" / "invalid" / "unknown-enum.yaml"
    proc = subprocess.run([*_check_jsonschema(), "--schemafile", str(ROOT / "schemas" / "flowc.schema.json"),
                           str(bad)], capture_output=True, text=True, check=False)
    assert proc.returncode == 1
