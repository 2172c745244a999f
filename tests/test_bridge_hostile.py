"""Hostile frames at a route's receiver: a real :class:`Receiver` on loopback, a raw connection as a stranger.

Each class of attack from issue 11 has its reproducer here (a forged sender, oversized frames, a codec the
route does not use, decompression bombs, random sessions, a planted state file), and a hypothesis fuzz test
sends random and mutated frames next to a live sender: the receiver survives, delivers only what the real
sender sent, and counts every refused frame under the reason the protocol gives it.

The routes authenticate, as launched routes do: the stranger here holds the source node's own key (a
compromised or broken sender), the worst case the receiver must survive; strangers without that key never get
past the handshake (``test_bridge.py`` and ``test_route_launch_hostile.py`` show them refused and counted).
"""

from __future__ import annotations

import mmap
import multiprocessing
import os
import resource
import secrets
import select
import socket
import threading
import time
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field

import lz4.block
import pytest
import zstandard
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from flowc.runtime.bridge import BridgeError, BridgeStats, Sender
from flowc.runtime.bridge_receiver import MAX_CONNECTIONS, MAX_HANDSHAKES, Receiver
from flowc.runtime.route_keys import CurveKeys
from flowc.runtime.route_link import Link, LinkClosed, parse_endpoint
from flowc.runtime.wire import (
    ACK,
    BATCH,
    DATA,
    HEADER,
    HEARTBEAT,
    HELLO,
    REASONS,
    REJECT,
    RESYNC,
    VERSION,
    WELCOME,
    Codec,
    FrameRejected,
    header,
)

ROUTE = "quotes"
MIB = 1 << 20
DEADLINE_S = 20.0
FORGED = (0xDEADBEEF).to_bytes(4, "little")  # the producer id the forged frames carried
#: The source node's keys (the real sender's, and the stranger's: a peer that stole them) and the receiver's.
SOURCE_KEYS, RECEIVER_KEYS = CurveKeys.pair()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_for(condition, what: str) -> None:
    deadline = time.monotonic() + DEADLINE_S
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.01)


def peak_rss_bytes() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux reports KiB


@dataclass
class Running:
    """A receiver in a thread, its live counters and what it delivered."""

    port: int
    stats: BridgeStats
    stop: threading.Event
    thread: threading.Thread
    delivered: list[bytes] = field(default_factory=list)
    error: list[BaseException] = field(default_factory=list)

    @property
    def endpoint(self) -> str:
        return f"tcp://127.0.0.1:{self.port}"


@pytest.fixture
def receiver() -> Iterator:
    """A factory of receivers, each stopped (and checked to have stopped cleanly) after the test."""
    started: list[Running] = []

    def start(compression: str = "none", **options) -> Running:
        port = free_port()
        run = Running(port, BridgeStats(), threading.Event(), threading.Thread())
        recv = Receiver(run.endpoint, ROUTE, compression, **{"auth": RECEIVER_KEYS, **options})

        def main() -> None:
            try:
                recv.run(run.delivered.append, run.stop, run.stats)
            except BaseException as exc:  # the test fails on any; a thread would swallow it
                run.error.append(exc)

        run.thread = threading.Thread(target=main, daemon=True)
        run.thread.start()
        started.append(run)
        return run

    yield start
    for run in started:
        run.stop.set()
        run.thread.join(DEADLINE_S)
        assert not run.thread.is_alive() and not run.error, run.error


class Stranger:
    """A peer with its own connection that speaks (or mangles) the route protocol."""

    def __init__(self, endpoint: str, keys: CurveKeys | None = SOURCE_KEYS) -> None:
        """Connect to ``endpoint`` with ``keys`` (waiting for the receiver to listen) and finish the handshake.

        Raises:
            LinkClosed: The receiver refused the handshake.
        """
        deadline = time.monotonic() + DEADLINE_S
        while True:
            try:
                sock = socket.create_connection(parse_endpoint(endpoint), timeout=DEADLINE_S)
                break
            except ConnectionRefusedError:
                assert time.monotonic() < deadline, f"nothing listens at {endpoint}"
                time.sleep(0.01)
        self.link = Link(sock, initiator=True, keys=keys, max_frame=64 * MIB)
        self.session = secrets.randbits(64) | 1
        self.seen: list[int] = []  # the kind of every reply, in order
        self.replies: deque[bytes] = deque()
        while not self.link.ready:
            assert time.monotonic() < deadline, "the receiver never finished the handshake"
            self.pump(0.1)

    def pump(self, timeout: float) -> None:
        """Wait up to ``timeout`` for the socket; write what waits, keep the replies that came.

        Raises:
            LinkClosed: The receiver ended the connection (what it sent before is kept).
        """
        link = self.link
        readable, _, _ = select.select([link], [link] if link.pending else [], [], timeout)
        link.flush()
        if readable:
            self.replies.extend(link.read())
            if link.at_eof:
                raise LinkClosed("closed", "the receiver closed the connection")

    def send(self, *parts: bytes) -> None:
        """Send ``parts`` as one frame and wait until the socket has taken it."""
        self.link.send(b"".join(parts))
        deadline = time.monotonic() + DEADLINE_S
        while self.link.pending:
            assert time.monotonic() < deadline, "the receiver stopped reading"
            self.pump(0.1)

    def expect(self, kind: int, session: int | None = None) -> tuple[tuple[int, ...], bytes]:
        """The next reply of ``kind`` (for ``session``), skipping others."""
        deadline = time.monotonic() + DEADLINE_S
        while time.monotonic() < deadline:
            while self.replies:
                frame = self.replies.popleft()
                fields = HEADER.unpack_from(frame)
                self.seen.append(fields[1])
                if fields[1] == kind and (session is None or fields[4] == session):
                    return fields, frame[HEADER.size:]
            self.pump(0.1)
        raise AssertionError(f"no reply of kind {kind}")

    def handshake(self, codec: int = 0, epoch: int = 1) -> int:
        """Say HELLO as a sender would; the sequence the receiver expects."""
        self.send(header(HELLO, codec, epoch, self.session, 1), ROUTE.encode())
        return self.expect(WELCOME, self.session)[0][5]

    def sync(self) -> None:
        """Return once the receiver has handled everything sent so far.

        One connection keeps its order, and a HELLO for another route always earns a REJECT.
        """
        probe = secrets.randbits(64) | 1
        self.send(header(HELLO, 0, 1, probe, 1), b"probe")
        self.expect(REJECT, probe)

    def close(self) -> None:
        self.link.close()


@pytest.fixture
def stranger() -> Iterator:
    made: list[Stranger] = []

    def connect(endpoint: str) -> Stranger:
        made.append(Stranger(endpoint))
        return made[-1]

    yield connect
    for one in made:
        one.close()


class Feed:
    """The local channel of a real sender: numbered messages, a few a millisecond, forever."""

    def __init__(self) -> None:
        """Start counting."""
        self.token = secrets.token_bytes(8)
        self.taken = 0

    def message(self, i: int) -> bytes:
        return b"legit:" + self.token + i.to_bytes(8, "little")

    def recv(self, timeout: float) -> bytes:
        time.sleep(min(timeout, 0.002))
        self.taken += 1
        return self.message(self.taken - 1)

    def check(self, delivered: list[bytes]) -> None:
        """Everything delivered is the real sender's, in order, from the first."""
        assert delivered == [self.message(i) for i in range(len(delivered))]


def start_sender(endpoint: str, feed: Feed, stop: threading.Event, heartbeat_s: float = 0.2,
                 auth: CurveKeys | None = SOURCE_KEYS) -> threading.Thread:
    sender = Sender(endpoint, ROUTE, heartbeat_s=heartbeat_s, drain_timeout_s=2.0, auth=auth)
    thread = threading.Thread(target=sender.run, args=(feed.recv, stop), daemon=True)
    thread.start()
    return thread


def test_forged_sender_cannot_take_over_a_live_route(receiver, stranger) -> None:
    run = receiver(heartbeat_s=5.0)
    feed, stop = Feed(), threading.Event()
    sender = start_sender(run.endpoint, feed, stop)
    try:
        wait_for(lambda: len(run.delivered) >= 50, "the real sender's messages")
        forger = stranger(run.endpoint)
        forger.send(header(HELLO, 0, 1, forger.session, 1), ROUTE.encode())
        for seq in range(1, 101):
            forger.send(header(DATA, 0, 1, forger.session, seq), FORGED + bytes(12))
        forger.sync()
        assert WELCOME not in forger.seen and ACK not in forger.seen
    finally:
        stop.set()
        sender.join(DEADLINE_S)
    feed.check(run.delivered)
    assert not any(m.startswith(FORGED) for m in run.delivered)
    assert run.stats.rejects["busy"] == 1
    assert run.stats.rejects["unknown_session"] >= 100


def flood(endpoint: str, keys: CurveKeys, size: int, count: int, done) -> None:
    """Take the route (nobody else holds it) and send ``count`` frames of ``size`` bytes.

    It runs in a process of its own: each frame is sealed into a copy, and that memory is the stranger's, not the
    receiver's, whose peak is what the test measures.
    """
    forger = Stranger(endpoint, keys)  # this process's module has keys of its own: use the parent's
    try:
        forger.handshake()
        blob = mmap.mmap(-1, size)  # untouched pages until the sealing reads them
        for seq in range(1, count + 1):
            try:
                forger.send(header(DATA, 0, 1, forger.session, seq), blob)
            except LinkClosed:
                break  # the receiver already dropped the connection
        done.wait(DEADLINE_S)
    finally:
        forger.close()


@pytest.mark.parametrize(("size", "count"), [(2 * MIB, 6), (300 * MIB, 1)], ids=["6x2MiB", "300MiB"])
def test_frames_over_the_limit_end_the_connection_not_the_receiver(receiver, size: int, count: int) -> None:
    run = receiver(max_message=MIB)
    before = peak_rss_bytes()
    spawn = multiprocessing.get_context("spawn")
    done = spawn.Event()
    forger = spawn.Process(target=flood, args=(run.endpoint, SOURCE_KEYS, size, count, done),
                           daemon=True)
    forger.start()
    try:
        wait_for(lambda: run.stats.disconnects >= 1, "the receiver to drop the connection")
    finally:
        done.set()
        forger.join(DEADLINE_S)
    assert forger.exitcode == 0, "the stranger had taken the route before it sent the frames"
    assert run.stats.handshake_failures == 0
    assert run.thread.is_alive() and run.delivered == []
    assert peak_rss_bytes() - before < 128 * MIB, "the receiver must not read an oversized frame"
    feed, stop = Feed(), threading.Event()
    sender = start_sender(run.endpoint, feed, stop)  # the receiver still serves the real sender
    try:
        wait_for(lambda: len(run.delivered) >= 20, "delivery after the attack")
    finally:
        stop.set()
        sender.join(DEADLINE_S)
    feed.check(run.delivered)


def test_codec_the_route_does_not_use_is_refused(receiver, stranger) -> None:
    run = receiver("none")
    forger = stranger(run.endpoint)
    forger.send(header(HELLO, 1, 1, forger.session, 1), ROUTE.encode())  # says lz4 on a 'none' route
    assert b"expects 'none'" in forger.expect(REJECT, forger.session)[1]
    forger.handshake()
    forger.send(header(DATA, 1, 1, forger.session, 1), os.urandom(64))  # the crash: exit 3
    assert b"codec id 1" in forger.expect(REJECT, forger.session)[1]
    forger.sync()
    assert run.thread.is_alive() and run.delivered == []
    assert run.stats.rejects["codec"] == 2


def zstd_bomb(size: int) -> bytes:
    """A small zstd frame of ``size`` zero bytes, made without holding them."""
    out = zstandard.ZstdCompressor(level=3).compressobj(size=size)
    chunk = bytes(MIB)
    return b"".join([*(out.compress(chunk) for _ in range(size // MIB)), out.flush()])


@pytest.mark.parametrize("codec", ["lz4", "zstd"])
def test_decompression_bombs_are_refused_unread(receiver, stranger, codec: str) -> None:
    run = receiver(codec, max_message=MIB)
    if codec == "zstd":
        bomb = zstd_bomb(516 * MIB)
        assert len(bomb) < 32_000  # the 16 KB → 516 MB
    else:
        bomb = (516 * MIB).to_bytes(4, "little") + bytes(16_000)  # a block that says it holds 516 MB
    before = peak_rss_bytes()
    forger = stranger(run.endpoint)
    forger.handshake(codec=Codec(codec).id)
    forger.send(header(DATA, Codec(codec).id, 1, forger.session, 1), bomb)
    assert b"limit is 1048576" in forger.expect(REJECT, forger.session)[1]
    assert peak_rss_bytes() - before < 128 * MIB
    assert run.thread.is_alive() and run.delivered == []
    assert run.stats.rejects == {"too_large": 1}


def test_random_sessions_do_not_grow_the_receiver(receiver, stranger) -> None:
    run = receiver(max_peers=32)
    forger = stranger(run.endpoint)
    for _ in range(500):
        forger.send(header(DATA, 0, 1, secrets.randbits(64) | 1, 1), b"x")
    forger.sync()
    assert run.stats.rejects["unknown_session"] == 500
    assert run.stats.peers_evicted == 500 - 32, "the receiver remembers at most max_peers sessions"
    assert run.delivered == []


@pytest.mark.parametrize(("compression", "message"), [("none", os.urandom(2000)), ("zstd", bytes(100_000))],
                         ids=["frame-too-large", "decompresses-too-large"])
def test_a_sender_too_large_for_the_receiving_ring_stops_with_the_reason(receiver, compression: str,
                                                                         message: bytes) -> None:
    """Nodes may give a channel different buffers: the sender must fail loudly, not resend forever."""
    run = receiver(compression, max_message=1000)
    sent = iter([message])
    sender = Sender(run.endpoint, ROUTE, compression, heartbeat_s=0.2, drain_timeout_s=1.0, auth=SOURCE_KEYS)
    stop, raised = threading.Event(), []

    def main() -> None:
        try:
            sender.run(lambda timeout: next(sent, None) or time.sleep(timeout), stop)
        except BridgeError as exc:
            raised.append(exc)

    thread = threading.Thread(target=main, daemon=True)
    thread.start()
    thread.join(DEADLINE_S)
    stop.set()
    assert raised, "the sender kept resending a message the receiver can never take"
    assert "at most 1000" in str(raised[0]) or "limit is 1000" in str(raised[0])
    assert run.delivered == [] and run.thread.is_alive()


@pytest.mark.parametrize("compression", ["none", "lz4"])
def test_a_message_as_large_as_the_receiving_ring_takes_travels_in_one_frame(receiver, compression: str) -> None:
    """Data goes as one frame, header included: the receiver's frame limit leaves room for the header."""
    run = receiver(compression, max_message=1000)
    messages = [os.urandom(1000), os.urandom(999), b"x" * 1000]  # incompressible ones travel raw, at full size
    sent = iter(messages)
    stop = threading.Event()
    sender = Sender(run.endpoint, ROUTE, compression, heartbeat_s=0.2, drain_timeout_s=2.0, auth=SOURCE_KEYS)
    thread = threading.Thread(target=sender.run, args=(lambda timeout: next(sent, None) or time.sleep(timeout), stop),
                              daemon=True)
    thread.start()
    try:
        wait_for(lambda: len(run.delivered) == len(messages), "the three messages")
        disconnects = run.stats.disconnects  # before the sender stops and closes its connection
    finally:
        stop.set()
        thread.join(DEADLINE_S)
    assert run.delivered == messages
    assert disconnects == 0 and run.stats.rejected == 0


def test_state_file_planted_as_a_link_is_refused(tmp_path) -> None:
    victim = tmp_path / "victim"
    victim.write_bytes(b"precious")
    link = tmp_path / "quotes.state"
    link.symlink_to(victim)
    receiver = Receiver(f"tcp://127.0.0.1:{free_port()}", ROUTE, state_path=link)
    with pytest.raises(BridgeError, match="cannot open the route state"):
        receiver.run(lambda _m: None, threading.Event())
    assert victim.read_bytes() == b"precious"


def test_state_file_writable_by_others_is_refused(tmp_path) -> None:
    state = tmp_path / "quotes.state"
    state.write_bytes(b"")
    state.chmod(0o666)
    receiver = Receiver(f"tcp://127.0.0.1:{free_port()}", ROUTE, state_path=state)
    with pytest.raises(BridgeError, match="writable only by it"):
        receiver.run(lambda _m: None, threading.Event())


LIMIT = 512


@pytest.mark.parametrize("name", ["none", "lz4", "zstd"])
@settings(max_examples=300, deadline=None)
@given(data=st.data())
def test_decode_returns_a_bounded_message_or_rejects(name: str, data) -> None:
    """Random and mutated payloads under every codec id: a message within the limit, or FrameRejected."""
    codec = Codec(name, limit=LIMIT)
    original = data.draw(st.binary(max_size=64), label="unit") * data.draw(st.integers(0, 200), label="repeat")
    tag, payload = Codec(name, limit=4 * LIMIT).encode(original)
    payload = bytearray(data.draw(st.one_of(st.just(payload), st.binary(max_size=256)), label="payload"))
    for index, value in data.draw(st.lists(st.tuples(st.integers(0, 10_000), st.integers(0, 255)), max_size=4)):
        if payload:
            payload[index % len(payload)] = value
    tag = data.draw(st.sampled_from([tag, 0, 1, 2, 3, 255]), label="codec id")
    try:
        message = codec.decode(tag, bytes(payload))
    except FrameRejected as exc:
        assert exc.reason in REASONS
    else:
        assert len(message) <= LIMIT
        assert tag in (0, codec.id)


KINDS = st.sampled_from([DATA, BATCH, HELLO, WELCOME, ACK, HEARTBEAT, RESYNC, REJECT, 0, 9, 255])
PAYLOADS = st.one_of(st.binary(max_size=256), st.just(ROUTE.encode()), st.just(b"probe"),
                     st.binary(min_size=1, max_size=64).map(lambda b: lz4.block.compress(b * 40, store_size=True)),
                     st.binary(min_size=1, max_size=64).map(lambda b: zstandard.ZstdCompressor().compress(b * 40)))


@st.composite
def frames(draw) -> list[bytes]:
    """What a stranger might send: protocol-shaped frames, mutated ones, and plain junk."""
    shape = draw(st.integers(0, 4))
    if shape == 0:
        return draw(st.lists(st.binary(max_size=64), min_size=1, max_size=4))
    if shape == 1:  # a well-formed HELLO for this route: a stranger trying to become its sender
        return [header(HELLO, draw(st.sampled_from([0, 0, 1])), draw(st.integers(0, 2**32 - 1)),
                       draw(st.integers(0, 2**64 - 1)), draw(st.integers(0, 2**64 - 1))), ROUTE.encode()]
    head = bytearray(HEADER.pack(draw(st.sampled_from([VERSION, VERSION, 0, 2, 255])), draw(KINDS),
                                 draw(st.integers(0, 3)), draw(st.integers(0, 2**32 - 1)),
                                 draw(st.integers(0, 2**64 - 1)), draw(st.integers(0, 2**64 - 1))))
    for index, value in draw(st.lists(st.tuples(st.integers(0, 23), st.integers(0, 255)), max_size=2)):
        head[index] = value
    if draw(st.integers(0, 9)) == 0:
        head = head[: draw(st.integers(0, 23))] or head + b"\0"
    return [bytes(head), draw(PAYLOADS)]


def expected_reason(parts: list[bytes]) -> str:
    """The reason the protocol gives a stranger's message (one the real sender's session never has).

    The parts travel as one frame (:meth:`Stranger.send`): a header, then the payload.
    """
    frame = b"".join(parts)
    if len(frame) < HEADER.size:
        return "malformed"
    version, kind, codec, *_ = HEADER.unpack_from(frame)
    if version != VERSION:
        return "version"
    if kind == HELLO:
        if frame[HEADER.size:].decode(errors="replace") != ROUTE:
            return "route"
        return "codec" if codec != 0 else "busy"
    return "unknown_session" if kind in (DATA, BATCH, HEARTBEAT) else "kind"


@pytest.fixture(scope="module")
def live_route() -> Iterator[tuple[Running, Feed]]:
    """One receiver with a real sender streaming into it for the whole fuzz run."""
    port = free_port()
    run = Running(port, BridgeStats(), threading.Event(), threading.Thread())
    # A sender silent for 15 s could be replaced.
    recv = Receiver(run.endpoint, ROUTE, heartbeat_s=5.0, auth=RECEIVER_KEYS)
    run.thread = threading.Thread(target=recv.run, args=(run.delivered.append, run.stop, run.stats), daemon=True)
    run.thread.start()
    feed, sender_stop = Feed(), threading.Event()
    sender = start_sender(run.endpoint, feed, sender_stop, heartbeat_s=1.0)
    wait_for(lambda: len(run.delivered) >= 10, "the real sender's first messages")
    yield run, feed
    sender_stop.set()
    sender.join(DEADLINE_S)
    run.stop.set()
    run.thread.join(DEADLINE_S)
    assert not run.thread.is_alive()
    feed.check(run.delivered)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(batch=st.lists(frames(), min_size=1, max_size=20))
def test_fuzzed_frames_are_counted_and_never_delivered(live_route, batch: list[list[bytes]]) -> None:
    run, feed = live_route
    before = dict(run.stats.rejects)
    forger = Stranger(run.endpoint)
    try:
        for parts in batch:
            forger.send(*parts)
        forger.sync()
    finally:
        forger.close()
    assert run.thread.is_alive()
    feed.check(list(run.delivered))
    wanted: dict[str, int] = {"route": 1}  # the sync probe
    for parts in batch:
        reason = expected_reason(parts)
        wanted[reason] = wanted.get(reason, 0) + 1
    counted = {reason: run.stats.rejects.get(reason, 0) - before.get(reason, 0) for reason in REASONS}
    for reason in REASONS:
        if reason == "unknown_session":  # the real sender's own stale frames after a reconnect count here too
            assert counted[reason] >= wanted.get(reason, 0)
        else:
            assert counted[reason] == wanted.get(reason, 0), (reason, counted, wanted)


def silent_connections(endpoint: str, count: int) -> list[socket.socket]:
    """``count`` TCP connections to ``endpoint`` that never send a byte (waiting for it to listen)."""
    address = parse_endpoint(endpoint)
    made: list[socket.socket] = []
    deadline = time.monotonic() + DEADLINE_S
    while len(made) < count:
        try:
            made.append(socket.create_connection(address, timeout=DEADLINE_S))
        except ConnectionRefusedError:
            assert time.monotonic() < deadline, f"nothing listens at {endpoint}"
            time.sleep(0.01)
    return made


def closed_by_peer(sock: socket.socket) -> bool:
    """Whether the other end closed ``sock`` (it never sends anything else)."""
    return bool(select.select([sock], [], [], 0)[0]) and sock.recv(1) == b""


def test_half_open_connections_cannot_pile_up(receiver) -> None:
    """Connections that never finish the handshake: the oldest beyond the cap go at once, the rest at the deadline."""
    run = receiver(handshake_s=1.0)
    silent = silent_connections(run.endpoint, MAX_HANDSHAKES + 6)
    try:
        wait_for(lambda: sum(closed_by_peer(s) for s in silent[:6]) == 6, "the six oldest to be closed")
        assert not any(closed_by_peer(s) for s in silent[6:]), "the newest are still within their deadline"
        wait_for(lambda: run.stats.handshake_failures == MAX_HANDSHAKES + 6, "every handshake to time out")
        feed, stop = Feed(), threading.Event()
        sender = start_sender(run.endpoint, feed, stop)
        wait_for(lambda: len(run.delivered) >= 20, "the real sender, after the strangers")
        stop.set()
        sender.join(DEADLINE_S)
    finally:
        for sock in silent:
            sock.close()
    feed.check(run.delivered)
    assert run.stats.auth_failures == 0 and run.stats.rejected == 0


def test_a_route_without_keys_holds_a_bounded_number_of_connections(receiver) -> None:
    """Without keys every connection is ready at once: beyond the cap the oldest stranger goes, never the sender."""
    run = receiver(auth=None)
    feed, stop = Feed(), threading.Event()
    sender = start_sender(run.endpoint, feed, stop, auth=None)
    silent: list[socket.socket] = []
    try:
        wait_for(lambda: len(run.delivered) >= 10, "the real sender's first messages")
        silent = silent_connections(run.endpoint, MAX_CONNECTIONS + 20)
        wait_for(lambda: sum(closed_by_peer(s) for s in silent[:21]) == 21, "the oldest strangers to be closed")
        assert not any(closed_by_peer(s) for s in silent[21:])
        delivered = len(run.delivered)
        wait_for(lambda: len(run.delivered) >= delivered + 20, "the real sender to go on")
    finally:
        stop.set()
        sender.join(DEADLINE_S)
        for sock in silent:
            sock.close()
    feed.check(run.delivered)
    assert run.stats.reconnects == 0, "the sender's connection was never the one closed"
