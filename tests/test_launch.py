"""The launcher end to end: real processes, real shared memory, real TCP on loopback."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from flowc.model.node_view import segment_prefix

TESTS = Path(__file__).resolve().parent


def env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": f"{TESTS}{os.pathsep}{os.environ.get('PYTHONPATH', '')}",
            "FLOWC_RESTART_BACKOFF_S": "0.05"}


def build(tmp: Path, text: str) -> Path:
    source = tmp / "topology.yaml"
    source.write_text(text)
    proc = subprocess.run([sys.executable, "-m", "flowc", "build", str(source), "-o", str(tmp / "out")],
                          capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr
    return tmp / "out" / "flowc" / "plan.json"


def generate_keys(plan: Path, folder: Path) -> Path:
    proc = subprocess.run([sys.executable, "-m", "flowc", "keys", "generate", str(plan), "-o", str(folder)],
                          capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr
    return folder


def launch(plan: Path, node: str, *extra: str, timeout: float = 60) -> tuple[int, dict, str]:
    report = plan.parent / f"report-{node}.json"
    proc = subprocess.run([sys.executable, "-m", "flowc", "launch", str(plan), "--node", node, "--report",
                           str(report), "--oversubscribe", *extra], capture_output=True, text=True, env=env(),
                          timeout=timeout, check=False)
    data = json.loads(report.read_text()) if report.exists() else {}
    return proc.returncode, data, proc.stderr


def leftovers(source: str, node: str) -> list[str]:
    prefix = segment_prefix(source, node)
    return sorted(name for name in os.listdir("/dev/shm") if name.startswith(prefix))


PIPELINE = """
actors:
  feed: {{type: producer, outputs: [ticks], run: "flowc.actors:synthetic_producer",
          params: {{rate: 0, size: {size}, count: {count}}}}}
  relay: {{type: transformer, inputs: [ticks], outputs: [signals], run: "flowc.actors:relay"}}
  sink: {{type: consumer, inputs: [signals], run: "{sink}", params: {params}}}
nodes:
  dev:
    hostname: localhost
    actors: {{feed: {{cpu: [0]}}, relay: {{cpu: [1]}}, sink: {{cpu: [2]}}}}
    local_channels:
      ticks: {{type: SPSC, buffer_size: 4KiB}}
      signals: {{type: SPSC, buffer_size: 4KiB}}
"""


def pipeline(count: int = 5000, sink: str = "flowc.actors:latency_sink", params: str = "{}", size: int = 64) -> str:
    return PIPELINE.format(count=count, sink=sink, params=params, size=size)


def test_every_message_arrives_once_and_in_order_under_backpressure(tmp_path: Path) -> None:
    plan = build(tmp_path, pipeline(count=5000, size=200))
    code, report, stderr = launch(plan, "dev")
    assert code == 0, stderr
    sink = report["sinks"]["sink"]
    assert {k: v for k, v in sink.items() if not k.endswith("_arrival_ns")} == {
        "count": 5000, "out_of_order": 0, "malformed": 0, "producers": 1, "last_seq": sink["last_seq"]}
    assert 0 < sink["first_arrival_ns"] < sink["last_arrival_ns"]
    assert report["latency_by_sink_us"]["sink"]["path"] == "shared memory"
    assert report["latency_by_sink_us"]["sink"]["count"] == 5000
    assert list(report["sinks"]["sink"]["last_seq"].values()) == [4999]
    for name in ("ticks", "signals"):
        assert report["channels"][name]["sent"] == report["channels"][name]["received"] == 5000
        assert report["channels"][name]["dropped"] == 0
    assert report["channels"]["ticks"]["backpressure_waits"] > 0, "a 4 KiB ring must make the producer wait"
    assert report["latency_us"]["count"] == 5000
    assert {a["exit_code"] for a in report["actors"].values()} == {0}
    assert leftovers("topology.yaml", "dev") == []


def test_crashed_actor_restarts(tmp_path: Path) -> None:
    marker = tmp_path / "crashed"
    plan = build(tmp_path, pipeline(count=2000, sink="runtime_actors:crash_once_sink",
                                    params=f'{{marker: "{marker}"}}'))
    code, report, stderr = launch(plan, "dev")
    assert code == 0, stderr
    assert marker.exists()
    assert report["actors"]["sink"]["restarts"] == 1
    assert report["sinks"]["sink"]["count"] == 2000 and report["sinks"]["sink"]["out_of_order"] == 0


def test_actor_failing_for_good_stops_the_node(tmp_path: Path) -> None:
    plan = build(tmp_path, pipeline(count=100000, sink="runtime_actors:always_fail"))
    code, report, stderr = launch(plan, "dev")
    assert code == 1
    assert "'sink' failed 6 times" in stderr
    assert report["failure"].startswith("'sink' failed")
    assert leftovers("topology.yaml", "dev") == []


def _wait_for(predicate, timeout: float = 20.0) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError("condition not reached")


def _children_of(pid: int) -> list[int]:
    out = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                out.append(int(entry))
    return out


def test_sigterm_stops_in_order_and_cleans_up(tmp_path: Path) -> None:
    plan = build(tmp_path, pipeline(count=0).replace("rate: 0", "rate: 2000"))
    report = tmp_path / "report.json"
    proc = subprocess.Popen([sys.executable, "-m", "flowc", "launch", str(plan), "--node", "dev", "--report",
                             str(report), "--oversubscribe"], env=env(), stderr=subprocess.PIPE, text=True)
    _wait_for(lambda: len(_children_of(proc.pid)) == 3)
    time.sleep(1.0)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=30) == 0, proc.stderr.read()
    data = json.loads(report.read_text())
    sent = data["channels"]["ticks"]["sent"]
    assert sent > 0 and data["sinks"]["sink"]["count"] == sent, "everything produced was drained to the sink"
    assert data["sinks"]["sink"]["out_of_order"] == 0
    assert leftovers("topology.yaml", "dev") == []


def test_sigkill_leaves_no_orphans_and_next_start_reclaims(tmp_path: Path) -> None:
    plan = build(tmp_path, pipeline(count=0).replace("rate: 0", "rate: 1000"))
    proc = subprocess.Popen([sys.executable, "-m", "flowc", "launch", str(plan), "--node", "dev", "--oversubscribe"],
                            env=env(), stderr=subprocess.DEVNULL)
    _wait_for(lambda: len(_children_of(proc.pid)) == 3)
    actors = _children_of(proc.pid)
    assert leftovers("topology.yaml", "dev"), "the run has segments"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    _wait_for(lambda: not any(Path(f"/proc/{pid}").exists() for pid in actors))
    assert leftovers("topology.yaml", "dev"), "SIGKILL leaves the segments behind"
    code, _, stderr = launch(plan, "dev", "--duration", "0.5")
    assert code == 0, stderr
    assert "reclaimed" in stderr
    assert leftovers("topology.yaml", "dev") == []


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


TWO_NODES = """
actors:
  feed: {{type: producer, outputs: [ticks], run: "flowc.actors:synthetic_producer",
          params: {{rate: 5000, size: 256, count: {count}}}}}
  sink: {{type: consumer, inputs: [ticks], run: "flowc.actors:latency_sink"}}
nodes:
  edge:
    hostname: localhost
    actors: {{feed: {{cpu: [0]}}}}
    local_channels: {{ticks: {{buffer_size: 64KiB}}}}
  core:
    hostname: localhost
    actors: {{sink: {{cpu: [1]}}}}
    local_channels: {{ticks: {{buffer_size: 64KiB}}}}
inter_node:
  feed_route: {{source: edge.ticks, targets: [core], compression: lz4}}
"""


def test_two_launchers_over_tcp_with_a_receiver_restart(tmp_path: Path) -> None:
    plan_path = build(tmp_path, TWO_NODES.format(count=6000))
    plan = json.loads(plan_path.read_text())
    plan["routes"]["feed_route"]["port"] = _free_port()
    plan_path.write_text(json.dumps(plan))
    keys = str(generate_keys(plan_path, tmp_path / "keys"))
    reports = {node: tmp_path / f"{node}.json" for node in ("edge", "core")}
    core = subprocess.Popen([sys.executable, "-m", "flowc", "launch", str(plan_path), "--node", "core", "--report",
                             str(reports["core"]), "--duration", "8", "--keys", keys], env=env(),
                            stderr=subprocess.PIPE, text=True)
    edge = subprocess.Popen([sys.executable, "-m", "flowc", "launch", str(plan_path), "--node", "edge", "--report",
                             str(reports["edge"]), "--keys", keys], env=env(), stderr=subprocess.PIPE, text=True)
    _wait_for(lambda: any("run-bridge" in Path(f"/proc/{p}/cmdline").read_text() for p in _children_of(core.pid)))
    time.sleep(0.4)
    receiver = next(p for p in _children_of(core.pid) if "run-bridge" in Path(f"/proc/{p}/cmdline").read_text())
    os.kill(receiver, signal.SIGKILL)
    assert edge.wait(timeout=40) == 0, edge.stderr.read()
    assert core.wait(timeout=40) == 0, core.stderr.read()
    core_report = json.loads(reports["core"].read_text())
    sink = core_report["sinks"]["sink"]
    assert list(sink["last_seq"].values()) == [5999], "nothing lost across the receiver restart"
    # The documented guarantee: at most the one message being delivered when the receiver died repeats
    # (it shows as one extra message, one step back in sequence); nothing else is out of order.
    assert sink["count"] - 6000 == sink["out_of_order"] <= 1
    assert core_report["actors"]["route:feed_route:in:0"]["restarts"] == 1
    assert core_report["routes"]["route-feed_route-in-0"]["auth_failures"] == 0
    assert leftovers("topology.yaml", "edge") == leftovers("topology.yaml", "core") == []


def test_a_route_that_authenticates_does_not_start_without_its_keys(tmp_path: Path) -> None:
    plan = build(tmp_path, TWO_NODES.format(count=10))
    code, _, stderr = launch(plan, "core")
    assert code == 1 and "route 'feed_route' authenticates its peers and no keys were given" in stderr
    other = tmp_path / "other.yaml"
    other.write_text(TWO_NODES.format(count=10).replace("edge", "west"))
    subprocess.run([sys.executable, "-m", "flowc", "build", str(other), "-o", str(tmp_path / "other")], check=True,
                   capture_output=True)
    keys = generate_keys(tmp_path / "other" / "flowc" / "plan.json", tmp_path / "other-keys")
    code, _, stderr = launch(plan, "core", "--keys", str(keys / "core"))
    assert code == 1 and "edge.key" in stderr, "the source node's public key is missing"
    (keys / "core" / "core.key_secret").chmod(0o644)
    code, _, stderr = launch(plan, "core", "--keys", str(keys / "core"))
    assert code == 1 and "readable or writable by other users" in stderr
    assert leftovers("topology.yaml", "core") == [], "nothing was created"


@pytest.mark.parametrize("node", ["nowhere"])
def test_unknown_node_is_an_error(tmp_path: Path, node: str) -> None:
    plan = build(tmp_path, pipeline())
    code, _, stderr = launch(plan, node)
    assert code == 1 and "node 'nowhere' is not in" in stderr


def test_channels_create_and_remove(tmp_path: Path) -> None:
    plan = build(tmp_path, pipeline())
    run = [sys.executable, "-m", "flowc", "channels"]
    created = subprocess.run([*run, "create", str(plan), "--node", "dev"], capture_output=True, text=True, check=False)
    assert created.returncode == 0, created.stderr
    made = leftovers("topology.yaml", "dev")
    assert len(made) == 4 and made[-1].endswith(".report"), "two rings, the registry and the report folder"
    removed = subprocess.run([*run, "remove", str(plan), "--node", "dev"], capture_output=True, text=True, check=False)
    assert removed.returncode == 0 and "removed 2 channel(s)" in removed.stderr
    assert leftovers("topology.yaml", "dev") == []
    unknown = subprocess.run([*run, "create", str(plan), "--node", "nope"], capture_output=True, text=True, check=False)
    assert unknown.returncode == 1 and "node 'nope' is not in" in unknown.stderr and "Traceback" not in unknown.stderr


def test_a_file_that_is_not_a_plan_is_an_error(tmp_path: Path) -> None:
    bad = tmp_path / "plan.json"
    bad.write_text('{"nodes": 1}')
    for command in (["launch", str(bad), "--node", "a"], ["run-actor", str(bad), "--node", "a", "--actor", "b"],
                    ["channels", "create", str(bad), "--node", "a"]):
        proc = subprocess.run([sys.executable, "-m", "flowc", *command], capture_output=True, text=True, check=False)
        assert proc.returncode == 1, proc.stderr
        assert "is not a flowc plan" in proc.stderr and "Traceback" not in proc.stderr
