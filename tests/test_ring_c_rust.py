"""The third pair of the conformance suite: the C library and the Rust crate on one ring, both directions.

Python↔C is in ``test_ring_c.py`` and Python↔Rust in ``test_ring_rust.py``; here a C producer feeds a Rust consumer
and a Rust producer feeds a C consumer, through a small ring that wraps many times, with the largest message.
"""

from __future__ import annotations

import secrets
import subprocess
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import pytest

from flowc.runtime.ring import Ring
from ring_peer_python import message
from ring_peers import actor_env, c_peer, frames, rust_programs, unframe

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
