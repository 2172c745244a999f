"""The Rust crate ``rust/flowc-ring`` speaks the ring protocol of ``flowc.runtime._ring`` byte for byte.

Rings are created by Python; the crate's two actor programs attach them by name through ``FLOWC_CHANNELS``:
``flowc-ring-producer`` sends the length-prefixed frames of its stdin, ``flowc-ring-consumer`` writes what it
receives to stdout the same way. A corrupt segment must make them exit 1 with a reason, never die of a signal;
SIGTERM makes them finish cleanly (the producer stops sending, the consumer drains what is pending) and exit 0.
On a shared ring (``delivery: shared``) Rust and Python consumers form one group: each message reaches one of them.
"""

from __future__ import annotations

import json
import os
import signal
import struct
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from types import SimpleNamespace

import pytest

from flowc.runtime import _ring
from flowc.runtime.ring import Ring
from ring_peers import (
    DATA_WAITERS,
    SPACE_WAITERS,
    TAKEN,
    actor_env,
    consumer_line,
    frames,
    peek_u32,
    ring_maker,
    rust_programs,
    unframe,
    wait_until,
)

LAYOUT = _ring.LAYOUT
#: Every wait of the Rust side ends by then, so a protocol bug fails the test instead of hanging it.
STEP_S = 20.0


@pytest.fixture(scope="session")
def programs() -> SimpleNamespace:
    """The crate's programs, built once per session."""
    return rust_programs()


@pytest.fixture
def make_ring() -> Iterator[Callable[..., Ring]]:
    """Rings for one test, unlinked after it."""
    with ring_maker("flowc-rust") as make:
        yield make


def payloads(count: int, limit: int, tag: int = 0) -> list[bytes]:
    """``count`` messages of every size from 0 to ``limit``, each starting with its tag and sequence number."""
    out = []
    for i in range(count):
        size = max(8, (i * 7919) % (limit + 1))
        body = bytes((i + k) & 0xFF for k in range(size - 8))
        out.append(struct.pack("<II", tag, i) + body)
    return out


def start_consumer(programs: SimpleNamespace, ring: Ring, tmp_path: Path, index: int = 0,
                   *extra: str) -> SimpleNamespace:
    """Start ``flowc-ring-consumer`` as consumer ``index``, its frames going to a file."""
    out = tmp_path / f"consumer-{index}.frames"
    with open(out, "wb") as sink:
        proc = subprocess.Popen([programs.consumer, "--timeout", str(STEP_S), *extra],
                                env=actor_env(ring.name, index, "inputs"), stdout=sink, stderr=subprocess.PIPE)
    return SimpleNamespace(proc=proc, out=out)


def finish_consumer(consumer: SimpleNamespace) -> list[bytes]:
    """Wait for a consumer that must exit 0; the messages it wrote."""
    _, err = consumer.proc.communicate(timeout=STEP_S + 10)
    assert consumer.proc.returncode == 0, err.decode()
    return unframe(consumer.out.read_bytes())


def start_producer(programs: SimpleNamespace, ring: Ring, messages: list[bytes], tmp_path: Path, index: int = 0,
                   *extra: str) -> subprocess.Popen[bytes]:
    """Start ``flowc-ring-producer`` as producer ``index`` with ``messages`` as frames on its stdin."""
    source = tmp_path / f"producer-{index}.frames"
    source.write_bytes(frames(messages))
    with open(source, "rb") as stdin:
        return subprocess.Popen([programs.producer, "--timeout", str(STEP_S), *extra],
                                env=actor_env(ring.name, index, "outputs"), stdin=stdin, stderr=subprocess.PIPE)


def python_drain(ring: Ring, index: int = 0) -> list[bytes]:
    """Receive in this process until the ring is closed and drained."""
    rx, got = ring.consumer(index), []
    while (message := rx.recv(timeout=STEP_S)) is not None:
        got.append(message)
    return got


def test_python_producer_to_rust_consumer(programs: SimpleNamespace, make_ring: Callable[..., Ring],
                                          tmp_path: Path) -> None:
    """Python produces through many wraps, the empty and the largest message included."""
    ring = make_ring(4096)
    messages = [b"", *payloads(3000, ring.max_message), b"\xff" * ring.max_message]
    assert sum(map(len, messages)) > 100 * ring.buffer_size  # wraps around many times
    consumer = start_consumer(programs, ring, tmp_path)
    tx = ring.producer(0)
    for message in messages:
        assert tx.send(message, timeout=STEP_S)
    ring.close_writers()
    assert finish_consumer(consumer) == messages
    stats = ring.stats()
    assert (stats["sent"], stats["received"], stats["broken"]) == (len(messages), len(messages), False)


def test_rust_producer_to_python_consumer(programs: SimpleNamespace, make_ring: Callable[..., Ring],
                                          tmp_path: Path) -> None:
    """The Rust producer blocks on a full ring and resumes as Python reads."""
    ring = make_ring(1024)
    messages = [*payloads(2000, ring.max_message), b"", b"\x01" * ring.max_message]
    producer = start_producer(programs, ring, messages, tmp_path, 0)
    wait_until(lambda: peek_u32(ring.name, SPACE_WAITERS) > 0, "the producer to sleep on the full ring")
    rx = ring.consumer(0)
    got = [rx.recv(timeout=STEP_S) for _ in messages]
    _, err = producer.communicate(timeout=STEP_S)
    assert producer.returncode == 0, err.decode()
    assert got == messages
    stats = ring.stats()
    assert stats["sent_per_producer"] == [len(messages)] and stats["received"] == len(messages)
    assert stats["backpressure_waits"] > 0
    assert rx.recv(timeout=0) is None


def test_a_message_over_the_limit_is_refused(programs: SimpleNamespace, make_ring: Callable[..., Ring],
                                             tmp_path: Path) -> None:
    """A frame over max_message makes the Rust producer exit 1 after the ones before it."""
    ring = make_ring(1024)
    producer = start_producer(programs, ring, [b"ok", b"x" * (ring.max_message + 1)], tmp_path)
    _, err = producer.communicate(timeout=STEP_S)
    assert producer.returncode == 1 and b"exceeds this ring's maximum" in err
    assert ring.consumer(0).recv(timeout=1) == b"ok"


def test_close_wakes_a_blocked_rust_consumer(programs: SimpleNamespace, make_ring: Callable[..., Ring],
                                             tmp_path: Path) -> None:
    """Closing the writers wakes a Rust consumer asleep on the data doorbell."""
    ring = make_ring()
    consumer = start_consumer(programs, ring, tmp_path)
    wait_until(lambda: peek_u32(ring.name, DATA_WAITERS) > 0, "the consumer to sleep on the data doorbell")
    ring.producer(0).send(b"last words")
    ring.close_writers()
    start = time.monotonic()
    assert finish_consumer(consumer) == [b"last words"]
    assert time.monotonic() - start < 5


def test_closed_ring_drains_then_finishes_and_refuses_sends(programs: SimpleNamespace,
                                                            make_ring: Callable[..., Ring], tmp_path: Path) -> None:
    """A closed ring drains to the Rust consumer and refuses the Rust producer."""
    ring = make_ring()
    messages = payloads(20, 100)
    tx = ring.producer(0)
    for message in messages:
        tx.send(message)
    ring.close_writers()
    assert finish_consumer(start_consumer(programs, ring, tmp_path)) == messages
    producer = start_producer(programs, ring, [b"late"], tmp_path)
    _, err = producer.communicate(timeout=STEP_S)
    assert producer.returncode == 1 and b"closed after 0 messages" in err


def test_rust_producer_closes_the_writers(programs: SimpleNamespace, make_ring: Callable[..., Ring],
                                          tmp_path: Path) -> None:
    """``--close`` closes the writers after the last message."""
    ring = make_ring(1 << 16)  # room for every message: nobody reads until the producer is done
    messages = payloads(50, 200)
    producer = start_producer(programs, ring, messages, tmp_path, 0, "--close")
    assert producer.wait(timeout=STEP_S) == 0
    assert ring.closed and python_drain(ring) == messages


def test_drop_oldest_python_producer_rust_consumer(programs: SimpleNamespace, make_ring: Callable[..., Ring],
                                                   tmp_path: Path) -> None:
    """drop_oldest: a late Rust consumer gets the newest messages; the counters add up."""
    ring = make_ring(512, policy="drop_oldest")
    messages = payloads(1000, 40)
    tx = ring.producer(0)
    for message in messages:
        assert tx.send(message)  # nobody reads yet: the oldest are dropped
    ring.close_writers()
    got = finish_consumer(start_consumer(programs, ring, tmp_path))
    assert 0 < len(got) < len(messages) and got == messages[-len(got):]
    stats = ring.stats()
    assert stats["received"] + stats["dropped"] == len(messages)


def test_drop_oldest_rust_producer_python_consumer(programs: SimpleNamespace, make_ring: Callable[..., Ring],
                                                   tmp_path: Path) -> None:
    """drop_oldest: the Rust producer skips two late Python consumers; the counters add up."""
    ring = make_ring(512, consumers=2, policy="drop_oldest")
    messages = payloads(1000, 40)
    producer = start_producer(programs, ring, messages, tmp_path, 0, "--close")
    _, err = producer.communicate(timeout=STEP_S)
    assert producer.returncode == 0, err.decode()
    for index in range(2):
        got = python_drain(ring, index)
        assert 0 < len(got) < len(messages) and got == messages[-len(got):]
    stats = ring.stats()
    pairs = zip(stats["received_per_consumer"], stats["dropped_per_consumer"], strict=True)
    assert [received + dropped for received, dropped in pairs] == [1000, 1000]


def intact_in_order(got: list[bytes], sent: list[bytes]) -> bool:
    """Whether every message of ``got`` is one of ``sent``, unchanged, in the order they were sent."""
    seqs = [struct.unpack_from("<I", m, 4)[0] for m in got]
    return all(sent[seq] == m for seq, m in zip(seqs, got, strict=True)) and seqs == sorted(set(seqs))


def test_drop_oldest_while_both_sides_run(programs: SimpleNamespace, make_ring: Callable[..., Ring],
                                          tmp_path: Path) -> None:
    """drop_oldest with everyone running: no torn or repeated message reaches a consumer."""
    # producers overwrite what a reader may be copying: a torn record must be skipped, never delivered
    ring = make_ring(512, consumers=2, policy="drop_oldest")
    messages = payloads(20000, 100)
    consumer = start_consumer(programs, ring, tmp_path, 0)
    python_got: list[bytes] = []
    reader = threading.Thread(target=lambda: python_got.extend(python_drain(ring, 1)))
    reader.start()
    producer = start_producer(programs, ring, messages, tmp_path, 0, "--close")
    _, err = producer.communicate(timeout=STEP_S)
    assert producer.returncode == 0, err.decode()
    reader.join(timeout=STEP_S)
    rust_got = finish_consumer(consumer)
    for got in (rust_got, python_got):
        assert got and intact_in_order(got, messages) and got[-1] == messages[-1]
    stats = ring.stats()
    assert [len(rust_got), len(python_got)] == stats["received_per_consumer"]
    pairs = zip(stats["received_per_consumer"], stats["dropped_per_consumer"], strict=True)
    assert [received + dropped for received, dropped in pairs] == [20000, 20000]


def test_many_producers_many_consumers(programs: SimpleNamespace, make_ring: Callable[..., Ring],
                                       tmp_path: Path) -> None:
    """Three producers and three consumers (Rust and Python): each producer's order is kept."""
    ring = make_ring(2048, producers=3, consumers=3)
    per_producer = {p: payloads(1500, 120, tag=p) for p in range(3)}
    consumers = [start_consumer(programs, ring, tmp_path, c) for c in (0, 1)]
    producers = [start_producer(programs, ring, per_producer[p], tmp_path, p) for p in (0, 1)]
    python_got: list[bytes] = []
    reader = threading.Thread(target=lambda: python_got.extend(python_drain(ring, 2)))
    reader.start()
    tx = ring.producer(2)
    for message in per_producer[2]:
        assert tx.send(message, timeout=STEP_S)
    for producer in producers:
        _, err = producer.communicate(timeout=STEP_S)
        assert producer.returncode == 0, err.decode()
    ring.close_writers()
    reader.join(timeout=STEP_S)
    for got in [finish_consumer(c) for c in consumers] + [python_got]:
        assert len(got) == 4500
        for p, sent in per_producer.items():  # in order per producer
            assert [m for m in got if struct.unpack_from("<I", m)[0] == p] == sent


def one_each(shares: list[list[bytes]], per_producer: dict[int, list[bytes]]) -> None:
    """Check a shared ring's consumers: each message in exactly one share, each producer's in order within one."""
    for tag, sent in per_producer.items():
        mine = [[m for m in got if struct.unpack_from("<I", m)[0] == tag] for got in shares]
        assert sorted(m for share in mine for m in share) == sorted(sent), "every message exactly once"
        for share in mine:  # the messages are distinct: a share is a subsequence of what was sent
            taken = set(share)
            assert share == [m for m in sent if m in taken], "in the producer's order"


def test_shared_ring_python_producers_rust_and_python_consumers(programs: SimpleNamespace,
                                                                make_ring: Callable[..., Ring],
                                                                tmp_path: Path) -> None:
    """Two Rust consumers and a Python one take turns on a shared ring that wraps; none is lost or doubled."""
    ring = make_ring(1024, producers=2, consumers=3, delivery="shared")
    per_producer = {p: [*payloads(1500, ring.max_message, tag=p), struct.pack("<II", p, 1500)] for p in range(2)}
    consumers = [start_consumer(programs, ring, tmp_path, c, "--pace-us", "200") for c in (0, 1)]
    wait_until(lambda: peek_u32(ring.name, DATA_WAITERS) >= 2, "the Rust consumers to wait for data")
    python_got: list[bytes] = []
    reader = threading.Thread(target=lambda: python_got.extend(python_drain(ring, 2)))
    reader.start()
    writers = [threading.Thread(target=lambda p=p: [ring.producer(p).send(m, timeout=STEP_S) for m in
                                                     per_producer[p]]) for p in range(2)]
    for writer in writers:
        writer.start()
    for writer in writers:
        writer.join(timeout=STEP_S * 2)
    ring.close_writers()
    reader.join(timeout=STEP_S)
    shares = [finish_consumer(c) for c in consumers] + [python_got]
    one_each(shares, per_producer)
    assert all(shares[:2]), "both Rust consumers took part"
    stats = ring.stats()
    assert stats["received_per_consumer"] == [len(got) for got in shares]
    assert stats["sent"] == 3002 and stats["dropped"] == 0 and not stats["broken"]
    assert stats["published_bytes"] > 100 * ring.buffer_size


def test_shared_ring_rust_producer_python_consumers(programs: SimpleNamespace, make_ring: Callable[..., Ring],
                                                    tmp_path: Path) -> None:
    """The Rust producer blocks on a full shared ring until the Python group releases space, through wraps."""
    ring = make_ring(512, consumers=2, delivery="shared")
    messages = [*payloads(2000, ring.max_message), struct.pack("<II", 0, 2000) + b"\x01" * (ring.max_message - 8)]
    producer = start_producer(programs, ring, messages, tmp_path, 0, "--close")
    wait_until(lambda: peek_u32(ring.name, SPACE_WAITERS) > 0, "the producer to sleep on the full ring")
    shares: list[list[bytes]] = [[], []]
    readers = [threading.Thread(target=lambda j=j: shares[j].extend(python_drain(ring, j))) for j in range(2)]
    for reader in readers:
        reader.start()
    _, err = producer.communicate(timeout=STEP_S)
    assert producer.returncode == 0, err.decode()
    for reader in readers:
        reader.join(timeout=STEP_S)
    one_each(shares, {0: messages})
    stats = ring.stats()
    assert stats["received"] == len(messages) and stats["backpressure_waits"] > 0 and not stats["broken"]
    assert stats["cursor_per_consumer"] == [stats["published_bytes"], 0], "the release position is line 0's cursor"


@pytest.mark.parametrize(("field", "value", "why"), [
    ("published", 1 << 40, "shared position more than a ring behind"),
    ("taken", 64, "shared position ahead of the published position"),
])
def test_corrupt_shared_position_breaks_the_ring(programs: SimpleNamespace, make_ring: Callable[..., Ring],
                                                 tmp_path: Path, field: str, value: int, why: str) -> None:
    """Impossible shared positions make the Rust consumer mark the ring broken, as the C side sees."""
    ring = make_ring(consumers=2, delivery="shared")
    poke(ring, LAYOUT[field] if field == "published" else consumer_line(ring, 0) + TAKEN, "Q", value)
    run = start_consumer(programs, ring, tmp_path, 1).proc
    _, err = run.communicate(timeout=STEP_S)
    assert run.returncode == 1 and f"ring broken: {why}".encode() in err, err.decode()
    assert ring.stats()["broken"]


def poke(ring: Ring, offset: int, fmt: str, value: int) -> None:
    """Write ``value`` (struct format ``fmt``) at ``offset`` of the segment file."""
    with open(f"/dev/shm/{ring.name}", "r+b") as segment:
        segment.seek(offset)
        segment.write(struct.pack("<" + fmt, value))


CORRUPT_HEADERS = {
    "magic": ("magic", "Q", 0x0BADC0DE, "bad magic"),
    "capacity zero": ("capacity", "Q", 0, "bad capacity"),
    "capacity past the file": ("capacity", "Q", 1 << 40, "capacity exceeds the segment"),
    "data offset": ("data_offset", "Q", 64, "data offset does not match layout"),
    "max message": ("max_message", "Q", 1 << 62, "bad max_message"),
    "consumers": ("consumers", "I", 5000, "producer or consumer count out of range"),
    "version": ("version", "I", 9, "unsupported version"),
}


@pytest.mark.parametrize("case", sorted(CORRUPT_HEADERS))
def test_corrupt_header_is_an_error_exit(programs: SimpleNamespace, make_ring: Callable[..., Ring], tmp_path: Path,
                                         case: str) -> None:
    """A corrupt header makes both Rust programs exit 1 with the ABI's reason."""
    ring = make_ring()
    field, fmt, value, why = CORRUPT_HEADERS[case]
    poke(ring, LAYOUT[field], fmt, value)
    for run in (start_consumer(programs, ring, tmp_path).proc, start_producer(programs, ring, [b"x"], tmp_path)):
        _, err = run.communicate(timeout=STEP_S)
        assert run.returncode == 1, err.decode()
        assert f"not a valid flowc ring segment: {why}".encode() in err


def test_truncated_segment_is_an_error_exit(programs: SimpleNamespace, make_ring: Callable[..., Ring],
                                            tmp_path: Path) -> None:
    """A segment shorter than the header is refused."""
    ring = make_ring()
    os.truncate(f"/dev/shm/{ring.name}", 200)
    consumer = start_consumer(programs, ring, tmp_path).proc
    _, err = consumer.communicate(timeout=STEP_S)
    assert consumer.returncode == 1 and b"segment smaller than a ring header" in err


@pytest.mark.parametrize(("field", "value", "side", "why"), [
    ("published", 1 << 40, "consumer", "consumer cursor more than a ring behind"),
    ("published", 12, "consumer", "unaligned consumer cursor"),
    ("reserve", 1 << 40, "producer", "reserve position too far ahead of the cursors"),
    ("reserve", 5, "producer", "unaligned reserve position"),
])
def test_corrupt_position_breaks_the_ring(programs: SimpleNamespace, make_ring: Callable[..., Ring], tmp_path: Path,
                                          field: str, value: int, side: str, why: str) -> None:
    """Impossible positions make the Rust programs mark the ring broken, as the C side sees."""
    ring = make_ring()
    if field == "published" and value % 8:  # a cursor read below `published` must be aligned
        poke(ring, LAYOUT["header_size"] + LAYOUT["line_size"] + LAYOUT["cursor"], "Q", 3)
    poke(ring, LAYOUT[field], "Q", value)
    run = (start_consumer(programs, ring, tmp_path).proc if side == "consumer"
           else start_producer(programs, ring, [b"x"], tmp_path))
    _, err = run.communicate(timeout=STEP_S)
    assert run.returncode == 1 and f"ring broken: {why}".encode() in err, err.decode()
    assert ring.stats()["broken"]  # the C side sees what the Rust side found


@pytest.mark.parametrize("channels", [b"", b"{", b"[]", b'{"inputs": {"data": {"ring": 7, "index": 0}}}',
                                      b'{"inputs": {"data": {"ring": "r", "index": -1}}}', b"{" * 5000, b"\xff"])
def test_junk_channels_are_an_error_exit(programs: SimpleNamespace, channels: bytes) -> None:
    """Malformed FLOWC_CHANNELS is an error exit."""
    env = {**os.environb, b"FLOWC_CHANNELS": channels}
    run = subprocess.run([programs.consumer], env=env, capture_output=True, timeout=STEP_S)
    assert run.returncode == 1 and b"FLOWC_CHANNELS" in run.stderr


def test_missing_segment_is_an_error_exit(programs: SimpleNamespace) -> None:
    """A channel naming a missing segment is an error exit."""
    env = {**os.environ, "FLOWC_CHANNELS": json.dumps({"inputs": {"data": {"ring": "flowc-rust-absent", "index": 0}}})}
    run = subprocess.run([programs.consumer], env=env, capture_output=True, timeout=STEP_S)
    assert run.returncode == 1 and b"no ring segment named 'flowc-rust-absent'" in run.stderr


def test_sigterm_makes_a_rust_consumer_drain_what_is_pending_and_exit_0(
        programs: SimpleNamespace, make_ring: Callable[..., Ring], tmp_path: Path) -> None:
    """SIGTERM with messages pending: the consumer receives them all, then exits 0 with its summary."""
    ring = make_ring(1 << 16)  # holds every message
    messages = payloads(40, 200)
    tx = ring.producer(0)
    assert tx.send(messages[0])
    consumer = start_consumer(programs, ring, tmp_path, 0, "--pace-us", "20000")  # 20 ms a message
    wait_until(lambda: ring.stats()["received"] >= 1, "the consumer's first message")  # its handler is installed
    for message in messages[1:]:
        assert tx.send(message)
    assert ring.stats()["received"] < len(messages)
    consumer.proc.send_signal(signal.SIGTERM)
    _, err = consumer.proc.communicate(timeout=STEP_S)
    assert consumer.proc.returncode == 0, err.decode()
    assert f"received {len(messages)} (stopped)".encode() in err
    assert unframe(consumer.out.read_bytes()) == messages
    assert not ring.closed and ring.stats()["received"] == len(messages)


def test_sigterm_ends_a_waiting_rust_consumer(programs: SimpleNamespace, make_ring: Callable[..., Ring],
                                              tmp_path: Path) -> None:
    """SIGTERM while the consumer waits on an empty, open ring: it sees the stop and exits 0."""
    ring = make_ring()
    assert ring.producer(0).send(b"one")
    consumer = start_consumer(programs, ring, tmp_path)  # then waits on an open, empty ring
    wait_until(lambda: ring.stats()["received"] == 1, "the consumer's first message")
    consumer.proc.send_signal(signal.SIGTERM)
    assert finish_consumer(consumer) == [b"one"]


def test_sigterm_stops_a_blocked_rust_producer(programs: SimpleNamespace, make_ring: Callable[..., Ring],
                                               tmp_path: Path) -> None:
    """SIGTERM while the producer waits for space: it stops, exits 0, and what it sent is intact."""
    ring = make_ring(1024)
    messages = payloads(500, 100)
    producer = start_producer(programs, ring, messages, tmp_path)
    wait_until(lambda: peek_u32(ring.name, SPACE_WAITERS) > 0, "the producer to sleep on the full ring")
    producer.send_signal(signal.SIGTERM)
    _, err = producer.communicate(timeout=STEP_S)
    assert producer.returncode == 0, err.decode()
    sent = ring.stats()["sent_per_producer"][0]
    assert 0 < sent < len(messages) and f"sent {sent} (stopped)".encode() in err
    rx, got = ring.consumer(0), []
    while (message := rx.recv(timeout=0)) is not None:
        got.append(message)
    assert got == messages[:sent], "what it sent before it stopped is intact"


def test_sigterm_makes_the_count_sink_example_report_and_exit_0(programs: SimpleNamespace,
                                                                 make_ring: Callable[..., Ring]) -> None:
    """The polyglot example's Rust sink finishes with its summary on SIGTERM instead of dying of it."""
    ring = make_ring()
    tx = ring.producer(0)
    header = struct.Struct("<QQI")  # what count_sink reads: send time, sequence, producer id
    assert tx.send(header.pack(0, 0, 7))
    env = {**os.environ, "FLOWC_CHANNELS": json.dumps({"inputs": {"signals": {"ring": ring.name, "index": 0}},
                                                       "outputs": {}})}
    sink = subprocess.Popen([programs.examples / "count_sink"], env=env, stderr=subprocess.PIPE)
    wait_until(lambda: ring.stats()["received"] == 1, "the sink's first message")  # its handler is installed
    for seq in range(1, 10):
        assert tx.send(header.pack(0, seq, 7))
    sink.send_signal(signal.SIGTERM)
    _, err = sink.communicate(timeout=STEP_S)
    assert sink.returncode == 0, err.decode()
    assert err.decode() == "count_sink: received 10 messages, in order\n"
