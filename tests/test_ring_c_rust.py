"""The third pair of the conformance suite: the C library and the Rust crate on one ring, both directions.

Python↔C is in ``test_ring_c.py`` and Python↔Rust in ``test_ring_rust.py``; here a C producer feeds a Rust consumer
and a Rust producer feeds a C consumer, through a small ring that wraps many times, with the largest message.

On a shared ring (``delivery: shared``) a C and a Rust consumer of one group release records in claim order and
watch each other's liveness through their lines' ``holding`` and ``holder_pid`` (docs/ring-abi.md section 12): each
waits for the other while it is alive, and releases the record of one that died holding it, counting it dropped.
A consumer waiting to release stops, with the broken error, on a release position more than a ring behind its claim
(which it marks broken) or on a ring another endpoint marked broken; there the C library also runs in a Python
consumer (``ring_peer_python.py``).
"""

from __future__ import annotations

import secrets
import signal
import struct
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import pytest

from flowc.runtime import _ring
from flowc.runtime.ring import Ring
from ring_peer_python import message
from ring_peers import (
    HOLDER_PID,
    HOLDING,
    NOT_HOLDING,
    PEER_C,
    PYTHON_PEER,
    SPACE_WAITERS,
    TAKEN,
    actor_env,
    c_peer,
    compile_c,
    consumer_line,
    frames,
    peek_u32,
    peek_u64,
    rust_programs,
    unframe,
    wait_until,
)

COUNT = 1500
TIMEOUT_S = 60


@pytest.fixture(scope="session")
def peer(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The C peer program, built once per session."""
    return c_peer(tmp_path_factory)


@pytest.fixture(scope="session")
def programs() -> SimpleNamespace:
    """The crate's programs, built once per session."""
    return rust_programs()


@pytest.fixture
def ring() -> Iterator[Ring]:
    """A 4 KiB SPSC ring for one test, unlinked after it."""
    made = Ring.create(f"flowc-crust-{secrets.token_hex(6)}", 4096, 1, 1)
    yield made
    made.close()
    Ring.unlink(made.name)


def test_c_producer_to_rust_consumer(peer: Path, programs: SimpleNamespace, ring: Ring,
                                     tmp_path: Path) -> None:
    """The C producer's messages reach the Rust consumer intact and in order, through wraps."""
    out = tmp_path / "rust.frames"
    with open(out, "wb") as sink:
        consumer = subprocess.Popen([programs.consumer, "--timeout", "20", "--count", str(COUNT)],
                                    env=actor_env(ring.name, 0, "inputs"), stdout=sink, stderr=subprocess.PIPE)
    producer = subprocess.run([str(peer), "send", ring.name, "0", str(COUNT), "5"], capture_output=True, text=True,
                              timeout=TIMEOUT_S, check=False)
    assert producer.returncode == 0, producer.stdout + producer.stderr
    _, err = consumer.communicate(timeout=TIMEOUT_S)
    assert consumer.returncode == 0, err.decode()
    got = unframe(out.read_bytes())
    assert got == [message(k, 5, ring.max_message) for k in range(COUNT)], "order and content kept"
    assert ring.stats()["published_bytes"] > 4 * ring.buffer_size, "the ring wrapped"


def test_rust_producer_to_c_consumer(peer: Path, programs: SimpleNamespace, ring: Ring,
                                     tmp_path: Path) -> None:
    """The Rust producer's messages pass the C consumer's byte-for-byte check."""
    source = tmp_path / "rust.frames"
    source.write_bytes(frames([message(k, 9, ring.max_message) for k in range(COUNT)]))
    consumer = subprocess.Popen([str(peer), "recv", ring.name, "0", str(COUNT), "9"], stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)
    with open(source, "rb") as stdin:
        producer = subprocess.run([programs.producer, "--timeout", "20"], env=actor_env(ring.name, 0, "outputs"),
                                  stdin=stdin, capture_output=True, timeout=TIMEOUT_S, check=False)
    assert producer.returncode == 0, producer.stderr.decode()
    out, err = consumer.communicate(timeout=TIMEOUT_S)
    assert consumer.returncode == 0, out + err
    assert out.split()[:2] == ["ok", str(COUNT)], "the C consumer checked every message"


# ---------------------------------------------------------------- shared delivery: holders in C and in Rust

#: Five small messages: no wrap, so record i starts at the sum of the sizes before it.
HELD = [b"m0 held by a process that is not a consumer", b"m1", b"m2 and some more", b"m3", b"m4"]


def start_shared_consumer(peer: Path, programs: SimpleNamespace, impl: str, ring: Ring, index: int,
                          tmp_path: Path, **env: str) -> SimpleNamespace:
    """Start consumer ``index`` of ``impl``, writing frames until the ring is closed and drained.

    ``impl`` is ``c`` (the C peer), ``python`` (the Python peer: the C library through the extension) or ``rust``;
    ``env`` adds to the consumer's environment.
    """
    out = tmp_path / f"{impl}-{index}.frames"
    argv = {"c": [str(peer), "dump", ring.name, str(index), "0"],
            "python": [sys.executable, str(PYTHON_PEER), "dump", ring.name, str(index), "0"],
            "rust": [str(programs.consumer), "--timeout", "20"]}[impl]
    with open(out, "wb") as sink:
        proc = subprocess.Popen(argv, env={**actor_env(ring.name, index, "inputs"), **env}, stdout=sink,
                                stderr=subprocess.PIPE)
    return SimpleNamespace(proc=proc, out=out)


@pytest.fixture
def held_ring() -> Iterator[SimpleNamespace]:
    """A closed shared ring (3 consumers) holding :data:`HELD`, whose first record consumer 2 took and holds.

    ``taken`` is past that record, the release position still at 0, and consumer 2's ``holder_pid`` is a live
    ``sleep`` process that is no consumer at all.

    Yields:
        ``ring``, ``holder`` (the sleep process: kill it to make the holder die), ``pos`` (each record's position).
    """
    made = Ring.create(f"flowc-crust-{secrets.token_hex(6)}", 4096, 1, 3, delivery="shared")
    holder = subprocess.Popen(["sleep", "120"])
    try:
        tx = made.producer(0)
        for data in HELD:
            assert tx.send(data, timeout=5)
        made.close_writers()  # consumers drain what is published, then finish
        pos = [0]
        for data in HELD:
            pos.append(pos[-1] + 8 + (len(data) + 7) // 8 * 8)
        with open(f"/dev/shm/{made.name}", "r+b") as segment:
            for offset, fmt, value in [(consumer_line(made, 2) + HOLDING, "<Q", 0),
                                       (consumer_line(made, 2) + HOLDER_PID, "<i", holder.pid),
                                       (consumer_line(made, 0) + TAKEN, "<Q", pos[1])]:
                segment.seek(offset)
                segment.write(struct.pack(fmt, value))
        yield SimpleNamespace(ring=made, holder=holder, pos=pos)
    finally:
        holder.kill()
        holder.wait()
        made.close()
        Ring.unlink(made.name)


def holding(ring: Ring, index: int) -> int:
    """Consumer ``index``'s ``holding`` word, as the other processes see it."""
    return peek_u64(ring.name, consumer_line(ring, index) + HOLDING)


ORDERS = pytest.mark.parametrize("first,second", [("rust", "c"), ("c", "rust")])


@ORDERS
def test_shared_consumers_of_both_implementations_wait_for_a_live_holder(
        peer: Path, programs: SimpleNamespace, held_ring: SimpleNamespace, tmp_path: Path, first: str,
        second: str) -> None:
    """Each consumer waits to release behind a live holder; a dead holder's record is skipped, a live one's not.

    Once the holder of m0 dies one of the two releases m0 on its behalf (dropped once), and each releases and
    delivers the record it took itself: the other never skips the record of a live consumer.
    """
    ring, pos = held_ring.ring, held_ring.pos
    a = start_shared_consumer(peer, programs, first, ring, 0, tmp_path)
    wait_until(lambda: holding(ring, 0) == pos[1], f"the {first} consumer to take m1")
    wait_until(lambda: peek_u32(ring.name, SPACE_WAITERS) >= 1, f"the {first} consumer to sleep on the space doorbell")
    b = start_shared_consumer(peer, programs, second, ring, 1, tmp_path)
    wait_until(lambda: holding(ring, 1) == pos[2], f"the {second} consumer to take m2")
    time.sleep(0.05)  # several liveness checks: the holder is alive, both keep waiting
    assert a.proc.poll() is None and b.proc.poll() is None
    assert peek_u64(ring.name, consumer_line(ring, 0)) == 0, "nothing released past a live holder"
    assert ring.stats()["dropped"] == 0
    assert peek_u32(ring.name, consumer_line(ring, 0) + HOLDER_PID) == a.proc.pid
    assert peek_u32(ring.name, consumer_line(ring, 1) + HOLDER_PID) == b.proc.pid
    held_ring.holder.kill()
    held_ring.holder.wait()
    got = []
    for consumer in (a, b):
        _, err = consumer.proc.communicate(timeout=30)
        assert consumer.proc.returncode == 0, err.decode()
        got.append(unframe(consumer.out.read_bytes()))
    assert got[0][0] == HELD[1] and got[1][0] == HELD[2], "each delivered the record it held"
    assert sorted(got[0] + got[1]) == sorted(HELD[1:]), "the rest exactly once"
    stats = ring.stats()
    assert stats["dropped"] == 1 and stats["received"] == 4 and not stats["broken"]
    assert stats["received_per_consumer"] == [len(got[0]), len(got[1]), 0]
    assert [holding(ring, j) for j in range(2)] == [NOT_HOLDING] * 2
    assert peek_u64(ring.name, consumer_line(ring, 0)) == pos[-1], "the group released everything"


@ORDERS
def test_a_shared_consumer_killed_holding_a_record_is_skipped_by_the_other_implementation(
        peer: Path, programs: SimpleNamespace, held_ring: SimpleNamespace, tmp_path: Path, first: str,
        second: str) -> None:
    """The first consumer dies while it holds m1; the second releases m0 and m1 on behalf of their dead holders."""
    ring, pos = held_ring.ring, held_ring.pos
    a = start_shared_consumer(peer, programs, first, ring, 0, tmp_path)
    wait_until(lambda: holding(ring, 0) == pos[1], f"the {first} consumer to take m1")
    a.proc.send_signal(signal.SIGKILL)
    assert a.proc.wait(timeout=30) == -signal.SIGKILL
    b = start_shared_consumer(peer, programs, second, ring, 1, tmp_path)
    wait_until(lambda: holding(ring, 1) == pos[2], f"the {second} consumer to take m2")
    time.sleep(0.05)
    assert b.proc.poll() is None and ring.stats()["dropped"] == 0, "it waits while m0's holder lives"
    held_ring.holder.kill()
    held_ring.holder.wait()
    _, err = b.proc.communicate(timeout=30)
    assert b.proc.returncode == 0, err.decode()
    assert unframe(b.out.read_bytes()) == HELD[2:]
    stats = ring.stats()
    assert stats["dropped_per_consumer"] == [0, 2, 0] and stats["received_per_consumer"] == [0, 3, 0]
    assert not stats["broken"]
    assert peek_u64(ring.name, consumer_line(ring, 0)) == pos[-1]


# ---------------------------------------------------------------- shared delivery: what stops a wait to release

#: ``c-asan`` is the C peer built with AddressSanitizer and UndefinedBehaviorSanitizer.
IMPLS = pytest.mark.parametrize("impl", ["c", "c-asan", "python", "rust"])
#: How each consumer program exits when a ring call fails (the C and the Python peer 2, the Rust consumer 1).
FAILED = {"c": 2, "c-asan": 2, "python": 2, "rust": 1}
#: A consumer waiting to release looks every 10 ms: it must stop well within this (and its own 20 s timeout).
PROMPTLY_S = 10.0


@pytest.fixture(scope="session")
def asan_peer(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The C peer built with ASan and UBSan (any report is fatal), once per session."""
    return compile_c(tmp_path_factory.getbasetemp() / "ring-peers" / "peer-asan", PEER_C, "-O1", "-g",
                     "-fsanitize=address,undefined", "-fno-sanitize-recover=undefined", "-fno-omit-frame-pointer")


def waiting_to_release(request: pytest.FixtureRequest, programs: SimpleNamespace, impl: str,
                       held_ring: SimpleNamespace, tmp_path: Path) -> SimpleNamespace:
    """Start consumer 0 of ``impl`` on ``held_ring``; return once it took m1 and sleeps, waiting to release it."""
    ring, pos = held_ring.ring, held_ring.pos
    peer = request.getfixturevalue("asan_peer" if impl == "c-asan" else "peer")
    # the peer returns on a failed call without freeing what it allocated: no leak reports, every other one stays
    env = {"ASAN_OPTIONS": "detect_leaks=0"} if impl == "c-asan" else {}
    consumer = start_shared_consumer(peer, programs, impl.removesuffix("-asan"), ring, 0, tmp_path, **env)
    request.addfinalizer(lambda: (consumer.proc.kill(), consumer.proc.wait()))  # a failed test leaves no process
    wait_until(lambda: holding(ring, 0) == pos[1], f"the {impl} consumer to take m1")
    wait_until(lambda: peek_u32(ring.name, SPACE_WAITERS) >= 1, f"the {impl} consumer to sleep on the space doorbell")
    time.sleep(0.05)  # several liveness checks: m0's holder is alive, the consumer keeps waiting
    assert consumer.proc.poll() is None
    return consumer


def finished(consumer: SimpleNamespace) -> tuple[int, str]:
    """The exit code and stderr of a consumer that must end within :data:`PROMPTLY_S` (killed if it does not)."""
    try:
        _, err = consumer.proc.communicate(timeout=PROMPTLY_S)
    except subprocess.TimeoutExpired:
        consumer.proc.kill()
        consumer.proc.communicate()
        err = None
    if err is None:
        pytest.fail(f"the consumer still waits to release after {PROMPTLY_S} s")
    assert b"Sanitizer" not in err and b"runtime error" not in err, err.decode()
    return consumer.proc.returncode, err.decode()


def poke(ring: Ring, offset: int, fmt: str, value: int) -> None:
    """Write ``value`` (struct format ``fmt``) at ``offset`` of the segment file, as another process would."""
    with open(f"/dev/shm/{ring.name}", "r+b") as segment:
        segment.seek(offset)
        segment.write(struct.pack("<" + fmt, value))


@IMPLS
def test_a_release_position_more_than_a_ring_behind_a_claim_breaks_the_ring(
        request: pytest.FixtureRequest, programs: SimpleNamespace, held_ring: SimpleNamespace, tmp_path: Path,
        impl: str) -> None:
    """The release position is corrupted to 2^40 bytes behind the claim of a consumer waiting to release it.

    Producers never publish more than a ring past the release position, and a consumer only takes what is
    published, so the positions are corrupt: the consumer marks the ring broken and fails at once. It used to take
    the garbage there for records of dead holders and skip them for ever, about a hundred a second, each counted
    dropped.
    """
    ring = held_ring.ring
    consumer = waiting_to_release(request, programs, impl, held_ring, tmp_path)
    far_behind = -(1 << 40) % (1 << 64)
    poke(ring, consumer_line(ring, 0), "Q", far_behind)
    code, err = finished(consumer)
    assert code == FAILED[impl] and "ring broken: shared release position more than a ring behind" in err, err
    stats = ring.stats()
    assert stats["broken"], "every other endpoint sees it"
    assert stats["dropped"] == 0 and stats["received"] == 0, "no garbage taken for messages"
    assert peek_u64(ring.name, consumer_line(ring, 0)) == far_behind, "nothing released"
    assert holding(ring, 0) == NOT_HOLDING


@IMPLS
def test_a_consumer_waiting_to_release_stops_when_another_endpoint_breaks_the_ring(
        request: pytest.FixtureRequest, programs: SimpleNamespace, held_ring: SimpleNamespace, tmp_path: Path,
        impl: str) -> None:
    """Behind a live holder, a consumer waiting to release returns the broken error once the ring is marked broken.

    The holder ahead of it never releases: without looking at ``broken`` the consumer waited for ever.
    """
    ring = held_ring.ring
    consumer = waiting_to_release(request, programs, impl, held_ring, tmp_path)
    poke(ring, _ring.LAYOUT["broken"], "I", 1)  # as an endpoint marks it broken: the flag, then wake everyone
    ring.wake_all()
    code, err = finished(consumer)
    assert code == FAILED[impl] and "ring broken: another endpoint found it corrupt" in err, err
    assert peek_u64(ring.name, consumer_line(ring, 0)) == 0, "nothing released"
    assert holding(ring, 0) == NOT_HOLDING
    stats = ring.stats()
    assert stats["broken"] and stats["dropped"] == 0 and stats["received"] == 0
