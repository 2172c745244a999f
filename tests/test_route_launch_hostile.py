"""Issue 11's route attacks against a launched node: its receiver survives, delivers nothing, reports the rejects.

The route authenticates (the default): strangers without a key or with their own key never get past the
handshake and are counted; the frame attacks then come from a peer holding the source node's own key (a
compromised or broken sender), which the receiver must survive too.
"""

from __future__ import annotations

import json
import mmap
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import zmq
import zstandard

from flowc.runtime.route_keys import CurveKeys, load
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


def connect(ctx: zmq.Context, port: int, keys: CurveKeys | None) -> zmq.Socket:
    sock = ctx.socket(zmq.DEALER)
    sock.setsockopt(zmq.LINGER, 0)
    if keys is not None:
        sock.curve_secretkey, sock.curve_publickey, sock.curve_serverkey = keys.secret, keys.public, keys.peer
    sock.connect(f"tcp://127.0.0.1:{port}")
    return sock


def refused(port: int, keys: CurveKeys | None, deadline: float) -> None:
    """A stranger says HELLO for a while and never hears back."""
    ctx = zmq.Context()
    sock = connect(ctx, port, keys)
    monitor = sock.get_monitor_socket(zmq.EVENT_HANDSHAKE_FAILED_AUTH | zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL
                                      | zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL | zmq.EVENT_DISCONNECTED)
    try:
        for _ in range(5):
            sock.send_multipart([header(HELLO, 0, 1, 99, 1), b"feed_route"], zmq.NOBLOCK)
            assert not sock.poll(200), "a stranger was answered"
        assert monitor.poll(int((deadline - time.monotonic()) * 1000)), "the receiver never ended the handshake"
    except zmq.Again:
        pass  # nothing is queued for a peer that never completed the handshake
    finally:
        sock.disable_monitor()
        monitor.close(linger=0)
        sock.close(linger=0)
        ctx.term()


def reply(sock: zmq.Socket, kind: int, deadline: float) -> bytes:
    while time.monotonic() < deadline:
        if sock.poll(100):
            head, payload = sock.recv_multipart()
            if HEADER.unpack(head)[1] == kind:
                return payload
    raise AssertionError(f"no reply of kind {kind}")


def attack(port: int, keys: CurveKeys, deadline: float) -> None:
    """The issue's frames: junk claiming lz4 and a zstd bomb on a 'none' route, then six 2 MiB frames."""
    ctx = zmq.Context()
    sock = connect(ctx, port, keys)
    try:
        for codec, payload in ((1, os.urandom(512)), (2, zstandard.ZstdCompressor().compress(bytes(8 * MIB)))):
            session = secrets.randbits(64) | 1
            while True:  # the receiver starts with the node; say HELLO until it answers
                sock.send_multipart([header(HELLO, 0, 1, session, 1), b"feed_route"])
                if sock.poll(200):
                    assert HEADER.unpack(sock.recv_multipart()[0])[1] == WELCOME
                    break
                assert time.monotonic() < deadline, "the receiver never answered"
            sock.send_multipart([header(DATA, codec, 1, session, 1), payload])
            assert b"codec id" in reply(sock, REJECT, deadline)
        monitor = sock.get_monitor_socket(zmq.EVENT_DISCONNECTED)
        big = mmap.mmap(-1, 2 * MIB)
        for seq in range(1, 7):
            sock.send_multipart([header(DATA, 0, 1, 7, seq), memoryview(big)], copy=False)
        assert monitor.poll(int((deadline - time.monotonic()) * 1000)), "the receiver kept the connection"
        sock.disable_monitor()
        monitor.close(linger=0)
    finally:
        sock.close(linger=0)
        ctx.term()


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
