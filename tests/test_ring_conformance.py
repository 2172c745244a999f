"""The ring conformance suite: every ordered pair of implementations (Python, C, Rust) on real ``/dev/shm`` rings.

For each pair, a producer program of one implementation and a consumer program of the other run as separate
processes: the four channel kinds (two producers are two processes of the producer's implementation, two consumers
two of the consumer's) under both policies through a ring small enough to wrap with PAD records, the largest
message and one byte more, close and drain, a producer and a consumer killed mid-stream, and a header of another
version. Messages are ``ring_peer_python.message(k, who, max_message)``: the consumers write what they receive as
frames, and this file checks every byte, per-producer order, and the segment's counters (docs/ring-abi.md).

Shared delivery (``delivery: shared``, section 12) mixes the implementations in one consumer group: a Python, a C
and a Rust consumer share a ring fed by producers of each implementation, each message reaching exactly one of them;
producers of each implementation on a small ring whose space consumers of the two others release; and a consumer of
each implementation killed mid-stream while the others carry on.
"""

from __future__ import annotations

import itertools
import signal
import struct
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from types import SimpleNamespace

import pytest

from flowc.runtime import _ring
from flowc.runtime.ring import Ring
from ring_peer_python import message
from ring_peers import (
    DATA_WAITERS,
    PYTHON_PEER,
    SPACE_WAITERS,
    actor_env,
    c_peer,
    frames,
    peek_u32,
    ring_maker,
    rust_programs,
    unframe,
    wait_until,
)

IMPLEMENTATIONS = ("python", "c", "rust")
PAIRS = [(p, c) for p, c in itertools.product(IMPLEMENTATIONS, repeat=2) if p != c]
KINDS = {"SPSC": (1, 1), "MPSC": (2, 1), "SPMC": (1, 2), "MPMC": (2, 2)}
#: Messages per producer through a 4 KiB ring (max_message 1016): a megabyte, some 250 times its capacity.
COUNT = 2000
#: A slow consumer sleeps this long after each message.
PACE_US = 300
#: A stream long enough to be killed in the middle of: with a paced consumer it lasts over a second.
LONG = 4000
#: Every wait of a peer ends by then (their own timeouts are 20 s), so a protocol bug fails instead of hanging.
WAIT_S = 30.0


def pair_id(pair: tuple[str, str]) -> str:
    """Name a (producer, consumer) pair in test ids: ``python->c``."""
    return "->".join(pair)


@pytest.fixture(scope="session")
def peers(tmp_path_factory: pytest.TempPathFactory) -> SimpleNamespace:
    """The C peer and the Rust programs, built once per session, and a directory for the Rust producers' input."""
    return SimpleNamespace(c=c_peer(tmp_path_factory), rust=rust_programs(),
                           work=tmp_path_factory.mktemp("conformance"))


@pytest.fixture
def make_ring() -> Iterator[Callable[..., Ring]]:
    """Create rings with names unique to this process and test; close and unlink them afterwards."""
    with ring_maker("flowc-conf") as make:
        yield make


def start_producer(peers: SimpleNamespace, impl: str, ring: Ring, index: int, count: int,
                   mode: str = "send") -> subprocess.Popen[bytes]:
    """Start producer ``index`` of ``impl`` sending ``message(k, index)`` for ``k < count``.

    ``mode="oversize"`` sends the largest message and then one byte more instead (``count`` is ignored).

    Args:
        peers: The built programs.
        impl: ``python``, ``c`` or ``rust``.
        ring: The ring (its ``max_message`` sizes the messages).
        index: Producer index, also the producer id in the messages.
        count: Number of messages.
        mode: ``send`` or ``oversize``.

    Returns:
        The running process (stdout and stderr piped).
    """
    pipes = {"stdout": subprocess.PIPE, "stderr": subprocess.PIPE}
    args = [ring.name, str(index)] + ([str(count), str(index)] if mode == "send" else [])
    if impl == "python":
        return subprocess.Popen([sys.executable, str(PYTHON_PEER), mode, *args], **pipes)
    if impl == "c":
        return subprocess.Popen([str(peers.c), mode, *args], **pipes)
    largest = ring.max_message
    messages = ([message(k, index, largest) for k in range(count)] if mode == "send"
                else [message(49, 0, largest), b"\0" * (largest + 1)])
    source = peers.work / f"{ring.name}-{index}.frames"
    source.write_bytes(frames(messages))
    with open(source, "rb") as stdin:
        return subprocess.Popen([str(peers.rust.producer), "--timeout", "20"],
                                env=actor_env(ring.name, index, "outputs"), stdin=stdin, **pipes)


def start_consumer(peers: SimpleNamespace, impl: str, ring: Ring, index: int, tmp_path: Path,
                   pace_us: int = 0) -> SimpleNamespace:
    """Start consumer ``index`` of ``impl``: it writes every message as a frame until the ring is closed and drained.

    Args:
        peers: The built programs.
        impl: ``python``, ``c`` or ``rust``.
        ring: The ring.
        index: Consumer index.
        tmp_path: Where its output goes.
        pace_us: Microseconds it sleeps after each message (a slow consumer).

    Returns:
        ``proc`` (stderr piped) and ``out``, the file its frames go to.
    """
    out = tmp_path / f"{ring.name}-consumer-{index}.frames"
    if impl == "rust":
        argv = [str(peers.rust.consumer), "--timeout", "20", "--pace-us", str(pace_us)]
    else:
        argv = [*([sys.executable, str(PYTHON_PEER)] if impl == "python" else [str(peers.c)]), "dump", ring.name,
                str(index), str(pace_us)]
    with open(out, "wb") as sink:
        proc = subprocess.Popen(argv, env=actor_env(ring.name, index, "inputs"), stdout=sink, stderr=subprocess.PIPE)
    return SimpleNamespace(proc=proc, out=out)


def finish(proc: subprocess.Popen[bytes]) -> str:
    """Wait for a producer that must succeed; its stderr."""
    _, err = proc.communicate(timeout=WAIT_S)
    assert proc.returncode == 0, err.decode()
    return err.decode()


def drained(consumer: SimpleNamespace) -> list[bytes]:
    """Wait for a consumer that must finish cleanly (closed and drained); what it received."""
    _, err = consumer.proc.communicate(timeout=WAIT_S)
    assert consumer.proc.returncode == 0, err.decode()
    return unframe(consumer.out.read_bytes())


def refused(proc: subprocess.Popen[bytes]) -> str:
    """Wait for a program that must fail with an error exit (never a signal); its stdout and stderr."""
    out, err = proc.communicate(timeout=WAIT_S)
    text = ((out or b"") + (err or b"")).decode()
    assert proc.returncode > 0, (proc.returncode, text)
    return text


def sequences(got: list[bytes], ring: Ring, producers: int) -> list[list[int]]:
    """The sequence numbers each producer's messages arrived with, after checking every message byte for byte."""
    seqs: list[list[int]] = [[] for _ in range(producers)]
    for data in got:
        k, who = struct.unpack_from("<II", data)
        assert who < producers and data == message(k, who, ring.max_message), f"message {k} of {who} corrupt"
        seqs[who].append(k)
    return seqs


def rec_size(length: int) -> int:
    """Bytes a record of ``length`` takes in the ring (docs/ring-abi.md section 3)."""
    return 8 + (length + 7) // 8 * 8


def mid_stream(peers: SimpleNamespace, ring: Ring, tmp_path: Path,
               pair: tuple[str, str]) -> tuple[SimpleNamespace, subprocess.Popen[bytes]]:
    """Start a paced consumer and a producer of :data:`LONG` messages; return them 100 messages into the stream."""
    producer_impl, consumer_impl = pair
    reader = start_consumer(peers, consumer_impl, ring, 0, tmp_path, pace_us=PACE_US)
    writer = start_producer(peers, producer_impl, ring, 0, LONG)
    wait_until(lambda: ring.stats()["received"] >= 100, "the consumer to receive 100 messages")
    return reader, writer


pairs = pytest.mark.parametrize("pair", PAIRS, ids=pair_id)


@pairs
@pytest.mark.parametrize("kind", KINDS)
def test_backpressure_delivers_everything_in_order(peers: SimpleNamespace, make_ring: Callable[..., Ring],
                                                   tmp_path: Path, pair: tuple[str, str], kind: str) -> None:
    """Every consumer gets every message of every producer exactly once, in each producer's order, through wraps."""
    producer_impl, consumer_impl = pair
    producers, consumers = KINDS[kind]
    ring = make_ring(4096, producers, consumers)
    readers = [start_consumer(peers, consumer_impl, ring, j, tmp_path) for j in range(consumers)]
    for writer in [start_producer(peers, producer_impl, ring, i, COUNT) for i in range(producers)]:
        finish(writer)
    ring.close_writers()
    for reader in readers:  # broadcast: every consumer sees every message, each producer's in order
        assert sequences(drained(reader), ring, producers) == [list(range(COUNT))] * producers
    stats = ring.stats()
    assert stats["sent_per_producer"] == [COUNT] * producers
    assert stats["received_per_consumer"] == [COUNT * producers] * consumers
    assert stats["dropped"] == 0 and not stats["broken"]
    records = producers * sum(rec_size(len(message(k, 0, ring.max_message))) for k in range(COUNT))
    assert records > 50 * ring.buffer_size, "the ring wrapped around many times"
    assert stats["published_bytes"] > records, "PAD records filled the ends of the data area"


@pairs
@pytest.mark.parametrize("kind", KINDS)
def test_drop_oldest_gives_slow_and_late_consumers_an_ordered_subsequence(
        peers: SimpleNamespace, make_ring: Callable[..., Ring], tmp_path: Path, pair: tuple[str, str],
        kind: str) -> None:
    """A slow (paced) and a late consumer get an ordered subsequence; received + dropped = sent, per consumer."""
    producer_impl, consumer_impl = pair
    producers, consumers = KINDS[kind]
    ring = make_ring(4096, producers, consumers, policy="drop_oldest")
    slow = start_consumer(peers, consumer_impl, ring, 0, tmp_path, pace_us=PACE_US)
    for writer in [start_producer(peers, producer_impl, ring, i, COUNT) for i in range(producers)]:
        finish(writer)  # drop_oldest producers never wait for consumers
    ring.close_writers()
    late = [start_consumer(peers, consumer_impl, ring, j, tmp_path) for j in range(1, consumers)]
    got = [drained(c) for c in [slow, *late]]
    stats = ring.stats()
    assert not stats["broken"] and stats["sent_per_producer"] == [COUNT] * producers
    for j, messages in enumerate(got):
        seqs = sequences(messages, ring, producers)
        assert all(a < b for s in seqs for a, b in itertools.pairwise(s)), "per-producer order, no duplicates"
        assert stats["received_per_consumer"][j] == len(messages) > 0
        assert stats["dropped_per_consumer"][j] > 0, "the consumer fell behind"
        assert stats["received_per_consumer"][j] + stats["dropped_per_consumer"][j] == COUNT * producers
        if j > 0:  # a consumer that starts after the producers got the newest messages: a suffix of each
            assert all(s == list(range(COUNT - len(s), COUNT)) for s in seqs)


@pairs
def test_largest_message_passes_and_one_byte_more_is_refused(peers: SimpleNamespace,
                                                             make_ring: Callable[..., Ring], tmp_path: Path,
                                                             pair: tuple[str, str]) -> None:
    """A message of exactly max_message arrives intact; max_message + 1 is refused by the producer, not sent."""
    producer_impl, consumer_impl = pair
    ring = make_ring(4096)
    largest = ring.max_message
    reader = start_consumer(peers, consumer_impl, ring, 0, tmp_path)
    error = refused(start_producer(peers, producer_impl, ring, 0, 0, mode="oversize"))
    assert f"message of {largest + 1} bytes exceeds this ring's maximum of {largest}" in error
    ring.close_writers()
    assert drained(reader) == [message(49, 0, largest)] and len(message(49, 0, largest)) == largest
    stats = ring.stats()
    assert stats["sent_per_producer"] == [1] and not stats["broken"]


@pairs
def test_close_with_messages_pending_drains_them_then_reports_closed(peers: SimpleNamespace,
                                                                     make_ring: Callable[..., Ring],
                                                                     tmp_path: Path, pair: tuple[str, str]) -> None:
    """After close the consumer gets every pending message, then finishes; a later send is refused."""
    producer_impl, consumer_impl = pair
    ring = make_ring(1 << 16)  # holds all 40 messages: nobody reads until the writers are closed
    finish(start_producer(peers, producer_impl, ring, 0, 40))
    ring.close_writers()
    assert ring.stats()["received"] == 0
    assert sequences(drained(start_consumer(peers, consumer_impl, ring, 0, tmp_path)), ring, 1) == [list(range(40))]
    published = ring.stats()["published_bytes"]
    assert "closed" in refused(start_producer(peers, producer_impl, ring, 0, 1))
    assert ring.stats()["published_bytes"] == published, "a send after close writes nothing"


@pairs
def test_producer_killed_mid_stream_leaves_an_intact_prefix(peers: SimpleNamespace, make_ring: Callable[..., Ring],
                                                            tmp_path: Path, pair: tuple[str, str]) -> None:
    """SIGKILL a producer mid-stream: its consumer has an intact, in-order prefix and finishes once closed."""
    ring = make_ring(4096)
    reader, writer = mid_stream(peers, ring, tmp_path, pair)
    writer.send_signal(signal.SIGKILL)
    assert writer.wait(timeout=WAIT_S) == -signal.SIGKILL, "killed before it finished"
    sent = ring.stats()["sent_per_producer"][0]
    ring.close_writers()  # as the launcher does once a writer is gone: the consumer must not hang
    (seqs,) = sequences(drained(reader), ring, 1)
    assert seqs == list(range(len(seqs))) and sent <= len(seqs) <= sent + 1 < LONG
    assert not ring.stats()["broken"]


@pairs
def test_consumer_killed_mid_stream_leaves_the_producer_intact(peers: SimpleNamespace,
                                                               make_ring: Callable[..., Ring], tmp_path: Path,
                                                               pair: tuple[str, str]) -> None:
    """SIGKILL a consumer mid-stream: the blocked producer returns on close, and what is unread is intact."""
    ring = make_ring(4096)
    reader, writer = mid_stream(peers, ring, tmp_path, pair)
    reader.proc.send_signal(signal.SIGKILL)
    assert reader.proc.wait(timeout=WAIT_S) == -signal.SIGKILL
    wait_until(lambda: peek_u32(ring.name, SPACE_WAITERS) > 0, "the producer to sleep on a full ring")
    ring.close_writers()
    assert "closed" in refused(writer), "the blocked send returned when the ring was closed"
    stats = ring.stats()
    sent = stats["sent_per_producer"][0]
    assert not stats["broken"] and sent < LONG
    # what the dead consumer left unread is intact and ends with the producer's last message
    rx, rest = ring.consumer(0), []
    while (data := rx.recv(timeout=0)) is not None:
        rest.append(data)
    (seqs,) = sequences(rest, ring, 1)
    assert seqs and seqs == list(range(sent - len(seqs), sent))


@pairs
def test_a_header_of_another_version_is_refused(peers: SimpleNamespace, make_ring: Callable[..., Ring],
                                                tmp_path: Path, pair: tuple[str, str]) -> None:
    """Version 2 in the header: both programs refuse to attach with an error exit, touching nothing."""
    ring = make_ring(4096)
    with open(f"/dev/shm/{ring.name}", "r+b") as segment:
        segment.seek(_ring.LAYOUT["version"])
        segment.write(struct.pack("<I", 2))
    producer_impl, consumer_impl = pair
    consumer = start_consumer(peers, consumer_impl, ring, 0, tmp_path)
    for proc in (start_producer(peers, producer_impl, ring, 0, 1), consumer.proc):
        assert "not a valid flowc ring segment: unsupported version" in refused(proc)
    assert consumer.out.read_bytes() == b""
    assert peek_u32(ring.name, _ring.LAYOUT["version"]) == 2 and peek_u32(ring.name, _ring.LAYOUT["reserve"]) == 0


# ---------------------------------------------------------------- shared delivery: one consumer group, mixed


def shared_shares(got: list[list[bytes]], ring: Ring, producers: int, count: int) -> list[list[list[int]]]:
    """Check the consumers' shares of a shared ring: each share in order per producer, every message once.

    Args:
        got: What each consumer received.
        ring: The ring (its ``max_message`` sizes the messages).
        producers: Number of producers.
        count: Messages each producer sent.

    Returns:
        Each share's sequence numbers, per producer (every message checked byte for byte).
    """
    shares = [sequences(messages, ring, producers) for messages in got]
    for share in shares:
        assert all(a < b for s in share for a, b in itertools.pairwise(s)), "per-producer order within a consumer"
    for who in range(producers):
        assert sorted(k for share in shares for k in share[who]) == list(range(count)), "exactly once, none lost"
    return shares


def drain_group(writers: list, readers: list, ring: Ring) -> tuple[list[list[bytes]], dict]:
    """Let ``writers`` (two, ``COUNT`` messages each) finish, close the ring, and check the group's shares.

    Returns:
        What each reader received, and the ring's counters (whose per-consumer counts were checked against it).
    """
    for writer in writers:
        finish(writer)
    ring.close_writers()
    got = [drained(reader) for reader in readers]
    shared_shares(got, ring, 2, COUNT)
    stats = ring.stats()
    assert stats["received_per_consumer"] == [len(share) for share in got]
    return got, stats


@pytest.mark.parametrize("producer_impl", IMPLEMENTATIONS)
def test_shared_delivery_gives_each_message_to_one_consumer_of_any_implementation(
        peers: SimpleNamespace, make_ring: Callable[..., Ring], tmp_path: Path, producer_impl: str) -> None:
    """Python, C and Rust consumers take turns on one shared ring fed by two producers through wraps."""
    ring = make_ring(4096, 2, 3, delivery="shared")
    group = ("rust", "c", "python")
    readers = [start_consumer(peers, impl, ring, j, tmp_path, pace_us=100) for j, impl in enumerate(group)]
    wait_until(lambda: peek_u32(ring.name, DATA_WAITERS) == len(group), "every consumer to wait for data")
    got, stats = drain_group([start_producer(peers, producer_impl, ring, i, COUNT) for i in range(2)], readers, ring)
    assert all(len(share) > 0 for share in got), f"every consumer took part: {[len(s) for s in got]}"
    assert stats["sent_per_producer"] == [COUNT, COUNT] and stats["dropped"] == 0 and not stats["broken"]
    assert stats["published_bytes"] > 50 * ring.buffer_size, "the ring wrapped around many times"


@pytest.mark.parametrize("producer_impl", IMPLEMENTATIONS)
def test_shared_delivery_producer_waits_for_consumers_of_the_other_implementations(
        peers: SimpleNamespace, make_ring: Callable[..., Ring], tmp_path: Path, producer_impl: str) -> None:
    """A 512-byte shared ring: the producers block until consumers of the two other implementations release."""
    ring = make_ring(512, 2, 2, delivery="shared")
    group = [impl for impl in IMPLEMENTATIONS if impl != producer_impl]
    writers = [start_producer(peers, producer_impl, ring, i, COUNT) for i in range(2)]
    wait_until(lambda: peek_u32(ring.name, SPACE_WAITERS) > 0, "a producer to sleep on the full ring")
    readers = [start_consumer(peers, impl, ring, j, tmp_path) for j, impl in enumerate(group)]
    _, stats = drain_group(writers, readers, ring)
    assert stats["backpressure_waits"] > 0 and stats["dropped"] == 0 and not stats["broken"]
    assert stats["published_bytes"] > 200 * ring.buffer_size
    # the group released everything: the producers' space check looks at consumer line 0's cursor alone
    assert stats["cursor_per_consumer"][0] == stats["published_bytes"]


def complete_frames(data: bytes) -> list[bytes]:
    """The whole frames at the start of ``data``: a killed program's output may end inside one."""
    messages, at = [], 0
    while at + 4 <= len(data) and at + 4 + (size := struct.unpack_from("<I", data, at)[0]) <= len(data):
        messages.append(data[at + 4:at + 4 + size])
        at += 4 + size
    return messages


@pytest.mark.parametrize("killed", IMPLEMENTATIONS)
def test_shared_consumer_killed_mid_stream_leaves_the_rest_to_the_others(
        peers: SimpleNamespace, make_ring: Callable[..., Ring], tmp_path: Path, killed: str) -> None:
    """SIGKILL one consumer of a mixed group: the others take the rest; nothing is delivered twice."""
    ring = make_ring(4096, 1, 3, delivery="shared")
    group = [killed, *(impl for impl in IMPLEMENTATIONS if impl != killed)]
    readers = [start_consumer(peers, impl, ring, j, tmp_path, pace_us=PACE_US) for j, impl in enumerate(group)]
    writer = start_producer(peers, "c", ring, 0, LONG)
    wait_until(lambda: ring.stats()["received_per_consumer"][0] >= 100, "the first consumer to take 100 messages")
    readers[0].proc.send_signal(signal.SIGKILL)
    assert readers[0].proc.wait(timeout=WAIT_S) == -signal.SIGKILL
    finish(writer)
    ring.close_writers()
    survivors = [drained(reader) for reader in readers[1:]]
    shares = [sequences(messages, ring, 1)[0] for messages in survivors]
    assert all(a < b for s in shares for a, b in itertools.pairwise(s)), "in order within each consumer"
    taken = sorted(k for s in shares for k in s)
    assert len(taken) == len(set(taken)), "no message twice"
    # what the killed one wrote out before it died (its output is buffered: a part of what it took)
    dead = set(sequences(complete_frames(readers[0].out.read_bytes()), ring, 1)[0])
    assert not dead & set(taken), "nothing the killed consumer took went to another"
    stats = ring.stats()
    assert not stats["broken"] and stats["sent_per_producer"] == [LONG]
    assert stats["received_per_consumer"][1:] == [len(s) for s in shares]
    # each message was taken once: counted received, or dropped (its taker died copying it); the killed one may
    # have released its last message and died before counting it
    assert LONG - 1 <= stats["received"] + stats["dropped"] <= LONG
