"""The TCP bridge over loopback: real processes, real sockets, pipes standing in for the local channels.

Routes authenticate (the Noise handshake with a fresh pair of node keys per route) unless a test says otherwise.
"""

from __future__ import annotations

import multiprocessing
import os
import random
import socket
import threading
import time
from multiprocessing.connection import Connection
from pathlib import Path

import pytest
import zmq

from flowc.runtime.bridge import BridgeError, BridgeStats, Sender
from flowc.runtime.bridge_receiver import Receiver
from flowc.runtime.route_keys import CurveKeys
from flowc.runtime.wire import Codec

CTX = multiprocessing.get_context("spawn")
HEARTBEAT_S = 0.2
DEADLINE_S = 20.0


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def payloads(count: int, seed: int = 7) -> list[bytes]:
    """Varied sizes and kinds: empty, small, text-like (compressible), random (not), a few large."""
    rng = random.Random(seed)
    words = [b"bid", b"ask", b"qty", b"px", b"venue", b"XNAS", b"XNYS", b"0.25", b"100"]
    out = []
    for i in range(count):
        head = i.to_bytes(8, "little")
        if i % 97 == 0:
            out.append(b"")
        elif i % 13 == 0:
            out.append(head + rng.randbytes(rng.randrange(0, 2048)))
        elif i % 2500 == 1:
            out.append(head + b" ".join(rng.choice(words) for _ in range(40_000)))
        else:
            out.append(head + b" ".join(rng.choice(words) for _ in range(rng.randrange(0, 400))))
    return out


def sender_main(endpoint: str, compression: str, window: int, feed: Connection, stop, results,
                keys: CurveKeys | None) -> None:
    def recv(timeout: float) -> bytes | None:
        return feed.recv_bytes() if feed.poll(timeout) else None  # EOFError once the feeder closes

    stats = Sender(endpoint, "quotes", compression, heartbeat_s=HEARTBEAT_S, window=window, auth=keys).run(recv, stop)
    results.put(("sender", stats.as_dict()))


def receiver_main(bind: str, compression: str | None, out: Connection, stop, results, state: str | None,
                  keys: CurveKeys | None) -> None:
    stats = Receiver(bind, "quotes", compression, heartbeat_s=HEARTBEAT_S, state_path=state,
                     auth=keys).run(out.send_bytes, stop)
    out.close()
    results.put(("receiver", stats.as_dict()))


class Route:
    """A sender process and a (restartable) receiver process on one loopback port."""

    def __init__(self, compression: str = "none", window: int = 1024, state: Path | None = None,
                 auth: bool = True) -> None:
        """Start the sender; the receiver starts with :meth:`start_receiver`."""
        self.compression, self.window, self.state = compression, window, state
        self.sender_keys, self.receiver_keys = CurveKeys.pair() if auth else (None, None)
        self.port = free_port()
        self.results = CTX.Queue()
        self.sender_stop, self.receiver_stop = CTX.Event(), CTX.Event()
        self.feed, feed_end = CTX.Pipe(duplex=False)[::-1]
        self.sender = CTX.Process(target=sender_main, args=(f"tcp://127.0.0.1:{self.port}", compression, window,
                                                            feed_end, self.sender_stop, self.results,
                                                            self.sender_keys))
        self.sender.start()
        feed_end.close()
        self.receiver: multiprocessing.process.BaseProcess | None = None
        self.out: Connection | None = None

    def start_receiver(self) -> None:
        self.out, out_end = CTX.Pipe(duplex=False)
        self.receiver = CTX.Process(target=receiver_main, args=(f"tcp://127.0.0.1:{self.port}", self.compression,
                                                                out_end, self.receiver_stop, self.results,
                                                                None if self.state is None else str(self.state),
                                                                self.receiver_keys))
        self.receiver.start()
        out_end.close()

    def feed_in_background(self, messages: list[bytes], close: bool = True) -> threading.Thread:
        def feed() -> None:
            for message in messages:
                self.feed.send_bytes(message)
            if close:
                self.feed.close()

        thread = threading.Thread(target=feed, daemon=True)
        thread.start()
        return thread

    def read(self, count: int, deadline: float) -> list[bytes]:
        """Read up to ``count`` delivered messages, fewer if the receiver's pipe closes."""
        got = []
        while len(got) < count:
            left = deadline - time.monotonic()
            assert left > 0, f"timed out after {len(got)} of {count} messages"
            if self.out.poll(min(left, 0.5)):
                try:
                    got.append(self.out.recv_bytes())
                except EOFError:
                    break
        return got

    def read_until(self, last: bytes, deadline: float) -> list[bytes]:
        """Read delivered messages up to and including ``last``."""
        got = self.read(1, deadline)
        while got[-1] != last:
            got += self.read(1, deadline)
        return got

    def stats(self, count: int) -> dict[str, dict]:
        return dict(self.results.get(timeout=DEADLINE_S) for _ in range(count))

    def close(self) -> None:
        self.sender_stop.set()
        self.receiver_stop.set()
        for proc in (self.sender, self.receiver):
            if proc is not None:
                proc.join(5)
                if proc.is_alive():
                    proc.kill()


@pytest.mark.parametrize(("compression", "auth"), [("none", True), ("lz4", True), ("zstd", True), ("none", False)],
                         ids=["none", "lz4", "zstd", "none-unauthenticated"])
def test_every_message_arrives_once_and_in_order(compression: str, auth: bool) -> None:
    messages = payloads(10_000)
    route = Route(compression, auth=auth)
    try:
        route.start_receiver()
        route.feed_in_background(messages)
        got = route.read(len(messages), time.monotonic() + DEADLINE_S)
        route.sender.join(DEADLINE_S)  # the feed closed: the sender drains and returns
        assert route.sender.exitcode == 0
        route.receiver_stop.set()
        stats = route.stats(2)
    finally:
        route.close()
    assert len(got) == len(messages) and got == messages
    sender, receiver = stats["sender"], stats["receiver"]
    assert sender["sent"] == sender["acked"] == receiver["received"] == len(messages)
    assert receiver["duplicates_dropped"] == 0 and sender["abandoned"] == 0
    assert receiver["frames_received"] <= sender["frames_sent"] < len(messages), "messages that queue up share frames"
    raw = sum(map(len, messages))
    assert sender["payload_bytes"] == receiver["payload_bytes"] == raw
    if compression == "none":
        assert sender["bytes_on_wire"] >= raw
    else:
        assert sender["bytes_on_wire"] < 0.7 * raw, "text-like payloads must shrink on the wire"
        assert sender["compression_ratio"] > 1.5


@pytest.mark.parametrize("keep_state", [True, False], ids=["state-file", "no-state"])
def test_receiver_killed_and_restarted_loses_nothing(tmp_path: Path, keep_state: bool) -> None:
    messages = payloads(10_000, seed=11)
    route = Route("lz4", window=512, state=tmp_path / "quotes.state" if keep_state else None)
    deadline = time.monotonic() + DEADLINE_S
    try:
        route.start_receiver()
        route.feed_in_background(messages)
        first = route.read(3000, deadline)
        route.receiver.kill()  # SIGKILL mid-stream: no goodbye, unacknowledged messages in flight
        route.receiver.join()
        first += route.read(len(messages), deadline)  # what it delivered before dying, up to EOF
        time.sleep(HEARTBEAT_S)
        route.start_receiver()
        second = route.read_until(messages[-1], deadline)
        route.sender.join(DEADLINE_S)
        assert route.sender.exitcode == 0
        route.receiver_stop.set()
        stats = route.stats(2)
    finally:
        route.close()
    # The first receiver delivered a prefix; the second resumes at or shortly before where it stopped.
    assert 3000 <= len(first) < len(messages)
    assert first == messages[: len(first)]
    replayed = len(first) + len(second) - len(messages)
    assert second == messages[len(messages) - len(second):]
    assert replayed >= 0, "a message was lost"
    if keep_state:
        assert replayed <= 1, "with a state file only the delivery under way at the kill may repeat"
    else:
        assert replayed <= 512, "only messages delivered but not acknowledged may repeat"
    assert stats["sender"]["reconnects"] >= 1
    assert stats["sender"]["acked"] == len(messages)


def test_stop_drains_before_returning() -> None:
    messages = payloads(500, seed=3)
    route = Route("zstd")
    try:
        route.feed_in_background(messages, close=False).join()
        time.sleep(0.5)  # let the sender take them all: there is no receiver yet
        route.sender_stop.set()
        time.sleep(3 * HEARTBEAT_S)
        assert route.sender.is_alive(), "the sender must not return with unacknowledged messages"
        route.start_receiver()
        deadline = time.monotonic() + DEADLINE_S
        got = []
        while route.sender.is_alive():  # keep the receiver's pipe flowing until the sender has drained
            got += route.read(1, deadline) if route.out.poll(0.05) else []
        assert route.sender.exitcode == 0
        sender = route.stats(1)["sender"]
        got += route.read(sender["sent"] - len(got), deadline)
    finally:
        route.close()
    assert sender["sent"] == sender["acked"] == len(messages)
    assert got == messages
    assert sender["frames_sent"] < len(messages) // 50, "what waited for the receiver travels in 64 KiB batches"


def test_full_window_stops_taking_from_the_local_channel() -> None:
    port = free_port()
    taken: list[bytes] = []
    delivered: list[bytes] = []

    def recv(_timeout: float) -> bytes:
        taken.append(len(taken).to_bytes(8, "little"))
        return taken[-1]

    sender_stop, receiver_stop = threading.Event(), threading.Event()
    sender_keys, receiver_keys = CurveKeys.pair()
    sender = threading.Thread(target=Sender(f"tcp://127.0.0.1:{port}", "quotes", heartbeat_s=HEARTBEAT_S,
                                            window=16, auth=sender_keys).run, args=(recv, sender_stop), daemon=True)
    sender.start()
    deadline = time.monotonic() + DEADLINE_S
    while len(taken) < 16:
        assert time.monotonic() < deadline
        time.sleep(0.01)
    time.sleep(0.3)
    assert len(taken) == 16, "with nobody acknowledging, the sender holds exactly one window"
    receiver = threading.Thread(target=Receiver(f"tcp://127.0.0.1:{port}", "quotes", heartbeat_s=HEARTBEAT_S,
                                                auth=receiver_keys).run,
                                args=(delivered.append, receiver_stop), daemon=True)
    receiver.start()
    while len(delivered) < 1000:
        assert time.monotonic() < deadline
        time.sleep(0.01)
    sender_stop.set()
    sender.join(DEADLINE_S)
    receiver_stop.set()
    receiver.join(DEADLINE_S)
    assert delivered == taken, "stopping drains every message taken"


def test_receiver_rejects_another_route() -> None:
    port = free_port()
    stop = threading.Event()
    sender_keys, receiver_keys = CurveKeys.pair()
    receiver = threading.Thread(target=Receiver(f"tcp://127.0.0.1:{port}", "quotes", auth=receiver_keys).run,
                                args=(lambda _m: None, stop), daemon=True)
    receiver.start()
    try:
        with pytest.raises(BridgeError, match="route 'orders'"):
            Sender(f"tcp://127.0.0.1:{port}", "orders", heartbeat_s=HEARTBEAT_S,
                   auth=sender_keys).run(lambda _t: None, stop)
    finally:
        stop.set()
        receiver.join(DEADLINE_S)


class Listening:
    """A receiver in a thread that trusts ``keys.peer``, with its live counters and deliveries."""

    def __init__(self, keys: CurveKeys | None) -> None:
        """Start it on a free port."""
        self.endpoint = f"tcp://127.0.0.1:{free_port()}"
        self.stop, self.stats, self.delivered = threading.Event(), BridgeStats(), []
        self.thread = threading.Thread(target=Receiver(self.endpoint, "quotes", heartbeat_s=HEARTBEAT_S,
                                                       auth=keys).run,
                                       args=(self.delivered.append, self.stop, self.stats), daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.stop.set()
        self.thread.join(DEADLINE_S)
        assert not self.thread.is_alive()


def forever(timeout: float) -> bytes:
    time.sleep(min(timeout, 0.01))
    return b"forged"


def run_for(sender: Sender, seconds: float) -> BridgeStats:
    stop = threading.Event()
    timer = threading.Timer(seconds, stop.set)
    timer.start()
    try:
        return sender.run(forever, stop)
    finally:
        timer.cancel()


def test_a_sender_holding_another_nodes_key_is_refused_and_counted() -> None:
    _, receiver_keys = CurveKeys.pair()
    stranger, _ = CurveKeys.pair()
    listening = Listening(receiver_keys)
    try:
        forged = CurveKeys(stranger.public, stranger.secret, receiver_keys.public)  # knows the receiver's public key
        with pytest.raises(BridgeError, match="refused the handshake: it does not trust this node's key"):
            Sender(listening.endpoint, "quotes", heartbeat_s=HEARTBEAT_S, drain_timeout_s=0.5,
                   auth=forged).run(forever, threading.Event())
    finally:
        listening.close()
    assert listening.delivered == [] and listening.stats.received == 0
    assert listening.stats.auth_failures >= 1 and listening.stats.handshake_failures >= 1


def test_a_sender_without_keys_cannot_reach_an_authenticating_receiver() -> None:
    _, receiver_keys = CurveKeys.pair()
    listening = Listening(receiver_keys)
    try:
        stats = run_for(Sender(listening.endpoint, "quotes", heartbeat_s=HEARTBEAT_S, drain_timeout_s=0.2), 1.5)
    finally:
        listening.close()
    assert stats.acked == 0 and listening.delivered == []
    assert listening.stats.handshake_failures >= 1, "the plain handshake is refused and counted"


def test_a_sender_talks_only_to_the_receiver_whose_key_it_was_given() -> None:
    sender_keys, _ = CurveKeys.pair()
    impostor, _ = CurveKeys.pair()
    listening = Listening(CurveKeys(impostor.public, impostor.secret, sender_keys.public))  # trusts the sender
    sender = Sender(listening.endpoint, "quotes", heartbeat_s=HEARTBEAT_S, drain_timeout_s=0.2, auth=sender_keys)
    try:
        with pytest.raises(BridgeError, match="refused the handshake: it does not trust this node's key or is not "
                                              "the target node"):
            run_for(sender, 1.5)
    finally:
        listening.close()
    assert sender.live_stats.acked == 0 and sender.live_stats.sent == 0, "nothing goes to a receiver with another key"
    assert listening.delivered == [] and listening.stats.handshake_failures >= 1
    assert listening.stats.auth_failures >= 1


@pytest.mark.parametrize("auth", [False, True])
def test_a_sender_facing_a_zeromq_receiver_names_the_version_mismatch(auth: bool) -> None:
    """A receiver from before protocol 4 was a ZeroMQ ROUTER (with CURVE): the sender stops and says so."""
    ctx = zmq.Context()
    router = ctx.socket(zmq.ROUTER)
    sender_keys, receiver_keys = CurveKeys.pair()
    if auth:
        router.curve_server = True
        router.curve_publickey, router.curve_secretkey = receiver_keys.public, receiver_keys.secret
    port = router.bind_to_random_port("tcp://127.0.0.1")
    try:
        sender = Sender(f"tcp://127.0.0.1:{port}", "quotes", heartbeat_s=HEARTBEAT_S, drain_timeout_s=0.2,
                        auth=sender_keys if auth else None)
        with pytest.raises(BridgeError, match="speaks ZeroMQ: it is a flowc bridge from before route protocol 4"):
            run_for(sender, DEADLINE_S)
        assert sender.live_stats.sent == 0 and sender.live_stats.handshake_failures == 1
    finally:
        router.close(0)
        ctx.term()


def test_a_zeromq_sender_is_counted_as_another_protocol_version() -> None:
    """A sender from before protocol 4 (a ZeroMQ DEALER) reaches nothing and shows up in the receiver's rejects."""
    listening = Listening(None)
    ctx = zmq.Context()
    dealer = ctx.socket(zmq.DEALER)
    dealer.connect(listening.endpoint)
    try:  # ZeroMQ greets on connect, before any message
        deadline = time.monotonic() + DEADLINE_S
        while listening.stats.rejects.get("version", 0) == 0 and time.monotonic() < deadline:
            time.sleep(0.01)
    finally:
        dealer.close(0)
        ctx.term()
        listening.close()
    assert listening.stats.rejects.get("version", 0) >= 1
    assert listening.stats.handshake_failures >= 1 and listening.delivered == []


@pytest.mark.parametrize("name", ["none", "lz4", "zstd"])
def test_codec_round_trip_and_raw_fallback(name: str) -> None:
    codec = Codec(name)
    for payload in (b"", b"x", b"abc" * 1000, os.urandom(4096)):
        tag, data = codec.encode(payload)
        assert codec.decode(tag, data) == payload
        assert len(data) <= len(payload)


def test_unknown_compression_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown compression 'gzip'"):
        Sender("tcp://127.0.0.1:1", "quotes", compression="gzip")
    assert BridgeStats().as_dict()["compression_ratio"] == 1.0


def test_a_streaming_sender_times_the_route_round_trip() -> None:
    port = free_port()
    sender_keys, receiver_keys = CurveKeys.pair()
    sender_stop, receiver_stop = threading.Event(), threading.Event()
    delivered: list[bytes] = []
    count = [0]

    started = time.monotonic()

    def recv(timeout: float) -> bytes | None:  # one message every 5 ms, for 0.6 s
        if count[0] >= 120:
            raise EOFError
        due = started + 0.005 * count[0]
        if time.monotonic() < due:
            time.sleep(min(timeout, due - time.monotonic()))
            return None
        count[0] += 1
        return count[0].to_bytes(8, "little")

    receiver = threading.Thread(target=Receiver(f"tcp://127.0.0.1:{port}", "quotes", heartbeat_s=HEARTBEAT_S,
                                                auth=receiver_keys).run,
                                args=(delivered.append, receiver_stop), daemon=True)
    receiver.start()
    stats = Sender(f"tcp://127.0.0.1:{port}", "quotes", heartbeat_s=HEARTBEAT_S, auth=sender_keys,
                   drain_timeout_s=5.0).run(recv, sender_stop)
    receiver_stop.set()
    receiver.join(DEADLINE_S)
    assert len(delivered) == 120
    trips = stats.as_dict()["round_trip_us"]
    assert trips["count"] >= 3, "a probe every 0.1 s while streaming"
    assert 0 < trips["p50"] <= trips["p99"] <= trips["p999"] < 1_000_000
