"""The CLI contract other tools rely on: exit codes, formats, atomic builds, drift checks."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from flowc.cli import main

from conftest import ROOT, require_tool

EXAMPLES = ROOT / "examples"
INVALID = ROOT / "tests" / "invalid"


def run(*args: str) -> object:
    return CliRunner().invoke(main, list(args))


def test_check_examples_is_clean() -> None:
    result = run("check", *map(str, sorted(EXAMPLES.glob("*.yaml"))))
    assert result.exit_code == 0, result.output
    assert "0 errors" in result.stderr


def test_strict_fails_on_warnings() -> None:
    path = str(EXAMPLES / "single-node.yaml")
    assert run("check", path).exit_code == 0
    result = run("check", "--strict", path)
    assert result.exit_code == 1
    assert "warning[FLC302]" in result.stdout


def test_check_reports_every_file() -> None:
    result = run("check", str(INVALID / "unknown-keys.yaml"), str(INVALID / "out-of-range.yaml"))
    assert result.exit_code == 1
    assert "unknown-keys.yaml:3:1: error[FLC201]" in result.stdout
    assert "out-of-range.yaml:3:16: error[FLC205]" in result.stdout
    assert "in 2 files" in result.stderr


def test_json_format() -> None:
    result = run("check", "--format", "json", str(INVALID / "unknown-enum.yaml"))
    assert result.exit_code == 1
    items = json.loads(result.stdout)
    assert [i["code"] for i in items] == ["FLC203"] * 5
    assert items[1]["span"]["line"] == 6 and items[1]["help"] == "did you mean 'packed'?"


def test_github_format() -> None:
    result = run("check", "--format", "github", str(INVALID / "topology-shorthand-typo.yaml"))
    assert result.exit_code == 1
    assert result.stdout.startswith("::error file=")
    assert ",line=4,col=11," in result.stdout and "title=FLC203::" in result.stdout


def test_usage_errors_exit_2(tmp_path: Path) -> None:
    assert run("check").exit_code == 2
    assert run("check", str(tmp_path / "missing.yaml")).exit_code == 2
    assert run("build", str(EXAMPLES / "single-node.yaml")).exit_code == 2
    assert run("nonsense").exit_code == 2


def test_unreadable_input_is_a_diagnostic(tmp_path: Path) -> None:
    bad = tmp_path / "latin1.yaml"
    bad.write_bytes(b"name: caf\xe9\n")
    result = run("check", str(bad))
    assert result.exit_code == 1
    assert "error[FLC107]" in result.stdout


def test_oversized_input_is_refused(tmp_path: Path) -> None:
    big = tmp_path / "big.yaml"
    big.write_text("# " + "x" * (5 * 1024 * 1024) + "\nname: x\n")
    result = run("check", str(big))
    assert result.exit_code == 1
    assert "error[FLC102]" in result.stdout


def test_internal_error_exits_3_without_traceback(monkeypatch: pytest.MonkeyPatch) -> None:
    import flowc.passes.lower as lower_module

    def boom(*_: object) -> None:
        raise RuntimeError("simulated bug")

    monkeypatch.setattr(lower_module._Lowerer, "spec", boom)
    result = run("check", str(EXAMPLES / "llm-training.yaml"))
    assert result.exit_code == 3
    assert "internal error" in result.stderr and "this is a bug in flowc" in result.stderr
    assert "Traceback" not in result.output


def test_build_writes_plan_and_manifest(tmp_path: Path) -> None:
    out = tmp_path / "out"
    result = run("build", str(EXAMPLES / "multi-node.yaml"), "-o", str(out))
    assert result.exit_code == 0, result.output
    plan = json.loads((out / "flowc" / "plan.json").read_text())
    assert plan["format"] == "flowc.plan/v1"
    tcp = [link for link in plan["links"] if link["transport"] == "tcp"]
    assert {(link["producer"], link["consumer"], link["route"]) for link in tcp} == {
        ("binance_collector", "flash_arbitrage", "market_data_feed"),
        ("binance_collector", "risk_monitor", "market_data_feed"),
        ("polygon_collector", "flash_arbitrage", "market_data_feed"),
        ("polygon_collector", "risk_monitor", "market_data_feed"),
    }
    manifest = json.loads((out / "flowc" / "manifest.json").read_text())
    on_disk = {p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file()}
    assert set(manifest["files"]) == on_disk - {"flowc/manifest.json"}
    assert {p.name for p in out.iterdir() if p.is_dir()} == {"flowc", "systemd"}
    assert all(p.suffix == ".yaml" for p in out.iterdir() if p.is_file()), "the top level is kubernetes objects"


def test_failed_build_leaves_previous_output(tmp_path: Path) -> None:
    out = tmp_path / "out"
    assert run("build", str(EXAMPLES / "single-node.yaml"), "-o", str(out)).exit_code == 0
    before = {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}
    result = run("build", str(INVALID / "missing-route.yaml"), "-o", str(out))
    assert result.exit_code == 1
    assert "nothing written" in result.stderr
    assert {p: p.read_bytes() for p in out.rglob("*") if p.is_file()} == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"], "no staging directory may be left behind"


def test_rebuild_replaces_output(tmp_path: Path) -> None:
    out = tmp_path / "out"
    assert run("build", str(EXAMPLES / "single-node.yaml"), "-o", str(out)).exit_code == 0
    (out / "stale.yaml").write_text("kind: Stale\n")
    assert run("build", str(EXAMPLES / "multi-node.yaml"), "-o", str(out)).exit_code == 0
    assert not (out / "stale.yaml").exists()
    assert "strategy_node" in (out / "flowc" / "plan.json").read_text()


def test_refuses_foreign_directory(tmp_path: Path) -> None:
    out = tmp_path / "mine"
    out.mkdir()
    (out / "precious.txt").write_text("keep me")
    result = run("build", str(EXAMPLES / "single-node.yaml"), "-o", str(out))
    assert result.exit_code == 1
    assert "error[FLC501]" in result.stderr
    assert (out / "precious.txt").read_text() == "keep me"
    assert sorted(p.name for p in out.iterdir()) == ["precious.txt"]


def test_build_check_detects_drift(tmp_path: Path) -> None:
    out = tmp_path / "out"
    source = str(EXAMPLES / "multi-node.yaml")
    assert run("build", "--check", source, "-o", str(out)).exit_code == 1
    assert run("build", source, "-o", str(out)).exit_code == 0
    assert run("build", "--check", source, "-o", str(out)).exit_code == 0
    plan = out / "flowc" / "plan.json"
    plan.write_text(plan.read_text().replace("lz4", "zstd"))
    (out / "extra.yaml").write_text("x: 1\n")
    result = run("build", "--check", source, "-o", str(out))
    assert result.exit_code == 1
    assert "flowc/plan.json: out of date" in result.stdout and "extra.yaml: out of date" in result.stdout


def test_schema_command_prints_the_schema() -> None:
    result = run("schema")
    assert result.exit_code == 0
    schema = json.loads(result.stdout)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert "actors" in schema["properties"] and "topology" in schema["properties"]


def test_graph_dot() -> None:
    result = run("graph", str(EXAMPLES / "multi-node.yaml"))
    assert result.exit_code == 0
    dot = result.stdout
    assert dot.startswith("digraph flowc {")
    assert '"cluster_strategy_node_numa1"' in dot
    assert '"data_node/#market_data" -> "strategy_node/#market_data" [color="#1565c0"' in dot
    assert '"strategy_node/#signals" -> "strategy_node/risk_monitor" [color="#ef6c00"]' in dot


def test_graph_svg(tmp_path: Path) -> None:
    require_tool("dot")
    out = tmp_path / "g.svg"
    result = run("graph", str(EXAMPLES / "multi-node.yaml"), "-o", str(out))
    assert result.exit_code == 0, result.output
    assert "<svg" in out.read_text()


def test_module_entry_point() -> None:
    proc = subprocess.run([sys.executable, "-m", "flowc", "--version"], capture_output=True, text=True, check=False)
    assert proc.returncode == 0 and "flowc" in proc.stdout


def test_every_listed_command_loads_under_its_own_name() -> None:
    import click

    from flowc.cli import COMMANDS

    ctx = click.Context(main)
    for name in COMMANDS:
        command = main.get_command(ctx, name)
        assert isinstance(command, click.Command) and command.name == name
    assert main.get_command(ctx, "no-such-command") is None
    assert main.list_commands(ctx) == sorted(COMMANDS)
