"""Issue 11's route attacks against a launched node: its receiver survives, delivers nothing, reports the rejects.

The route authenticates (the default): strangers without a key or with their own key never get past the
handshake and are counted; the frame attacks then come from a peer holding the source node's own key (a
compromised or broken sender), which the receiver must survive too.
"""

from __future__ import annotations

import json
import os
import secrets
import select
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import zstandard

from flowc.runtime.route_keys import CurveKeys, load
from flowc.runtime.route_link import Link, LinkClosed
from flowc.runtime.wire import DATA, HEADER, HELLO, REJECT, WELCOME, header

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


class Peer:
    """A stranger's connection to the route's port, speaking the route's records with ``keys`` (or none)."""

    def __init__(self, port: int, keys: CurveKeys | None, deadline: float) -> None:
        """Connect, waiting for the receiver to listen."""
        while True:
            try:
                sock = socket.create_connection(("127.0.0.1", port), timeout=5)
                break
            except ConnectionRefusedError:
                assert time.monotonic() < deadline, "the receiver never listened"
                time.sleep(0.05)
        self.link = Link(sock, initiator=True, keys=keys, max_frame=MIB)
        self.frames: list[bytes] = []

    def pump(self, timeout: float) -> None:
        """Wait up to ``timeout`` for the socket; write what waits, keep what came (LinkClosed once it ends)."""
        link = self.link
        readable, _, _ = select.select([link], [link] if link.pending else [], [], timeout)
        link.flush()
        if readable:
            self.frames += link.read()
            if link.at_eof:
                raise LinkClosed("closed", "the receiver closed the connection")

    def send(self, frame: bytes, deadline: float) -> None:
        self.link.send(frame)
        while self.link.pending:
            assert time.monotonic() < deadline, "the receiver stopped reading"
            self.pump(0.1)

    def reply(self, kind: int, deadline: float) -> bytes:
        while time.monotonic() < deadline:
            while self.frames:
                frame = self.frames.pop(0)
                if HEADER.unpack_from(frame)[1] == kind:
                    return frame[HEADER.size:]
            self.pump(0.1)
        raise AssertionError(f"no reply of kind {kind}")

    def close(self) -> None:
        self.link.close()


def refused(port: int, keys: CurveKeys | None, deadline: float) -> None:
    """A stranger says HELLO and never hears back: the receiver ends the connection in the handshake."""
    peer = Peer(port, keys, deadline)
    try:
        if keys is None:  # no handshake of its own: the HELLO is the first record the receiver sees
            peer.link.send(header(HELLO, 0, 1, 99, 1) + b"feed_route")
        with pytest.raises(LinkClosed):
            while time.monotonic() < deadline:
                peer.pump(0.1)
        assert peer.frames == [] and (keys is None or not peer.link.ready), "a stranger was answered"
    finally:
        peer.close()


def attack(port: int, keys: CurveKeys, deadline: float) -> None:
    """The issue's frames: junk claiming lz4 and a zstd bomb on a 'none' route, then six 2 MiB frames."""
    peer = Peer(port, keys, deadline)
    try:
        while not peer.link.ready:
            assert time.monotonic() < deadline, "the receiver never finished the handshake"
            peer.pump(0.1)
        for codec, payload in ((1, os.urandom(512)), (2, zstandard.ZstdCompressor().compress(bytes(8 * MIB)))):
            session = secrets.randbits(64) | 1
            peer.send(header(HELLO, 0, 1, session, 1) + b"feed_route", deadline)
            peer.reply(WELCOME, deadline)
            peer.send(header(DATA, codec, 1, session, 1) + payload, deadline)
            assert b"codec id" in peer.reply(REJECT, deadline)
        big = bytes(2 * MIB)
        with pytest.raises(LinkClosed):  # the receiver ends the connection
            for seq in range(1, 7):
                peer.send(header(DATA, 0, 1, 7, seq) + big, deadline)
            while time.monotonic() < deadline:
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
        attack(port, source, deadline)  # first: it also waits until the receiver is up
        refused(port, None, deadline)  # no key at all
        refused(port, CurveKeys(own.public, own.secret, source.peer), deadline)  # a key of its own
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
