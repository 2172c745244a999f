"""``flowc check --format sarif``: a golden log, Microsoft's SARIF Multitool as the judge, and exit codes.

The Multitool (npm ``@microsoft/sarif-multitool``, installed by ``.ci/run``) exits 0 whatever it finds, so its
findings are read from the log it writes; a deliberately broken log shows that they are read.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from click.testing import CliRunner

from flowc import __version__
from flowc.cli import main
from flowc.diagnostics import Diagnostic, Severity, Span
from flowc.diagnostics.codes import CODES
from flowc.diagnostics.sarif import render_sarif

from conftest import ROOT, compare_or_update, require_tool

INVALID = ROOT / "tests" / "invalid"
GOLDEN = ROOT / "tests" / "snapshots" / "sarif" / "production-fragment.sarif"
CLEAN = ROOT / "examples" / "datapath-demo.yaml"
WARNINGS = ROOT / "tests" / "golden" / "warnings" / "input.yaml"
ERRORS = INVALID / "production-fragment.yaml"


def check(*args: str) -> tuple[int, str]:
    """Run ``flowc check ARGS``; return the exit code and stdout."""
    result = CliRunner().invoke(main, ["check", *args])
    return result.exit_code, result.stdout


def validate(log: Path) -> list[tuple[str, str, str]]:
    """Validate ``log`` with the SARIF Multitool; return each error and warning it reports (rule, level, text).

    The npm wrapper hands its arguments to a shell, so ``log`` must be a path without spaces (pytest's are).
    """
    tool = require_tool("sarif-multitool")
    report = log.with_name(log.stem + ".validation.sarif")
    proc = subprocess.run([tool, "validate", str(log), "--output", str(report), "--log", "ForceOverwrite"],
                          capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    run = json.loads(report.read_text(encoding="utf-8-sig"))["runs"][0]
    assert all(invocation["executionSuccessful"] for invocation in run["invocations"]), proc.stdout
    found = []
    for result in run.get("results", []):
        message = result["message"]
        text = message.get("text") or " ".join(message.get("arguments", []))
        found.append((result["ruleId"], result.get("level", "warning"), text))
    return [f for f in found if f[1] in ("error", "warning")]


def test_every_diagnostic_is_a_result_with_its_rule_level_and_place(update_golden: bool,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(INVALID)
    exit_code, text = check("--format", "sarif", ERRORS.name)
    assert exit_code == 1
    compare_or_update(GOLDEN, text, update_golden)
    log = json.loads(text)
    assert log["$schema"] == "https://json.schemastore.org/sarif-2.1.0.json" and log["version"] == "2.1.0"
    (run,) = log["runs"]
    driver = run["tool"]["driver"]
    assert (driver["name"], driver["version"]) == ("flowc", __version__)
    assert driver["informationUri"].startswith("https://")
    assert [(rule["id"], rule["shortDescription"]["text"]) for rule in driver["rules"]] == [
        (code, CODES[code]) for code in ("FLC304", "FLC308", "FLC321", "FLC324")]
    places = []
    for result in run["results"]:
        assert driver["rules"][result["ruleIndex"]]["id"] == result["ruleId"]
        (location,) = result["locations"]
        physical = location["physicalLocation"]
        assert physical["artifactLocation"] == {"uri": ERRORS.name, "uriBaseId": "%SRCROOT%"}
        places.append((result["ruleId"], result["level"], physical["region"]["startLine"],
                       physical["region"]["startColumn"]))
    # Text groups the four FLC304 errors under the first; SARIF lists every one.
    assert places == [
        ("FLC304", "error", 7, 7), ("FLC304", "error", 8, 7), ("FLC304", "error", 13, 7), ("FLC304", "error", 14, 7),
        ("FLC308", "error", 14, 28), ("FLC321", "error", 18, 13), ("FLC324", "warning", 19, 15)]
    first = run["results"][0]["message"]["text"]
    assert first.startswith("actor 'polygon_collector' is placed on 'data_node' but never declared\nhelp: declare")


def test_the_region_ends_after_the_last_column() -> None:
    log = json.loads(render_sarif([Diagnostic("FLC201", Severity.ERROR, "x", Span("t.yaml", 3, 5, 3, 9))]))
    region = log["runs"][0]["results"][0]["locations"][0]["physicalLocation"]["region"]
    assert region == {"startLine": 3, "startColumn": 5, "endColumn": 10}


def test_no_diagnostics_make_a_log_with_no_results() -> None:
    exit_code, text = check("--format", "sarif", str(CLEAN))
    assert exit_code == 0 and text.endswith("}\n")
    run = json.loads(text)["runs"][0]
    assert run["results"] == [] and run["tool"]["driver"]["rules"] == []


@pytest.mark.parametrize(("source", "strict", "expected"), [
    (CLEAN, False, 0), (CLEAN, True, 0), (WARNINGS, False, 0), (WARNINGS, True, 1), (ERRORS, False, 1),
    (ERRORS, True, 1)], ids=["clean", "clean-strict", "warnings", "warnings-strict", "errors", "errors-strict"])
def test_exit_codes_are_those_of_the_other_formats(source: Path, strict: bool, expected: int) -> None:
    options = ["--strict"] if strict else []
    codes = {fmt: check("--format", fmt, *options, str(source))[0] for fmt in ("text", "json", "github", "sarif")}
    assert codes == dict.fromkeys(codes, expected)
    listed = json.loads(check("--format", "json", *options, str(source))[1])
    results = json.loads(check("--format", "sarif", *options, str(source))[1])["runs"][0]["results"]
    assert [r["ruleId"] for r in results] == [d["code"] for d in listed]


def test_the_multitool_accepts_what_flowc_writes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    logs = {"errors": GOLDEN.read_text(), "clean": check("--format", "sarif", str(CLEAN))[1]}
    monkeypatch.chdir(WARNINGS.parent)
    logs["warnings"] = check("--format", "sarif", WARNINGS.name)[1]
    # Names a URI must escape, an absolute path, a span over two lines, notes.
    logs["odd"] = render_sarif([
        Diagnostic("FLC302", Severity.WARNING, "w", Span("topologies/my app #2.yaml", 1, 1), notes=("n",)),
        Diagnostic("FLC301", Severity.ERROR, "e", Span("/srv/flowc/t.yaml", 2, 7, 4, 1), help="h"),
        Diagnostic("FLC301", Severity.ERROR, "e", Span("../ü.yaml", 1, 3, 1, 5))])
    for name, text in logs.items():
        path = tmp_path / f"{name}.sarif"
        path.write_text(text, encoding="utf-8")
        assert validate(path) == [], name


def test_the_multitool_rejects_a_broken_log(tmp_path: Path) -> None:
    log = json.loads(GOLDEN.read_text())
    result = log["runs"][0]["results"][0]
    result["locations"][0]["physicalLocation"]["region"]["startLine"] = 0
    result["severity"] = "error"
    path = tmp_path / "broken.sarif"
    path.write_text(json.dumps(log), encoding="utf-8")
    errors = [f for f in validate(path) if f[1] == "error"]
    assert any("startLine" in text for _, _, text in errors), errors
    assert any("severity" in text for _, _, text in errors), errors
