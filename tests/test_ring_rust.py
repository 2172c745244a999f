"""The Rust crate ``rust/flowc-ring`` speaks the ring protocol of ``flowc.runtime._ring`` byte for byte.

Rings are created by Python; the crate's two actor programs attach them by name through ``FLOWC_CHANNELS``:
``flowc-ring-producer`` sends the length-prefixed frames of its stdin, ``flowc-ring-consumer`` writes what it
receives to stdout the same way. A corrupt segment must make them exit 1 with a reason, never die of a signal.
"""

from __future__ import annotations

import json
import os
import secrets
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

from conftest import ROOT, require_tool

CRATE = ROOT / "rust" / "flowc-ring"
LAYOUT = _ring.LAYOUT
#: Every wait of the Rust side ends by then, so a protocol bug fails the test instead of hanging it.
STEP_S = 20.0


@pytest.fixture(scope="module")
def programs() -> SimpleNamespace:
    cargo = require_tool("cargo")
    built = subprocess.run([cargo, "build", "--release", "--offline", "--manifest-path", str(CRATE / "Cargo.toml")],
                           capture_output=True, text=True, timeout=600)
    if built.returncode != 0:
        pytest.fail(f"cargo build failed:\n{built.stderr[-4000:]}", pytrace=False)
    release = CRATE / "target" / "release"
    return SimpleNamespace(producer=release / "flowc-ring-producer", consumer=release / "flowc-ring-consumer")


@pytest.fixture
def make_ring() -> Iterator[Callable[..., Ring]]:
    rings: list[Ring] = []

    def make(buffer_size: int = 4096, producers: int = 1, consumers: int = 1, policy: str = "backpressure") -> Ring:
        ring = Ring.create(f"flowc-rust-{secrets.token_hex(6)}", buffer_size, producers, consumers, policy=policy)
        rings.append(ring)
        return ring

    yield make
    for ring in rings:
        ring.close()
        Ring.unlink(ring.name)


def frames(messages: list[bytes]) -> bytes:
    return b"".join(struct.pack("<I", len(m)) + m for m in messages)


def unframe(data: bytes) -> list[bytes]:
    messages, at = [], 0
    while at < len(data):
        (size,) = struct.unpack_from("<I", data, at)
        messages.append(data[at + 4:at + 4 + size])
        at += 4 + size
    assert at == len(data), "a truncated frame"
    return messages


def payloads(count: int, limit: int, tag: int = 0) -> list[bytes]:
    """``count`` messages of every size from 0 to ``limit``, each starting with its tag and sequence number."""
    out = []
    for i in range(count):
        size = max(8, (i * 7919) % (limit + 1))
        body = bytes((i + k) & 0xFF for k in range(size - 8))
        out.append(struct.pack("<II", tag, i) + body)
    return out


def actor_env(ring: Ring, index: int, side: str) -> dict[str, str]:
    io = {"inputs": {}, "outputs": {}}
    io[side]["data"] = {"ring": ring.name, "index": index}
    return {**os.environ, "FLOWC_CHANNELS": json.dumps(io)}


def start_consumer(programs: SimpleNamespace, ring: Ring, tmp_path: Path, index: int = 0) -> SimpleNamespace:
    out = tmp_path / f"consumer-{index}.frames"
    with open(out, "wb") as sink:
        proc = subprocess.Popen([programs.consumer, "--timeout", str(STEP_S)], env=actor_env(ring, index, "inputs"),
                                stdout=sink, stderr=subprocess.PIPE)
    return SimpleNamespace(proc=proc, out=out)


def finish_consumer(consumer: SimpleNamespace) -> list[bytes]:
    _, err = consumer.proc.communicate(timeout=STEP_S + 10)
    assert consumer.proc.returncode == 0, err.decode()
    return unframe(consumer.out.read_bytes())


def start_producer(programs: SimpleNamespace, ring: Ring, messages: list[bytes], tmp_path: Path, index: int = 0,
                   *extra: str) -> subprocess.Popen[bytes]:
    source = tmp_path / f"producer-{index}.frames"
    source.write_bytes(frames(messages))
    with open(source, "rb") as stdin:
        return subprocess.Popen([programs.producer, "--timeout", str(STEP_S), *extra],
                                env=actor_env(ring, index, "outputs"), stdin=stdin, stderr=subprocess.PIPE)


def python_drain(ring: Ring, index: int = 0) -> list[bytes]:
    rx, got = ring.consumer(index), []
    while (message := rx.recv(timeout=STEP_S)) is not None:
        got.append(message)
    return got


def test_python_producer_to_rust_consumer(programs: SimpleNamespace, make_ring: Callable[..., Ring],
                                          tmp_path: Path) -> None:
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
    ring = make_ring(1024)
    messages = [*payloads(2000, ring.max_message), b"", b"\x01" * ring.max_message]
    producer = start_producer(programs, ring, messages, tmp_path, 0)
    time.sleep(0.2)  # the producer fills the ring and waits on the space doorbell
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
    ring = make_ring(1024)
    producer = start_producer(programs, ring, [b"ok", b"x" * (ring.max_message + 1)], tmp_path)
    _, err = producer.communicate(timeout=STEP_S)
    assert producer.returncode == 1 and b"exceeds this ring's maximum" in err
    assert ring.consumer(0).recv(timeout=1) == b"ok"


def test_close_wakes_a_blocked_rust_consumer(programs: SimpleNamespace, make_ring: Callable[..., Ring],
                                             tmp_path: Path) -> None:
    ring = make_ring()
    consumer = start_consumer(programs, ring, tmp_path)
    time.sleep(0.3)  # past its spin and yield budgets: asleep on the data doorbell
    ring.producer(0).send(b"last words")
    ring.close_writers()
    start = time.monotonic()
    assert finish_consumer(consumer) == [b"last words"]
    assert time.monotonic() - start < 5


def test_closed_ring_drains_then_finishes_and_refuses_sends(programs: SimpleNamespace,
                                                            make_ring: Callable[..., Ring], tmp_path: Path) -> None:
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
    ring = make_ring(1 << 16)  # room for every message: nobody reads until the producer is done
    messages = payloads(50, 200)
    producer = start_producer(programs, ring, messages, tmp_path, 0, "--close")
    assert producer.wait(timeout=STEP_S) == 0
    assert ring.closed and python_drain(ring) == messages


def test_drop_oldest_python_producer_rust_consumer(programs: SimpleNamespace, make_ring: Callable[..., Ring],
                                                   tmp_path: Path) -> None:
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


def poke(ring: Ring, offset: int, fmt: str, value: int) -> None:
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
    ring = make_ring()
    field, fmt, value, why = CORRUPT_HEADERS[case]
    poke(ring, LAYOUT[field], fmt, value)
    for run in (start_consumer(programs, ring, tmp_path).proc, start_producer(programs, ring, [b"x"], tmp_path)):
        _, err = run.communicate(timeout=STEP_S)
        assert run.returncode == 1, err.decode()
        assert f"not a valid flowc ring segment: {why}".encode() in err


def test_truncated_segment_is_an_error_exit(programs: SimpleNamespace, make_ring: Callable[..., Ring],
                                            tmp_path: Path) -> None:
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
    env = {**os.environb, b"FLOWC_CHANNELS": channels}
    run = subprocess.run([programs.consumer], env=env, capture_output=True, timeout=STEP_S)
    assert run.returncode == 1 and b"FLOWC_CHANNELS" in run.stderr


def test_missing_segment_is_an_error_exit(programs: SimpleNamespace) -> None:
    env = {**os.environ, "FLOWC_CHANNELS": json.dumps({"inputs": {"data": {"ring": "flowc-rust-absent", "index": 0}}})}
    run = subprocess.run([programs.consumer], env=env, capture_output=True, timeout=STEP_S)
    assert run.returncode == 1 and b"no ring segment named 'flowc-rust-absent'" in run.stderr
