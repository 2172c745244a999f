"""Issue 11's route attacks against a launched node: its receiver survives, delivers nothing, reports the rejects.

The route authenticates (the default): strangers without a key or with their own key never get past the
handshake and are counted; the frame attacks then come from a peer holding the source node's own key (a
compromised or broken sender), which the receiver must survive too.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import zstandard

from flowc.runtime.route_keys import CurveKeys, load
from flowc.runtime.route_link import LinkClosed
from flowc.runtime.wire import DATA, HELLO, REJECT, WELCOME, header
from test_bridge_hostile import Stranger

TESTS = Path(__file__).resolve().parent
MIB = 1 << 20

TWO_NODES = """
actors:
  feed: {type: producer, outputs: [ticks], run: "flowc.actors:synthetic_producer",
         params: {rate: 0, size: 64, count: 10}}
  sink: {type: consumer, inputs: [ticks], run: "flowc.actors:latency_sink"}
nodes:
  edge:
    hostname: localhost
    actors: {feed: {cpu: [0]}}
    local_channels: {ticks: {buffer_size: 64KiB}}
  core:
    hostname: localhost
    actors: {sink: {cpu: [1]}}
    local_channels: {ticks: {buffer_size: 64KiB}}
inter_node:
  feed_route: {source: edge.ticks, targets: [core], compression: none}
"""


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def build(tmp: Path) -> tuple[Path, Path]:
    source = tmp / f"route-attack-{secrets.token_hex(4)}.yaml"  # its own segments, whatever else runs
    source.write_text(TWO_NODES)
    proc = subprocess.run([sys.executable, "-m", "flowc", "build", str(source), "-o", str(tmp / "out")],
                          capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr
    plan_path = tmp / "out" / "flowc" / "plan.json"
    plan = json.loads(plan_path.read_text())
    plan["routes"]["feed_route"]["port"] = free_port()
    plan_path.write_text(json.dumps(plan))
    keys = tmp / "keys"
    proc = subprocess.run([sys.executable, "-m", "flowc", "keys", "generate", str(plan_path), "-o", str(keys)],
                          capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr
    return plan_path, keys


def refused(endpoint: str, keys: CurveKeys | None, deadline: float) -> None:
    """A stranger says HELLO and never hears back: the receiver ends the connection in the handshake."""
    peer: Stranger | None = None
    with pytest.raises(LinkClosed):
        peer = Stranger(endpoint, keys)  # a key of its own: refused here
        # no key: no handshake of its own, so the HELLO is the first record the receiver sees
        peer.link.send(header(HELLO, 0, 1, 99, 1) + b"feed_route")
        while time.monotonic() < deadline:
            peer.pump(0.1)
    if peer is not None:
        peer.close()
        assert not peer.replies, "a stranger was answered"


def attack(endpoint: str, keys: CurveKeys) -> None:
    """The issue's frames: junk claiming lz4 and a zstd bomb on a 'none' route, then six 2 MiB frames."""
    peer = Stranger(endpoint, keys)
    try:
        for codec, payload in ((1, os.urandom(512)), (2, zstandard.ZstdCompressor().compress(bytes(8 * MIB)))):
            session = secrets.randbits(64) | 1
            peer.send(header(HELLO, 0, 1, session, 1), b"feed_route")
            peer.expect(WELCOME, session)
            peer.send(header(DATA, codec, 1, session, 1), payload)
            assert b"codec id" in peer.expect(REJECT, session)[1]
        big = bytes(2 * MIB)
        with pytest.raises(LinkClosed):  # the receiver ends the connection
            for seq in range(1, 7):
                peer.send(header(DATA, 0, 1, 7, seq), big)
            while True:
                peer.pump(0.1)
    finally:
        peer.close()


def test_a_launched_receiver_survives_and_reports_hostile_frames(tmp_path: Path) -> None:
    plan, keys = build(tmp_path)
    port = json.loads(plan.read_text())["routes"]["feed_route"]["port"]
    report = tmp_path / "core.json"
    env = {**os.environ, "PYTHONPATH": f"{TESTS}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    core = subprocess.Popen([sys.executable, "-m", "flowc", "launch", str(plan), "--node", "core", "--report",
                             str(report), "--oversubscribe", "--keys", str(keys)], env=env, stderr=subprocess.PIPE,
                            text=True)
    try:
        source = load(keys / "edge", "edge", "core")  # the source node's own keypair, and the receiver's key
        own, _ = CurveKeys.pair()
        deadline = time.monotonic() + 30
        endpoint = f"tcp://127.0.0.1:{port}"
        attack(endpoint, source)  # first: it also waits until the receiver is up
        refused(endpoint, None, deadline)  # no key at all
        refused(endpoint, CurveKeys(own.public, own.secret, source.peer), deadline)  # a key of its own
        core.send_signal(signal.SIGTERM)
        assert core.wait(timeout=40) == 0, core.stderr.read()
    finally:
        if core.poll() is None:
            core.kill()
    data = json.loads(report.read_text())
    assert data["routes"], data
    assert data["failure"] is None
    assert data["actors"]["route:feed_route:in:0"]["restarts"] == 0, "no frame may end the receiver"
    route = data["routes"]["route-feed_route-in-0"]
    assert route["received"] == 0 and data["sinks"]["sink"]["count"] == 0
    assert route["rejects"]["codec"] == 2 and route["rejected"] >= 2
    assert route["disconnects"] >= 1, "a frame over the ring's largest message ends its connection"
    assert route["auth_failures"] == 1, "the stranger with a key of its own is refused by the key check"
    assert route["handshake_failures"] >= 2, "the stranger without a key fails the handshake"
