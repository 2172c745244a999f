"""Random sequences of plan edits applied to one running node by reload, checked after every step and at the end.

Each example launches a node (a numbered producer → relay → sink, optionally an extra reader of the relay's
output), then applies edits drawn by hypothesis: a sink or relay restarted with new params, a channel resized
(its ring replaced), the extra reader added or removed (its channel's ring widened or narrowed), or nothing. After
each reload every process the change list does not name keeps its PID; at the end every message each producer run
sent has reached the sink exactly once and in order.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from hypothesis import settings
from hypothesis.stateful import RuleBasedStateMachine, precondition, rule

from node_runs import build_plan
from test_reload import check_streams

TESTS = Path(__file__).resolve().parent

DOC = """
actors:
  feed: {{type: producer, outputs: [ticks], run: "runtime_actors:seq_producer",
         params: {{rate: 1000, count: 1000000, sent: "{sent}", linger: true}}}}
  relay: {{type: transformer, inputs: [ticks], outputs: [signals], run: "runtime_actors:seq_recorder",
          params: {{out: "{relayed}", tag: {relay_tag}}}}}
  sink: {{type: consumer, inputs: [signals], run: "runtime_actors:seq_recorder",
         params: {{out: "{got}", tag: {sink_tag}}}}}
{audit_actor}nodes:
  solo:
    hostname: localhost
    actors: {{feed: {{cpu: [0]}}, relay: {{cpu: [1]}}, sink: {{cpu: [2]}}{audit_place}}}
    local_channels: {{ticks: {{buffer_size: {ticks}}}, signals: {{buffer_size: {signals}}}}}
"""
AUDIT = ('  audit: {{type: consumer, inputs: [signals], run: "runtime_actors:seq_recorder", '
         'params: {{out: "{audit}"}}}}\n')


class ReloadMachine(RuleBasedStateMachine):
    """One running node, changed again and again."""

    def __init__(self) -> None:
        """Launch the node with the first plan."""
        super().__init__()
        self.tmp = Path(tempfile.mkdtemp(prefix="flowc-reload-sm-"))
        self.name = f"sm-{secrets.token_hex(4)}.yaml"
        self.sent, self.files = self.tmp / "sent.txt", {"got": self.tmp / "got.bin"}
        self.knobs = {"relay_tag": 1, "sink_tag": 1, "ticks": "1MiB", "signals": "1MiB", "audit": False}
        self.version = 0
        env = {**os.environ, "PYTHONPATH": f"{TESTS}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
        self.env = env
        self.proc = subprocess.Popen([sys.executable, "-m", "flowc", "launch", str(self.build()), "--node", "solo",
                                      "--oversubscribe", "--report", str(self.tmp / "report.json")], env=env,
                                     stderr=subprocess.PIPE, text=True)
        end = time.monotonic() + 30
        while not self.files["got"].exists() or self.files["got"].stat().st_size == 0:
            assert time.monotonic() < end and self.proc.poll() is None, "the node did not start"
            time.sleep(0.05)
        self.pids = self.reload(self.current)["untouched"]

    def build(self) -> Path:
        """Build the document as the knobs say; the plan becomes the current one."""
        self.version += 1
        k = self.knobs
        text = DOC.format(sent=self.sent, relayed=self.tmp / "relayed.bin", got=self.files["got"],
                          relay_tag=k["relay_tag"], sink_tag=k["sink_tag"], ticks=k["ticks"], signals=k["signals"],
                          audit_actor=AUDIT.format(audit=self.tmp / "audit.bin") if k["audit"] else "",
                          audit_place=", audit: {cpu: [3]}" if k["audit"] else "")
        self.current = build_plan(self.tmp / f"v{self.version}", self.name, text)
        return self.current

    def reload(self, plan: Path) -> dict:
        """Reload the node and return the launcher's answer."""
        done = subprocess.run([sys.executable, "-m", "flowc", "reload", str(plan), "--node", "solo", "--format",
                               "json"], capture_output=True, text=True, check=False, env=self.env)
        assert done.stdout, done.stderr
        answer = json.loads(done.stdout)
        assert answer["applied"], answer["why"]
        return answer

    def apply(self) -> None:
        """Reload the current knobs; check the untouched processes kept their PIDs."""
        answer = self.reload(self.build())
        named = {line.split()[3].rstrip(":") for line in answer["changes"] if line.split()[2] == "actor"}
        for actor, pid in answer["untouched"].items():
            assert actor not in named
            assert self.pids.get(actor) == pid, f"'{actor}' was touched by {answer['changes']}"
        self.pids = self.reload(self.current)["untouched"]
        assert self.proc.poll() is None, self.proc.stderr.read()

    @rule()
    def restart_sink(self) -> None:
        """New params for the sink."""
        self.knobs["sink_tag"] += 1
        self.apply()

    @rule()
    def restart_relay(self) -> None:
        """New params for the relay."""
        self.knobs["relay_tag"] += 1
        self.apply()

    @rule()
    def resize_ticks(self) -> None:
        """Replace the producer's ring."""
        self.knobs["ticks"] = "2MiB" if self.knobs["ticks"] == "1MiB" else "1MiB"
        self.apply()

    @rule()
    def resize_signals(self) -> None:
        """Replace the relay's output ring."""
        self.knobs["signals"] = "2MiB" if self.knobs["signals"] == "1MiB" else "1MiB"
        self.apply()

    @precondition(lambda self: os.cpu_count() is not None)
    @rule()
    def toggle_audit(self) -> None:
        """Add or remove a second reader of the relay's output."""
        self.knobs["audit"] = not self.knobs["audit"]
        self.apply()

    @rule()
    def nothing(self) -> None:
        """Reload the same plan."""
        self.apply()

    def teardown(self) -> None:
        """Stop the node in order and check every stream."""
        try:
            if self.proc.poll() is None:
                self.proc.send_signal(signal.SIGTERM)
            _, err = self.proc.communicate(timeout=60)
            report = json.loads((self.tmp / "report.json").read_text())
            assert report["failure"] is None, err
            assert all(r["applied"] and not r["problems"] for r in report["reloads"]), report["reloads"]
            check_streams(self)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()

    def received(self, which: str = "got") -> list[tuple[int, int, int]]:
        """What the sink recorded (for :func:`test_reload.check_streams`)."""
        from runtime_actors import RECORD

        data = self.files[which].read_bytes()
        return [RECORD.unpack_from(data, i) for i in range(0, len(data) - len(data) % RECORD.size, RECORD.size)]


ReloadMachine.TestCase.settings = settings(max_examples=3, stateful_step_count=4, deadline=None)
TestReloadSequences = ReloadMachine.TestCase
