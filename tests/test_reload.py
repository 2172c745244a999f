"""Reloading a running node: only what changed is touched, and no message is lost, repeated or reordered.

Real launchers, real rings in /dev/shm, producers numbering their messages at a steady rate through each reload;
every consumer records what it received, and the tests check each producer run's stream end to end.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path

import pytest

from node_runs import build_plan
from runtime_actors import RECORD

TESTS = Path(__file__).resolve().parent

DOC = """
actors:
  feed: {type: producer, outputs: [ticks], run: "runtime_actors:seq_producer",
         params: {rate: RATE, count: COUNT, sent: "SENT"}}
  relay: {type: transformer, inputs: [ticks], outputs: [signals], run: "runtime_actors:seq_recorder",
          params: {out: "RELAYED", tag: TAG_RELAY}}
  sink: {type: consumer, inputs: [signals], run: "runtime_actors:seq_recorder", params: {out: "GOT", tag: TAG_SINK}}
nodes:
  solo:
    hostname: localhost
    actors: {feed: {cpu: [0]}, relay: {cpu: [1]}, sink: {cpu: [2]}}
    local_channels: {ticks: {buffer_size: TICKS_SIZE}, signals: {buffer_size: 1MiB}}
"""

SIDE_LINE = """  side_feed: {type: producer, outputs: [side], run: "runtime_actors:seq_producer",
              params: {rate: 500, count: 1000000, sent: "SIDE_SENT", linger: true}}
  side_sink: {type: consumer, inputs: [side], run: "runtime_actors:seq_recorder", params: {out: "SIDE_GOT"}}
"""


class Node:
    """One document built into plans of several versions (same file name), and the launcher running them."""

    def __init__(self, tmp_path: Path, rate: int = 2000, count: int = 6000) -> None:
        """Name the files; nothing runs yet."""
        self.tmp = tmp_path
        self.name = f"reload-{secrets.token_hex(4)}.yaml"
        self.files = {k: tmp_path / f"{k}.bin" for k in ("got", "relayed")}
        self.sent = tmp_path / "sent.txt"
        self.values = {"RATE": str(rate), "COUNT": str(count), "SENT": str(self.sent), "GOT": str(self.files["got"]),
                       "RELAYED": str(self.files["relayed"]), "TAG_RELAY": "1", "TAG_SINK": "1",
                       "TICKS_SIZE": "1MiB"}
        self.version = 0
        self.proc: subprocess.Popen | None = None

    def plan(self, **changes: str) -> Path:
        """Build the document with ``changes`` applied to its placeholders; return the plan's path."""
        return self.plan_from(DOC, **changes)

    def plan_from(self, text_template: str, **changes: str) -> Path:
        """Build ``text_template`` (a variant of the document) with the placeholders filled; return the plan."""
        self.version += 1
        values = {**self.values, **changes}
        text = text_template
        for key, value in values.items():
            text = text.replace(key, value)
        return build_plan(self.tmp / f"v{self.version}", self.name, text)

    def launch(self, plan: Path) -> None:
        """Start the node's launcher."""
        env = {**os.environ, "PYTHONPATH": f"{TESTS}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
        self.proc = subprocess.Popen([sys.executable, "-m", "flowc", "launch", str(plan), "--node", "solo",
                                      "--oversubscribe", "--report", str(self.tmp / "report.json")], env=env,
                                     stderr=subprocess.PIPE, text=True)

    def reload(self, plan: Path) -> dict:
        """``flowc reload`` the plan and return the launcher's answer."""
        done = subprocess.run([sys.executable, "-m", "flowc", "reload", str(plan), "--node", "solo", "--format",
                               "json", "--timeout", "60"], capture_output=True, text=True, check=False)
        assert done.stdout, done.stderr
        return json.loads(done.stdout)

    def received(self, which: str = "got") -> list[tuple[int, int, int]]:
        """What a recorder wrote: (run, seq, arrival ns)."""
        data = self.files[which].read_bytes() if self.files[which].exists() else b""
        return [RECORD.unpack_from(data, i) for i in range(0, len(data) - len(data) % RECORD.size, RECORD.size)]

    def wait_for_messages(self, n: int, timeout: float = 30) -> None:
        """Wait until the sink has ``n`` messages."""
        end = time.monotonic() + timeout
        while len(self.received()) < n:
            assert time.monotonic() < end, "the sink is not receiving"
            assert self.proc.poll() is None, self.proc.stderr.read()
            time.sleep(0.05)

    def finish(self, timeout: float = 60) -> tuple[dict, str]:
        """Wait for the node to end by itself (the producer's count is done), return the report and stderr."""
        try:
            _, err = self.proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.send_signal(signal.SIGTERM)
            _, err = self.proc.communicate(timeout=30)
            raise AssertionError("the node did not finish: " + err) from None
        return json.loads((self.tmp / "report.json").read_text()), err

    def stop(self) -> None:
        """Make sure the launcher is gone."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.communicate()


def check_streams(node: Node, which: str = "got") -> float:
    """Every message each producer run sent arrived exactly once and in order; return the longest gap (ms)."""
    runs = dict(line.split() for line in node.sent.read_text().splitlines())
    by_run: dict[int, list[int]] = defaultdict(list)
    records = node.received(which)
    for run, seq, _ in records:
        by_run[run].append(seq)
    assert {str(run) for run in by_run} <= set(runs), "messages from a producer run that never reported"
    for run, sent in runs.items():
        assert by_run.get(int(run), []) == list(range(int(sent))), f"run {run}: lost, repeated or reordered"
    arrivals = sorted(at for _, _, at in records)
    return max((b - a for a, b in zip(arrivals, arrivals[1:], strict=False)), default=0) / 1e6


@pytest.fixture
def node(tmp_path: Path):
    """A node to launch; always stopped at the end."""
    n = Node(tmp_path)
    yield n
    n.stop()


def test_an_unchanged_plan_touches_nothing_and_reports_the_pids(node: Node) -> None:
    plan = node.plan()
    node.launch(plan)
    node.wait_for_messages(200)
    first = node.reload(plan)
    assert first["applied"] and first["changes"] == []
    assert set(first["untouched"]) == {"feed", "relay", "sink"}
    report, _ = node.finish()
    assert report["failure"] is None
    assert check_streams(node) >= 0
    prefix = answer_prefix(plan)
    assert not [e for e in os.listdir("/dev/shm") if e.startswith(prefix)], "nothing of the node is left behind"


def test_a_consumer_restarts_with_new_params_and_nothing_is_lost(node: Node) -> None:
    plan = node.plan()
    node.launch(plan)
    node.wait_for_messages(500)
    before = node.reload(plan)["untouched"]
    answer = node.reload(node.plan(TAG_SINK="2"))
    assert answer["applied"], answer["why"]
    assert answer["changes"] == ["~ restart actor sink: params changed"]
    assert answer["untouched"] == {"feed": before["feed"], "relay": before["relay"]}
    report, err = node.finish()
    assert report["failure"] is None, err
    check_streams(node)
    check_streams(node, "relayed")
    assert [r["changes"] for r in report["reloads"]] == [[], ["~ restart actor sink: params changed"]]


def test_a_transformer_restarts_while_producer_and_sink_keep_running(node: Node) -> None:
    plan = node.plan()
    node.launch(plan)
    node.wait_for_messages(500)
    before = node.reload(plan)["untouched"]
    answer = node.reload(node.plan(TAG_RELAY="2"))
    assert answer["changes"] == ["~ restart actor relay: params changed"]
    assert answer["untouched"] == {"feed": before["feed"], "sink": before["sink"]}
    report, err = node.finish()
    assert report["failure"] is None, err
    gap = check_streams(node)
    print(f"longest gap at the sink while its upstream transformer restarted: {gap:.1f} ms")


def test_a_resized_channel_is_replaced_without_loss(node: Node) -> None:
    plan = node.plan()
    node.launch(plan)
    node.wait_for_messages(500)
    answer = node.reload(node.plan(TICKS_SIZE="4MiB"))
    assert answer["applied"], answer["why"]
    assert answer["changes"][0] == "~ replace channel ticks: buffer_size 1048576 -> 4194304"
    assert set(answer["untouched"]) == {"sink"}
    report, err = node.finish()
    assert report["failure"] is None, err
    assert len(node.sent.read_text().splitlines()) == 2  # the producer restarted onto the new ring
    check_streams(node)
    check_streams(node, "relayed")
    leftovers = [e for e in os.listdir("/dev/shm") if e.endswith("-ticks") or e.endswith("-ticks.g1")]
    assert not [e for e in leftovers if node.name in e]


def test_an_invalid_plan_changes_nothing(node: Node, tmp_path: Path) -> None:
    plan = node.plan()
    node.launch(plan)
    node.wait_for_messages(200)
    before = node.reload(plan)["untouched"]
    missing = subprocess.run([sys.executable, "-m", "flowc", "reload", str(plan), "--node", "nowhere"],
                             capture_output=True, text=True, check=False)
    assert missing.returncode == 1 and "nowhere" in missing.stderr and "Traceback" not in missing.stderr
    # SIGHUP re-reads the launcher's plan file: a file that is no longer a plan is refused, and all goes on
    text = plan.read_text()
    plan.write_text("{not a plan")
    node.proc.send_signal(signal.SIGHUP)
    time.sleep(1.0)
    plan.write_text(text)
    assert node.reload(plan)["untouched"] == before
    report, err = node.finish()
    assert "reload refused, nothing changed" in err
    refused = [r for r in report["reloads"] if not r["applied"]]
    assert len(refused) == 1 and "is not a flowc plan" in refused[0]["why"]
    check_streams(node)


def test_reload_without_a_running_launcher_says_so(tmp_path: Path) -> None:
    plan = Node(tmp_path).plan()
    done = subprocess.run([sys.executable, "-m", "flowc", "reload", str(plan), "--node", "solo"],
                          capture_output=True, text=True, check=False)
    assert done.returncode == 1 and "no launcher runs node 'solo'" in done.stderr


def test_a_pipeline_added_and_removed_beside_a_running_one_leaves_it_alone(tmp_path: Path) -> None:
    node = Node(tmp_path, count=12_000)
    try:
        pipeline_beside(node, tmp_path)
    finally:
        node.stop()


def pipeline_beside(node: Node, tmp_path: Path) -> None:
    """Add an independent pipeline to a running node, then remove it; the first one must not notice."""
    plan = node.plan()
    node.launch(plan)
    node.wait_for_messages(500)
    before = node.reload(plan)["untouched"]
    side = SIDE_LINE.replace("SIDE_SENT", str(tmp_path / "side-sent.txt"))
    side = side.replace("SIDE_GOT", str(tmp_path / "side.bin"))
    with_side = DOC.replace("  sink:", side + "  sink:", 1).replace(
        "sink: {cpu: [2]}}", "sink: {cpu: [2]}, side_feed: {cpu: [3]}, side_sink: {cpu: [4]}}")
    added = node.plan_from(with_side)
    time.sleep(1.0)
    reload_start = time.monotonic_ns()
    answer = node.reload(added)
    assert answer["changes"] == ["+ add channel side", "+ add actor side_feed", "+ add actor side_sink"]
    assert answer["untouched"] == before
    time.sleep(1.0)
    removed = node.reload(node.plan())
    assert removed["changes"] == ["- remove channel side", "- remove actor side_feed", "- remove actor side_sink"]
    assert removed["untouched"] == before
    report, err = node.finish()
    assert report["failure"] is None, err
    check_streams(node)
    arrivals = sorted(at for _, _, at in node.received())
    gaps = [(b - a, b) for a, b in zip(arrivals, arrivals[1:], strict=False)]
    quiet = max(g for g, at in gaps if at < reload_start) / 1e6
    during = max(g for g, at in gaps if at >= reload_start) / 1e6
    beside = Node(tmp_path / "side-view")
    beside.sent, beside.files = tmp_path / "side-sent.txt", {"got": tmp_path / "side.bin"}
    check_streams(beside)
    assert not [e for e in os.listdir("/dev/shm") if e.startswith(answer_prefix(added)) and "-side" in e]
    print(f"longest gap at the untouched sink: {during:.2f} ms while a pipeline came and went beside it, "
          f"{quiet:.2f} ms in the second before")


def answer_prefix(plan: Path) -> str:
    """The shared-memory prefix of the plan's node ``solo``."""
    from flowc.model.node_view import NodeView
    from flowc.runtime.actor_main import load_node

    return NodeView.of(load_node(str(plan), "solo"), "solo").prefix
