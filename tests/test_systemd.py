"""The systemd output: units systemd accepts, pinning that matches the plan, escaping that holds."""

from __future__ import annotations

import configparser
import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from click.testing import CliRunner

from flowc.cli import main
from flowc.emit.systemd import env_assignment

from conftest import ROOT, require_tool

SOURCES = sorted((ROOT / "examples").glob("*.yaml")) + sorted((ROOT / "tests" / "golden").glob("*/input.yaml"))
TRUE = shutil.which("true") or "/bin/true"


def build(tmp: Path, source: Path) -> Path:
    out = tmp / "out"
    result = CliRunner().invoke(main, ["build", str(source), "-o", str(out), "--flowc-path", TRUE])
    assert result.exit_code == 0, result.output
    return out / "systemd"


def read_unit(path: Path) -> configparser.RawConfigParser:
    parser = configparser.RawConfigParser(strict=False, delimiters=("=",), comment_prefixes=("#",))
    parser.optionxform = str
    parser.read_string(path.read_text())
    return parser


def verify(units: list[str], cwd: Path | None = None) -> str:
    """Run ``systemd-analyze verify`` on ``units`` and return what it wrote to stderr (nothing when they pass)."""
    analyze = require_tool("systemd-analyze")
    proc = subprocess.run([analyze, "verify", "--man=no", *units], capture_output=True, text=True, check=False,
                          cwd=cwd)
    return proc.stderr


@pytest.mark.parametrize("source", SOURCES, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_systemd_analyze_verify_is_silent(tmp_path: Path, source: Path) -> None:
    require_tool("systemd-analyze")
    systemd = build(tmp_path, source)
    folders = sorted(systemd.iterdir()) if systemd.exists() else []
    assert folders or not re.search(r"^nodes:", source.read_text(), re.M)
    for folder in folders:
        units = sorted(str(p) for p in folder.iterdir() if p.suffix in (".service", ".target"))
        assert verify(units, cwd=folder) == ""


def test_units_pin_what_the_plan_says(tmp_path: Path) -> None:
    systemd = build(tmp_path, ROOT / "examples" / "multi-node.yaml")
    plan = json.loads((tmp_path / "out" / "flowc" / "plan.json").read_text())
    for node, info in plan["nodes"].items():
        for actor, spec in info["actors"].items():
            unit = read_unit(systemd / node / f"flowc-multi-node-{actor}.service")
            service = unit["Service"]
            cpus = {int(c) for part in service["CPUAffinity"].split() for c in _expand(part)}
            assert cpus == set(spec["cpus"])
            assert service["NUMAMask"] == str(spec["numa"])
            assert service["ExecStart"] == (f"{TRUE} run-actor /etc/flowc/multi-node/{node}.plan.json "
                                            f"--node {node} --actor {actor}")
    risk = (systemd / "strategy_node" / "flowc-multi-node-risk_monitor.service").read_text()
    assert "NUMAPolicy=preferred" in risk and "# Channels this actor uses live on numa node(s) 0" in risk
    flash = (systemd / "strategy_node" / "flowc-multi-node-flash_arbitrage.service").read_text()
    assert "NUMAPolicy=preferred" in flash, "it writes 'signals', which lives on numa node 1"
    feed = read_unit(systemd / "data_node" / "flowc-multi-node-polygon_collector.service")
    assert feed["Service"]["NUMAPolicy"] == "bind"


def _expand(part: str) -> list[int]:
    low, _, high = part.partition("-")
    return list(range(int(low), int(high or low) + 1))


def test_stop_order_and_target(tmp_path: Path) -> None:
    systemd = build(tmp_path, ROOT / "examples" / "multi-node.yaml")
    node = systemd / "strategy_node"
    flash = read_unit(node / "flowc-multi-node-flash_arbitrage.service")["Unit"]["After"].split()
    risk = read_unit(node / "flowc-multi-node-risk_monitor.service")["Unit"]["After"].split()
    receiver = read_unit(node / "flowc-multi-node-route-market_data_feed-in-0.service")["Unit"]["After"].split()
    # Units stop in reverse start order: the route receiver (a producer here) after everyone, so it stops first.
    assert "flowc-multi-node-risk_monitor.service" in flash and "flowc-multi-node-flash_arbitrage.service" in receiver
    assert risk == ["flowc-multi-node-channels.service"]
    target = read_unit(node / "flowc-multi-node.target")["Unit"]["Wants"].split()
    assert sorted(target) == sorted(p.name for p in node.glob("*.service"))
    channels = read_unit(node / "flowc-multi-node-channels.service")["Service"]
    assert channels["Type"] == "oneshot" and channels["RemainAfterExit"] == "yes"
    assert channels["ExecStop"].endswith("channels remove /etc/flowc/multi-node/strategy_node.plan.json "
                                         "--node strategy_node")
    readme = (node / "README").read_text()
    assert "| risk_monitor | consumer | 4-5 | 1 |" in readme
    assert "systemctl enable --now flowc-multi-node.target" in readme


HOSTILE = {
    "QUOTES": 'say "hi" and \'bye\'',
    "PERCENT": "100% of %n and %%",
    "NEWLINE": "line one\nline two\n[Service]\nExecStart=/bin/evil",
    "DOLLAR": "$HOME and ${PATH}",
    "BACKSLASH": "C:\\temp\\n not a newline",
}


def _unquote(value: str) -> str:
    """Undo systemd's quoting of one Environment= value the way systemd reads it."""
    assert value.startswith('"') and value.endswith('"')
    body = value[1:-1].replace("%%", "\0")
    assert "%" not in body, "an unescaped specifier"
    escapes = {"\\\\": "\\", '\\"': '"', "\\n": "\n", "\\t": "\t"}
    return re.sub(r'\\\\|\\"|\\n|\\t', lambda m: escapes[m.group(0)], body).replace("\0", "%")


def hostile_units(tmp_path: Path) -> Path:
    """Build a one-node document whose producer's environment holds every value of ``HOSTILE``; return its units."""
    # JSON strings are YAML double-quoted scalars; '$$' keeps flowc's ${VAR} substitution away.
    env = "\n".join(f"      {key}: {json.dumps(value.replace('$', '$$'))}" for key, value in HOSTILE.items())
    source = tmp_path / "hostile.yaml"
    source.write_text(f"""actors:
  feed:
    type: producer
    outputs: [x]
    env:
{env}
  sink: {{type: consumer, inputs: [x]}}
nodes:
  box: {{hostname: box, actors: {{feed: {{cpu: [0]}}, sink: {{cpu: [1]}}}}}}
""")
    return build(tmp_path, source) / "box"


def test_hostile_environment_values_stay_inside_their_directive(tmp_path: Path) -> None:
    text = (hostile_units(tmp_path) / "flowc-hostile-feed.service").read_text()
    lines = [line for line in text.splitlines() if line.startswith("Environment=")]
    # the first is flowc's own: where the actor publishes its live counters for the metrics unit
    assert lines[0].startswith("Environment=FLOWC_REPORT_DIR=/dev/shm/flowc-") and lines[0].endswith(".report")
    lines = lines[1:]
    assert len(lines) == len(HOSTILE), "no value may add or split a line"
    seen = {}
    for line in lines:
        key, _, value = _unquote(line.removeprefix("Environment=")).partition("=")
        seen[key] = value
    assert seen == HOSTILE
    assert "ExecStart=/bin/evil" not in text.replace('\\nExecStart=/bin/evil', "")


def test_hostile_environment_values_pass_systemd_analyze(tmp_path: Path) -> None:
    require_tool("systemd-analyze")
    box = hostile_units(tmp_path)
    assert verify(sorted(str(p) for p in box.iterdir() if p.suffix in (".service", ".target"))) == ""


def test_env_assignment_escapes() -> None:
    assert env_assignment("A", 'x"y') == '"A=x\\"y"'
    assert env_assignment("B", "50%") == '"B=50%%"'
    assert env_assignment("C", "a\nb") == '"C=a\\nb"'


def test_metrics_unit_serves_each_node_from_its_channels(tmp_path: Path) -> None:
    systemd = build(tmp_path, ROOT / "examples" / "multi-node.yaml")
    plan = json.loads((tmp_path / "out" / "flowc" / "plan.json").read_text())
    assert sorted(p.name for p in systemd.iterdir()) == sorted(plan["nodes"])
    for node in plan["nodes"]:
        folder = systemd / node
        unit = read_unit(folder / "flowc-multi-node-metrics.service")
        assert unit["Service"]["ExecStart"] == f"{TRUE} metrics /etc/flowc/multi-node/{node}.plan.json --node {node}"
        assert unit["Service"]["User"] == "flowc" and unit["Service"]["Type"] == "exec"
        # It reads the channels' segments: it starts after them and stops before they are removed.
        assert unit["Unit"]["Requires"] == unit["Unit"]["After"] == "flowc-multi-node-channels.service"
        assert unit["Unit"]["PartOf"] == unit["Install"]["WantedBy"] == "flowc-multi-node.target"
        target = read_unit(folder / "flowc-multi-node.target")["Unit"]
        assert "flowc-multi-node-metrics.service" in target["Wants"].split()
        actor_after = {u for p in folder.glob("*.service") if p.name != "flowc-multi-node-metrics.service"
                       for u in read_unit(p)["Unit"].get("After", "").split()}
        assert "flowc-multi-node-metrics.service" not in actor_after, "no actor waits for the metrics endpoint"
        readme = (folder / "README").read_text()
        assert "flowc-multi-node-metrics.service runs 'flowc metrics'" in readme
        assert "http://0.0.0.0:9464/metrics" in readme


def test_metrics_units_of_nodes_on_one_host_use_their_own_ports(tmp_path: Path) -> None:
    source = tmp_path / "shared.yaml"
    source.write_text("""actors:
  a: {type: producer, outputs: [x]}
  b: {type: consumer, inputs: [x]}
nodes:
  left: {hostname: box, actors: {a: {cpu: [0]}}}
  right: {hostname: box, actors: {b: {cpu: [1]}}, metrics: {address: "::1"}}
inter_node:
  r: {source: left.x, targets: [right]}
""")
    systemd = build(tmp_path, source)
    plan = json.loads((tmp_path / "out" / "flowc" / "plan.json").read_text())
    ports = {node: info["metrics"]["port"] for node, info in plan["nodes"].items()}
    assert len(set(ports.values())) == 2
    left = (systemd / "left" / "flowc-shared-metrics.service").read_text()
    assert f"on 0.0.0.0 port {ports['left']} (from the plan)" in left
    assert f"http://[::1]:{ports['right']}/metrics" in (systemd / "right" / "README").read_text()
    assert "--port" not in left, "flowc metrics reads the port from the plan, like the launcher"
