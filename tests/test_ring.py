"""flowc.runtime.ring between real processes over real shared memory: delivery, order, policies, shutdown, idling."""

from __future__ import annotations

import multiprocessing as mp
import os
import struct
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from flowc.runtime.ring import MAX_MESSAGE, Ring, RingError, ring_limit

CTX = mp.get_context("spawn")
PREFIX = f"flowc-test-{os.getpid()}-"
SEQ = struct.Struct("<II")  # (producer index, sequence number) at the head of multi-producer messages


def payload(producer: int, seq: int, limit: int) -> bytes:
    """A message whose size and content both depend on (producer, seq); sizes sweep 8 .. limit."""
    size = 8 + (seq * 37 + producer * 11) % (limit - 7)
    if seq % 97 == 0:
        size = limit
    return SEQ.pack(producer, seq) + bytes((seq + i) & 0xFF for i in range(size - 8))


def spsc_payload(seq: int, limit: int) -> bytes:
    """Single-producer messages may be empty: sizes sweep 0 .. limit, with 0 and limit both frequent."""
    size = (seq * 13) % (limit + 1)
    if seq % 10 == 0:
        size = 0
    elif seq % 10 == 1:
        size = limit
    return bytes((seq * 3 + i) & 0xFF for i in range(size))


def produce(name: str, index: int, count: int, spsc: bool) -> None:
    ring = Ring.attach(name)
    tx = ring.producer(index)
    for seq in range(count):
        data = spsc_payload(seq, ring.max_message) if spsc else payload(index, seq, ring.max_message)
        assert tx.send(data if seq % 3 else memoryview(bytearray(data)), timeout=20.0)
    ring.close()


def consume(name: str, index: int, producers: int, count: int, spsc: bool, results: mp.Queue) -> None:
    """Check every message against what its producer sent, in order; report (received, error)."""
    ring = Ring.attach(name)
    rx = ring.consumer(index)
    expected = [0] * producers
    error = None
    received = 0
    while received < producers * count:
        data = rx.recv(timeout=20.0)
        if data is None:
            error = f"timed out after {received} messages"
            break
        received += 1
        if spsc:
            producer, seq = 0, expected[0]
            want = spsc_payload(seq, ring.max_message)
        else:
            producer, seq = SEQ.unpack_from(data)
            want = payload(producer, expected[producer], ring.max_message)
        if data != want:
            error = f"producer {producer}: got seq {seq} ({len(data)} B), expected seq {expected[producer]}"
            break
        expected[producer] += 1
    results.put((index, received, error))
    ring.close()


def slow_consume(name: str, results: mp.Queue) -> None:
    """drop_oldest reader that falls behind on purpose: sequence numbers must still increase."""
    ring = Ring.attach(name)
    rx = ring.consumer(0)
    last, received, error = -1, 0, None
    while (data := rx.recv(timeout=10.0)) is not None:
        _, seq = SEQ.unpack_from(data)
        if seq <= last:
            error = f"seq {seq} after {last}"
        last, received = seq, received + 1
        if received % 50 == 0:
            time.sleep(0.002)
    results.put((received, last, error))
    ring.close()


def blocked_recv(name: str, results: mp.Queue) -> None:
    """Say "ready", block in recv with no timeout, then report what recv returned."""
    ring = Ring.attach(name)
    rx = ring.consumer(0)
    results.put("ready")
    results.put(rx.recv())
    ring.close()


SIGNAL_POLL_S = 0.1
"""A blocked waiter leaves its futex wait this often to run Python signal handlers (``SIGNAL_POLL_NS`` in
``_ring.c``); it is the only wake-up an idle consumer should have."""


def parked_on(task: Path, segment: str) -> bool:
    """Whether the thread ``task`` (a /proc/PID/task/TID directory) sleeps in a futex wait inside ``segment``.

    The state field of ``stat`` says it is asleep ('S'), ``wchan`` names the kernel's futex wait, and the first
    argument in ``syscall`` (the futex word) lies in the thread's mapping of the ring's segment file: it waits
    on the ring's own doorbell, not on some other lock.
    """
    try:
        state = (task / "stat").read_text().rpartition(")")[2].split()[0]
        wchan = (task / "wchan").read_text()
        call = (task / "syscall").read_text().split()
        maps = (task / "maps").read_text().splitlines()
    except (FileNotFoundError, ProcessLookupError):
        return False
    if state != "S" or "futex" not in wchan or len(call) < 2 or not call[1].startswith("0x"):
        return False
    word, segment = int(call[1], 16), os.path.realpath(segment)  # maps names the file by its real path
    for line in maps:
        fields = line.split()
        if len(fields) >= 6 and fields[5] == segment:
            low, _, high = fields[0].partition("-")
            if int(low, 16) <= word < int(high, 16):
                return True
    return False


def voluntary_switches(task: Path) -> int:
    """How many times the thread ``task`` has gone to sleep (``voluntary_ctxt_switches``)."""
    for line in (task / "status").read_text().splitlines():
        if line.startswith("voluntary_ctxt_switches:"):
            return int(line.split()[1])
    raise AssertionError(f"no voluntary_ctxt_switches in {task}/status")


def wait_until_parked(task: Path, segment: str) -> None:
    """Return once ``task`` is parked on the ring's futex; fail when it never gets there."""
    deadline = time.monotonic() + 20.0  # liveness only: parking takes about 110 µs of spinning and yielding
    while not parked_on(task, segment):
        assert time.monotonic() < deadline, f"{task} never blocked on the ring's futex"
        time.sleep(0.01)


@pytest.fixture
def ring_name(request: pytest.FixtureRequest) -> Iterator[str]:
    name = PREFIX + request.node.name.replace("[", "-").replace("]", "")
    Ring.unlink(name)
    yield name
    Ring.unlink(name)


def run(procs: list[mp.process.BaseProcess], timeout: float = 30.0) -> None:
    for proc in procs:
        proc.start()
    for proc in procs:
        proc.join(timeout)
        assert proc.exitcode == 0, f"{proc.name} exited with {proc.exitcode}"


@pytest.mark.parametrize(("producers", "consumers", "buffer_size", "count"), [
    (1, 1, 4096, 20000),
    (1, 3, 2048, 8000),
    (3, 1, 2048, 6000),
    (2, 2, 1024, 6000),
], ids=["spsc", "spmc", "mpsc", "mpmc"])
def test_every_message_once_in_order(ring_name: str, producers: int, consumers: int, buffer_size: int,
                                     count: int) -> None:
    spsc = producers == 1
    ring = Ring.create(ring_name, buffer_size, producers, consumers)
    results = CTX.Queue()
    procs = [CTX.Process(target=consume, args=(ring_name, c, producers, count, spsc, results))
             for c in range(consumers)]
    procs += [CTX.Process(target=produce, args=(ring_name, p, count, spsc)) for p in range(producers)]
    run(procs)
    outcomes = sorted(results.get(timeout=5) for _ in range(consumers))
    assert outcomes == [(c, producers * count, None) for c in range(consumers)]
    stats = ring.stats()
    assert stats["sent"] == producers * count
    assert stats["received_per_consumer"] == [producers * count] * consumers
    assert stats["dropped"] == 0
    assert stats["backpressure_waits"] > 0, "a ring this small must have made producers wait"
    ring.close()


def test_max_message_round_trip(ring_name: str) -> None:
    ring = Ring.create(ring_name, 4 * MAX_MESSAGE + 64, 1, 1)
    assert ring.max_message == MAX_MESSAGE == ring_limit(4 * MAX_MESSAGE + 64)
    rx = ring.consumer(0)
    messages = [os.urandom(MAX_MESSAGE), b"", os.urandom(MAX_MESSAGE), b"", b"x"] * 4
    proc = CTX.Process(target=_send_all, args=(ring_name, messages))
    proc.start()
    got = [rx.recv(timeout=20.0) for _ in messages]
    proc.join(20)
    assert got == messages
    with pytest.raises(ValueError, match="exceeds"):
        ring.producer(0).send(bytes(MAX_MESSAGE + 1))
    ring.close()


def _send_all(name: str, messages: list[bytes]) -> None:
    ring = Ring.attach(name)
    tx = ring.producer(0)
    for message in messages:
        assert tx.send(message, timeout=20.0)
    ring.close()


def test_drop_oldest_counts_drops_and_never_blocks(ring_name: str) -> None:
    count = 3000
    ring = Ring.create(ring_name, 1024, 1, 2, policy="drop_oldest")
    proc = CTX.Process(target=produce, args=(ring_name, 0, count, False))
    run([proc])
    for index in range(2):
        rx = ring.consumer(index)
        seqs = []
        while (data := rx.recv(timeout=0)) is not None:
            seqs.append(SEQ.unpack_from(data)[1])
        assert seqs == list(range(count - len(seqs), count)), "the newest messages survive, in order"
    stats = ring.stats()
    assert stats["sent"] == count
    assert stats["backpressure_waits"] == 0
    for index in range(2):
        assert stats["received_per_consumer"][index] + stats["dropped_per_consumer"][index] == count
    assert stats["dropped"] > 0
    ring.close()


def test_drop_oldest_with_a_concurrent_slow_consumer(ring_name: str) -> None:
    count = 20000
    ring = Ring.create(ring_name, 2048, 1, 1, policy="drop_oldest")
    results = CTX.Queue()
    reader = CTX.Process(target=slow_consume, args=(ring_name, results))
    reader.start()
    run([CTX.Process(target=produce, args=(ring_name, 0, count, False))])
    ring.close_writers()
    ring.wake_all()
    received, last, error = results.get(timeout=20)
    reader.join(10)
    assert error is None
    assert last == count - 1, "the last message is never dropped"
    stats = ring.stats()
    assert stats["received"] == received
    assert received + stats["dropped"] == count
    ring.close()


def test_timeouts(ring_name: str) -> None:
    ring = Ring.create(ring_name, 1024, 1, 1)
    tx, rx = ring.producer(0), ring.consumer(0)
    assert rx.recv(timeout=0.05) is None
    assert rx.recv(0) is None
    sent = 0
    while tx.send(b"x" * 100, timeout=0.05):
        sent += 1
    assert sent == 1024 // 112  # 8-byte record header + 100 bytes padded to 104
    assert ring.stats()["backpressure_waits"] == 0, "a timed-out send is not a completed wait"
    assert rx.recv(timeout=0) == b"x" * 100
    assert tx.send(b"y", timeout=0.05)
    ring.close()


def test_backpressure_wait_wakes_when_space_frees(ring_name: str) -> None:
    ring = Ring.create(ring_name, 1024, 1, 1)
    tx = ring.producer(0)
    while tx.send(b"z" * 200, timeout=0):
        pass
    proc = CTX.Process(target=_drain_later, args=(ring_name,))
    proc.start()
    assert tx.send(b"z" * 200, timeout=20.0)  # the same size: it fits only after the drain
    proc.join(20)
    assert ring.stats()["backpressure_waits"] == 1
    ring.close()


def _drain_later(name: str) -> None:
    ring = Ring.attach(name)
    time.sleep(0.2)
    assert ring.consumer(0).recv(timeout=5.0) == b"z" * 200
    ring.close()


def test_close_writers_drains_then_returns_none(ring_name: str) -> None:
    ring = Ring.create(ring_name, 4096, 1, 2)
    tx = ring.producer(0)
    for i in range(10):
        assert tx.send(bytes([i]))
    assert not ring.closed
    ring.close_writers()
    assert ring.closed
    assert not tx.send(b"late")
    for index in range(2):
        rx = ring.consumer(index)
        assert [rx.recv() for _ in range(10)] == [bytes([i]) for i in range(10)]
        assert rx.recv() is None, "closed and drained: no wait, even without a timeout"
    ring.close()


def test_blocked_recv_returns_none_on_close(ring_name: str) -> None:
    ring = Ring.create(ring_name, 4096, 1, 1)
    results = CTX.Queue()
    proc = CTX.Process(target=blocked_recv, args=(ring_name, results))
    proc.start()
    assert results.get(timeout=20) == "ready"
    wait_until_parked(Path(f"/proc/{proc.pid}/task/{proc.pid}"), ring.path)
    ring.close_writers()
    ring.wake_all()
    assert results.get(timeout=10) is None
    proc.join(10)
    assert proc.exitcode == 0
    ring.close()


def test_idle_consumer_sleeps_on_the_ring_futex(ring_name: str) -> None:
    """An idle consumer must block in the kernel, not spin, yield or poll with short sleeps.

    Spinning or yielding shows as state 'R'; polling with nanosleep or select sleeps elsewhere than the futex;
    a futex wait with a short timeout is parked most of the time but goes to sleep far more often than once per
    signal poll.
    """
    ring = Ring.create(ring_name, 4096, 1, 1)
    results = CTX.Queue()
    proc = CTX.Process(target=blocked_recv, args=(ring_name, results))
    proc.start()
    assert results.get(timeout=20) == "ready"
    task = Path(f"/proc/{proc.pid}/task/{proc.pid}")  # the main thread, the one in recv
    wait_until_parked(task, ring.path)

    before, start = voluntary_switches(task), time.monotonic()
    samples = []
    for _ in range(40):
        time.sleep(0.01)
        samples.append(parked_on(task, ring.path))
    sleeps, elapsed = voluntary_switches(task) - before, time.monotonic() - start
    # Each signal poll is a moment awake, so a sample rarely misses; a busy or polling consumer is never parked.
    assert sum(samples) >= 0.75 * len(samples), f"parked in only {sum(samples)} of {len(samples)} samples"
    # The bound grows with the time the samples really took, so a slow or loaded machine cannot fail it.
    allowed = 2 * elapsed / SIGNAL_POLL_S + 3
    assert sleeps <= allowed, f"{sleeps} sleeps while idle, at most {allowed:.0f} expected"

    ring.close_writers()
    ring.wake_all()
    assert results.get(timeout=10) is None
    proc.join(10)
    assert proc.exitcode == 0
    ring.close()


def test_attach_create_unlink_and_huge_page_fallback(ring_name: str) -> None:
    ring = Ring.create(ring_name, 8192, 1, 1, huge_pages=True)
    assert os.path.exists(ring.path)
    assert ring.stats()["huge_pages"] == ring.path.startswith("/dev/hugepages")
    with pytest.raises(RingError, match="already exists"):
        Ring.create(ring_name, 8192, 1, 1)
    other = Ring.attach(ring_name)
    assert (other.buffer_size, other.policy) == (8192, "backpressure")
    other.producer(0).send(b"hello")
    assert ring.consumer(0).recv(timeout=1.0) == b"hello"
    with pytest.raises(IndexError):
        other.producer(1)
    other.close()
    ring.close()
    with pytest.raises(ValueError, match="closed"):
        other_rx = Ring.attach(ring_name)
        rx = other_rx.consumer(0)
        other_rx.close()
        rx.recv(timeout=0)
    Ring.unlink(ring_name)
    assert not os.path.exists(ring.path)
    with pytest.raises(RingError, match="no ring segment"):
        Ring.attach(ring_name)
    with pytest.raises(RingError, match="policy"):
        Ring.create(ring_name, 8192, 1, 1, policy="lossy")


def test_no_segments_left_behind() -> None:
    assert not [name for name in os.listdir("/dev/shm") if name.startswith(PREFIX)]
