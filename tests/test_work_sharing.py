"""Shared delivery: each message of a ``delivery: shared`` channel goes to exactly one of its readers.

Real rings in /dev/shm and real processes: producers number their messages, consumers record what they took. The
Rust crate's consumer program (``flowc-ring-consumer``) joins the Python consumers of a group too.
"""

from __future__ import annotations

import json
import multiprocessing as mp
import os
import signal
import struct
import subprocess
import sys
import time
from pathlib import Path

import pytest

from flowc.pipeline import compile_source
from flowc.runtime.ring import Ring, RingError
from ring_peers import DATA_WAITERS, actor_env, peek_u32, rust_programs, unframe, wait_until

CTX = mp.get_context("fork")
SEQ = struct.Struct("<IQ")


def _one_core() -> None:
    """Put the calling process on the first CPU it may use: its peers there preempt it at any instruction."""
    os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})


def _produce(name: str, index: int, count: int, crowd: bool = False) -> None:
    if crowd:
        _one_core()
    tx = Ring.attach(name).producer(index)
    for seq in range(count):
        tx.send(SEQ.pack(index, seq))


def _consume(name: str, index: int, out: str, sleep_s: float, crowd: bool = False) -> None:
    if crowd:
        _one_core()
    rx = Ring.attach(name).consumer(index)
    with open(out, "wb") as handle:
        while (message := rx.recv(timeout=10)) is not None:
            handle.write(message)
            handle.flush()
            if sleep_s:
                time.sleep(sleep_s)


def _taken(path: Path) -> list[tuple[int, int]]:
    data = path.read_bytes() if path.exists() else b""
    return [SEQ.unpack_from(data, i) for i in range(0, len(data) - len(data) % SEQ.size, SEQ.size)]


def run_group(tmp_path: Path, producers: int, consumers: int, count: int, sleep_s: float = 0.0,
              kill_one_after: int | None = None, size: int = 1 << 16,
              crowd: bool = False) -> tuple[list[list[tuple[int, int]]], dict, float]:
    """Run producers and consumers on one shared ring; return what each consumer took, the stats and the time.

    ``crowd`` puts them all on one CPU.
    """
    name = f"flowc-test-shared-{os.getpid()}-{time.monotonic_ns()}"
    ring = Ring.create(name, size, producers, consumers, delivery="shared")
    outs = [tmp_path / f"consumer-{j}.bin" for j in range(consumers)]
    try:
        readers = [CTX.Process(target=_consume, args=(name, j, str(outs[j]), sleep_s, crowd)) for j in range(consumers)]
        writers = [CTX.Process(target=_produce, args=(name, i, count, crowd)) for i in range(producers)]
        start = time.monotonic()
        for proc in readers + writers:
            proc.start()
        if kill_one_after is not None:
            while len(_taken(outs[0])) < kill_one_after:
                time.sleep(0.001)
            os.kill(readers[0].pid, signal.SIGKILL)
        for proc in writers:
            proc.join(60)
        ring.close_writers()
        ring.wake_all()
        for proc in readers:
            proc.join(60)
        elapsed = time.monotonic() - start
        return [_taken(out) for out in outs], ring.stats(), elapsed
    finally:
        ring.close()
        Ring.unlink(name)


def test_each_message_goes_to_exactly_one_consumer(tmp_path: Path) -> None:
    taken, stats, _ = run_group(tmp_path, producers=2, consumers=3, count=20_000)
    everything = [m for share in taken for m in share]
    assert sorted(everything) == sorted((i, s) for i in range(2) for s in range(20_000))
    for share in taken:
        for producer in range(2):
            seqs = [s for i, s in share if i == producer]
            assert seqs == sorted(seqs), "a consumer sees each producer's messages in order"
    assert stats["received_per_consumer"] == [len(share) for share in taken]
    assert stats["delivery"] == "shared" and stats["dropped"] == 0


def test_more_consumers_than_cores_on_a_small_ring(tmp_path: Path) -> None:
    """Consumers preempted between reading ``taken`` and ``published`` see the ring lap them: that is no corruption."""
    for attempt in range(3):
        (tmp_path / str(attempt)).mkdir()
        taken, stats, _ = run_group(tmp_path / str(attempt), producers=2, consumers=6, count=5_000, size=256,
                                    crowd=True)
        assert not stats["broken"]
        everything = sorted(m for share in taken for m in share)
        assert everything == sorted((i, s) for i in range(2) for s in range(5_000))


def test_rust_and_python_consumers_crowded_on_one_core_share_a_small_ring(tmp_path: Path) -> None:
    """Rust consumers preempted between their loads of ``taken`` and ``published`` retry; nothing is corrupt."""
    consumer = rust_programs().consumer
    name = f"flowc-test-shared-rust-{os.getpid()}-{time.monotonic_ns()}"
    ring = Ring.create(name, 256, 2, 6, delivery="shared")
    python_out = tmp_path / "python.bin"
    try:
        rust = []
        for j in range(4):
            with open(tmp_path / f"rust-{j}.frames", "wb") as sink:
                rust.append(subprocess.Popen([consumer, "--timeout", "20"], env=actor_env(name, j, "inputs"),
                                             stdout=sink, stderr=subprocess.PIPE, preexec_fn=_one_core))
        wait_until(lambda: peek_u32(name, DATA_WAITERS) >= len(rust), "the Rust consumers to wait for data")
        # the Python consumers pause after each message: on one core, whoever runs first would take everything
        readers = [CTX.Process(target=_consume, args=(name, 4 + j, f"{python_out}{j}", 0.0002, True))
                   for j in range(2)]
        writers = [CTX.Process(target=_produce, args=(name, i, 20_000, True)) for i in range(2)]
        for proc in readers + writers:
            proc.start()
        for proc in writers:
            proc.join(60)
        ring.close_writers()
        for proc in readers:
            proc.join(60)
        shares = []
        for j, proc in enumerate(rust):
            _, err = proc.communicate(timeout=60)
            assert proc.returncode == 0, err.decode()
            shares.append([SEQ.unpack(m) for m in unframe((tmp_path / f"rust-{j}.frames").read_bytes())])
        shares += [_taken(Path(f"{python_out}{j}")) for j in range(2)]
        stats = ring.stats()
    finally:
        ring.close()
        Ring.unlink(name)
    assert not stats["broken"] and stats["dropped"] == 0
    assert sorted(m for share in shares for m in share) == sorted((i, s) for i in range(2) for s in range(20_000))
    for share in shares:
        for producer in range(2):
            seqs = [s for i, s in share if i == producer]
            assert seqs == sorted(seqs), "a consumer sees each producer's messages in order"
    assert stats["received_per_consumer"] == [len(share) for share in shares]
    assert sum(map(len, shares[:4])) > 0, "the Rust consumers took part"


def test_a_consumer_killed_mid_stream_leaves_the_rest_to_the_others(tmp_path: Path) -> None:
    taken, stats, _ = run_group(tmp_path, producers=1, consumers=3, count=30_000, kill_one_after=2_000)
    everything = [m for share in taken for m in share]
    assert len(everything) == len(set(everything)), "no message twice"
    # the killed one may have taken one message and died before writing it down (then it counts as dropped)
    missing = 30_000 - len(everything)
    assert 0 <= missing <= 1 + stats["dropped"]
    assert not stats["broken"]


def test_throughput_scales_with_sleeping_replicas(tmp_path: Path) -> None:
    one = run_group(tmp_path / "1", producers=1, consumers=1, count=300, sleep_s=0.002) if (
        (tmp_path / "1").mkdir() or True) else None
    three = run_group(tmp_path / "3", producers=1, consumers=3, count=300, sleep_s=0.002) if (
        (tmp_path / "3").mkdir() or True) else None
    assert sum(len(s) for s in one[0]) == sum(len(s) for s in three[0]) == 300
    assert all(len(share) > 0 for share in three[0]), "every replica took part"
    assert one[2] / three[2] > 2.0, f"1 replica {one[2]:.2f} s, 3 replicas {three[2]:.2f} s"


def test_a_shared_ring_refuses_drop_oldest() -> None:
    with pytest.raises(RingError, match="cannot drop the oldest"):
        Ring.create(f"flowc-test-shared-bad-{os.getpid()}", 4096, 1, 2, policy="drop_oldest", delivery="shared")


DOC = """
actors:
  feed: {type: producer, outputs: [jobs], run: "flowc.actors:synthetic_producer", params: {rate: 2000, count: 500}}
  w1: {type: consumer, inputs: [jobs], run: "flowc.actors:latency_sink"}
  w2: {type: consumer, inputs: [jobs], run: "flowc.actors:latency_sink"}
nodes:
  n:
    hostname: localhost
    actors: {feed: {cpu: [0]}, w1: {cpu: [1]}, w2: {cpu: [2]}}
    local_channels: {jobs: {delivery: shared}}
"""


def test_the_compiler_plans_shared_channels_and_warns_about_one_reader() -> None:
    result = compile_source(DOC, "shared.yaml")
    assert result.ok and result.plan.nodes["n"].channels["jobs"].delivery == "shared"
    single = DOC.replace('  w2: {type: consumer, inputs: [jobs], run: "flowc.actors:latency_sink"}\n', "")
    single = single.replace(", w2: {cpu: [2]}", "")
    warned = compile_source(single, "single.yaml")
    assert [d.code for d in warned.diagnostics] == ["FLC346"]


def test_a_launched_node_shares_the_work(tmp_path: Path) -> None:
    (tmp_path / "shared.yaml").write_text(DOC)
    flowc = [sys.executable, "-m", "flowc"]
    assert subprocess.run([*flowc, "build", str(tmp_path / "shared.yaml"), "-o", str(tmp_path / "out"), "-t",
                           "plan"], capture_output=True, check=False).returncode == 0
    done = subprocess.run([*flowc, "launch", str(tmp_path / "out" / "flowc" / "plan.json"), "--node", "n",
                           "--oversubscribe", "--report", str(tmp_path / "r.json")], capture_output=True, text=True,
                          check=False, timeout=120)
    assert done.returncode == 0, done.stderr
    report = json.loads((tmp_path / "r.json").read_text())
    counts = {sink: summary["count"] for sink, summary in report["sinks"].items()}
    assert sum(counts.values()) == 500 and report["channels"]["jobs"]["received"] == 500
    assert report["failure"] is None
