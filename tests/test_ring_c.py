"""The ring's C API (flowc_ring.h) against rings the Python runtime creates.

Both directions, hostile headers and positions, hostile FLOWC_CHANNELS, a C++ build of the header, and sanitizer
builds (ASan+UBSan, TSan).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from flowc.runtime import _ring
from flowc.runtime.ring import Ring, RingError
from ring_peer_python import message
from ring_peers import PEER_C, c_peer, compile_c, need_tool

from conftest import in_ci

PREFIX = f"flowc-ringc-{os.getpid()}-"
LAYOUT = _ring.LAYOUT
RUN_TIMEOUT = 60

# The header and the API as C++ sees them (compiled by g++, linked with the C library).
PEER_CXX = r"""
#include "flowc_ring.h"

#include <cstdio>
#include <string>

int main(int argc, char **argv) {
    if (argc != 2) return 64;
    flowc_ring *ring = nullptr;
    int rc = flowc_ring_attach(argv[1], &ring);
    if (rc != FLOWC_OK) {
        std::printf("%s: %s\n", flowc_strerror(rc), flowc_last_error());
        return 3;
    }
    flowc_ring_info info{};
    flowc_ring_info_of(ring, &info);
    flowc_producer *p = nullptr;
    if (flowc_producer_open(ring, 0, &p) != FLOWC_OK) return 2;
    const std::string hello = "hello from C++";
    rc = flowc_send(p, hello.data(), hello.size(), -1);
    flowc_producer_close(p);
    flowc_ring_close(ring);
    std::printf("ok %llu\n", static_cast<unsigned long long>(info.max_message));
    return rc == FLOWC_OK ? 0 : 2;
}
"""


@pytest.fixture(scope="module")
def build_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A directory for this module's builds."""
    return tmp_path_factory.mktemp("ring_c")


@pytest.fixture(scope="session")
def peer(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The C peer program, built once per session."""
    return c_peer(tmp_path_factory)


@pytest.fixture(scope="module")
def asan_peer(build_dir: Path) -> Path:
    """The C peer built with AddressSanitizer and UndefinedBehaviorSanitizer."""
    return compile_c(build_dir / "peer-asan", PEER_C, "-O1", "-g", "-fsanitize=address,undefined",
                     "-fno-sanitize-recover=undefined", "-fno-omit-frame-pointer")


@pytest.fixture
def ring_name() -> Iterator[str]:
    """A ring name unique to this test; its segments (and the ``-in``/``-out`` pair) are unlinked after it."""
    name = f"{PREFIX}{threading.get_ident() % 10000}-{os.urandom(3).hex()}"
    yield name
    for suffix in ("", "-in", "-out"):
        Ring.unlink(f"{name}{suffix}")


def run(program: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run ``program`` to completion and capture its output as text."""
    return subprocess.run([str(program), *args], capture_output=True, text=True, timeout=RUN_TIMEOUT, env=env,
                          check=False)


def python_to_c(program: Path, name: str, count: int) -> None:
    """Python sends ``count`` messages (wrapping a small ring many times); the C consumer checks each one."""
    with Ring.create(name, 4096, 1, 1) as ring:
        child = subprocess.Popen([str(program), "recv", name, "0", str(count), "7"], stdout=subprocess.PIPE,
                                 stderr=subprocess.PIPE, text=True)
        tx = ring.producer(0)
        for k in range(count):
            assert tx.send(message(k, 7, ring.max_message), timeout=20)
        out, err = child.communicate(timeout=RUN_TIMEOUT)
        assert child.returncode == 0, out + err
        assert out.split()[:2] == ["ok", str(count)]
        assert int(out.split()[2]) == sum(len(message(k, 7, ring.max_message)) for k in range(count))
        assert ring.stats()["published_bytes"] > 4 * ring.buffer_size  # wrapped


def c_to_python(program: Path, name: str, count: int) -> None:
    """The C producer sends ``count`` messages; Python checks order and content."""
    with Ring.create(name, 4096, 1, 1) as ring:
        rx = ring.consumer(0)
        child = subprocess.Popen([str(program), "send", name, "0", str(count), "3"], stdout=subprocess.PIPE,
                                 stderr=subprocess.PIPE, text=True)
        for k in range(count):
            assert rx.recv(timeout=20) == message(k, 3, ring.max_message), f"message {k}"
        out, err = child.communicate(timeout=RUN_TIMEOUT)
        assert child.returncode == 0, out + err
        assert rx.recv(timeout=0) is None
        assert ring.stats()["sent_per_producer"] == [count]


def test_python_to_c(peer: Path, ring_name: str) -> None:
    """Python produces, the C consumer checks every message."""
    python_to_c(peer, ring_name, 2000)


def test_c_to_python(peer: Path, ring_name: str) -> None:
    """The C producer sends, Python checks every message."""
    c_to_python(peer, ring_name, 2000)


def test_largest_message_both_ways(peer: Path, ring_name: str) -> None:
    """Every 50th message is max_message exactly; the C consumer receives them intact."""
    with Ring.create(ring_name, 1 << 16, 1, 1) as ring:
        largest = message(49, 0, ring.max_message)
        assert len(largest) == ring.max_message
        child = subprocess.Popen([str(peer), "recv", ring_name, "0", "50", "0"], stdout=subprocess.PIPE, text=True)
        tx = ring.producer(0)
        for k in range(50):
            assert tx.send(message(k, 0, ring.max_message), timeout=20)
        assert child.wait(timeout=RUN_TIMEOUT) == 0


def test_closed_ring_drains_then_reports_closed(peer: Path, ring_name: str) -> None:
    """A C consumer of a closed ring gets the pending messages, then ``ring closed``."""
    with Ring.create(ring_name, 4096, 1, 1) as ring:
        tx = ring.producer(0)
        for k in range(3):
            assert tx.send(message(k, 0, ring.max_message))
        ring.close_writers()
        proc = run(peer, "recv", ring_name, "0", "4", "0")
        assert proc.returncode == 2 and "recv: ring closed" in proc.stderr


def corrupt(ring: Ring, field: str, value: int, size: int = 8, base: int = 0) -> None:
    """Overwrite ``field`` (at ``base`` plus its header offset) with ``value`` of ``size`` bytes."""
    ring._mm[base + LAYOUT[field]:base + LAYOUT[field] + size] = value.to_bytes(size, "little")


def consumer_line(ring: Ring) -> int:
    """Offset of consumer 0's line in a ring of one producer."""
    return LAYOUT["header_size"] + LAYOUT["line_size"]


@pytest.mark.parametrize(("field", "value", "size", "why"), [
    ("magic", 0x4D414E474C4544, 8, "bad magic"),
    ("version", 2, 4, "unsupported version"),
    ("capacity", 0, 8, "bad capacity"),
    ("capacity", 1 << 40, 8, "capacity exceeds the segment"),
    ("producers", 0, 4, "producer or consumer count out of range"),
    ("data_offset", 64, 8, "data offset does not match layout"),
    ("max_message", 1 << 30, 8, "bad max_message"),
])
def test_corrupt_header_fails_attach(peer: Path, ring_name: str, field: str, value: int, size: int, why: str) -> None:
    """A corrupt header field makes the C attach fail with the ABI's reason and exit 3."""
    with Ring.create(ring_name, 4096, 1, 1) as ring:
        corrupt(ring, field, value, size)
        proc = run(peer, "attach", ring_name)
        assert proc.returncode == 3, proc.stdout + proc.stderr
        assert f"not a valid flowc ring segment: {why}" in proc.stderr


@pytest.mark.parametrize(("published", "cursor", "why"), [
    (3 * 4096, 0, "consumer cursor more than a ring behind"),
    (64, 13, "unaligned consumer cursor"),
    (0, 1 << 20, "consumer cursor ahead of the published position"),
])
def test_positions_past_capacity_break_the_ring(peer: Path, ring_name: str, published: int, cursor: int,
                                                why: str) -> None:
    """Impossible positions make the C consumer mark the ring broken, which Python then sees."""
    with Ring.create(ring_name, 4096, 1, 1) as ring:
        corrupt(ring, "published", published)
        corrupt(ring, "reserve", published)
        corrupt(ring, "cursor", cursor, base=consumer_line(ring))
        proc = run(peer, "attach", ring_name)
        assert proc.returncode == 2, proc.stdout + proc.stderr
        assert f"ring broken: {why}" in proc.stderr
        assert ring.stats()["broken"]
        with pytest.raises(RingError, match="broken"):
            ring.consumer(0).recv(timeout=0)


def test_corrupt_record_length_breaks_the_ring(peer: Path, ring_name: str) -> None:
    """A record length beyond max_message breaks the ring for the C consumer."""
    with Ring.create(ring_name, 4096, 1, 1) as ring:
        assert ring.producer(0).send(b"x" * 64)
        data = _ring.layout_size(0, 1, 1)
        ring._mm[data:data + 4] = (1 << 31).to_bytes(4, "little")
        proc = run(peer, "recv", ring_name, "0", "1", "0")
        assert proc.returncode == 2 and "ring broken: corrupt record length" in proc.stderr


def test_unaligned_reserve_breaks_the_ring_for_a_c_producer(peer: Path, ring_name: str) -> None:
    """An unaligned ``reserve`` breaks the ring for the C producer."""
    with Ring.create(ring_name, 4096, 1, 1) as ring:
        corrupt(ring, "reserve", 5)
        proc = run(peer, "send", ring_name, "0", "1", "0")
        assert proc.returncode == 2 and "ring broken: unaligned reserve position" in proc.stderr


def test_missing_ring(peer: Path) -> None:
    """Attaching a segment that does not exist is an error exit, not a crash."""
    proc = run(peer, "attach", f"{PREFIX}absent")
    assert proc.returncode == 3 and "no ring segment named" in proc.stderr


def test_channels_from_env_relays(peer: Path, ring_name: str) -> None:
    """FLOWC_CHANNELS as the launcher writes it (json.dumps of actor_io) attaches inputs and outputs by name."""
    size = 1 << 20  # holds all 100 messages: Python sends them before the relay starts
    with Ring.create(f"{ring_name}-in", size, 1, 1) as rin, Ring.create(f"{ring_name}-out", size, 1, 1) as rout:
        io = {"inputs": {"in": {"ring": f"{ring_name}-in", "index": 0}},
              "outputs": {"out": {"ring": f"{ring_name}-out", "index": 0}}}
        tx, rx = rin.producer(0), rout.consumer(0)
        for k in range(100):
            assert tx.send(message(k, 1, 1000), timeout=5)
        proc = run(peer, "env", "100", env={**os.environ, "FLOWC_CHANNELS": json.dumps(io)})
        assert proc.returncode == 0, proc.stdout + proc.stderr
        assert proc.stdout.strip() == "ok 100 inputs 1 outputs 1 first in"
        assert [rx.recv(timeout=5) for _ in range(100)] == [message(k, 1, 1000) for k in range(100)]


JUNK_CHANNELS = [
    "", " ", "{", "}", "[]", "null", '{"inputs": }', '{"inputs": {"in": {"ring": "x", "index": 0}}',
    '{"inputs": {"in": {"ring": "x", "index": 0}}} trailing', '{"inputs": {"in": {"ring": "x"}}}',
    '{"inputs": {"in": {"ring": "x", "index": -1}}}', '{"inputs": {"in": {"ring": "x", "index": 99999999999}}}',
    '{"inputs": {"in": {"ring": "x", "index": 1.5}}}', '{"inputs": {"in": {"ring": "x", "index": 01}}}',
    '{"inputs": {"in": {"ring": 5, "index": 0}}}', '{"inputs": {"in": {"ring": "x", "index": 0, "extra": 1}}}',
    '{"inputs": {"in": {"ring": "x", "ring": "y", "index": 0}}}', '{"other": {}}', '{"inputs": {}, "inputs": {}}',
    '{"inputs": {"in": {"ring": "\\ud800", "index": 0}}}', '{"inputs": {"in": {"ring": "\\u00", "index": 0}}}',
    '{"inputs": {"in": {"ring": "\\u0000", "index": 0}}}', '{"inputs": {"in": {"ring": "a\\q", "index": 0}}}',
    '{"inputs": {"in": {"ring": "", "index": 0}}}', '{"inputs": {"in": {"ring": "' + "r" * 300 + '", "index": 0}}}',
    '{"inputs": {"in": {"ring": "x\x01", "index": 0}}}', '{"inputs": {"in": {"ring": "unterminated',
    '{"inputs": {"a": {"ring": "x", "index": 0}, "a": {"ring": "x", "index": 0}}}', "{" * 10000,
]


@pytest.mark.parametrize("text", JUNK_CHANNELS)
def test_junk_channels_fail_cleanly_under_asan(asan_peer: Path, text: str) -> None:
    """Malformed FLOWC_CHANNELS is refused with exit 3 and no sanitizer report."""
    proc = run(asan_peer, "env", env={**os.environ, "FLOWC_CHANNELS": text})
    assert proc.returncode == 3, proc.stdout + proc.stderr
    assert "FLOWC_CHANNELS" in proc.stderr and "ERROR: AddressSanitizer" not in proc.stderr


def test_unset_channels_fail_cleanly(peer: Path) -> None:
    """An unset FLOWC_CHANNELS is refused with exit 3."""
    env = {k: v for k, v in os.environ.items() if k != "FLOWC_CHANNELS"}
    proc = run(peer, "env", env=env)
    assert proc.returncode == 3 and "FLOWC_CHANNELS is not set" in proc.stderr


def test_channels_naming_a_missing_ring(peer: Path) -> None:
    """A channel naming a missing segment is refused, naming the channel."""
    io = {"inputs": {"in": {"ring": f"{PREFIX}absent", "index": 0}}, "outputs": {}}
    proc = run(peer, "env", env={**os.environ, "FLOWC_CHANNELS": json.dumps(io)})
    assert proc.returncode == 3 and "channel 'in': no ring segment named" in proc.stderr


def test_exchange_under_asan_and_ubsan(asan_peer: Path, ring_name: str) -> None:
    """Both directions of the Python-C exchange are clean under ASan and UBSan."""
    python_to_c(asan_peer, ring_name, 1000)
    Ring.unlink(ring_name)
    c_to_python(asan_peer, ring_name, 1000)


def test_header_is_cxx_clean(build_dir: Path, ring_name: str) -> None:
    """The header compiles as C++17 and a C++ producer works."""
    program = compile_c(build_dir / "peer-cxx", PEER_CXX, "-O1", cxx=True)
    with Ring.create(ring_name, 4096, 1, 1) as ring:
        proc = run(program, ring_name)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        assert proc.stdout.split() == ["ok", str(ring.max_message)]
        assert ring.consumer(0).recv(timeout=1) == b"hello from C++"


# The smallest C actor (built with the README's command line): counts the messages of its input "data" until the
# channel is closed and drained.
ACTOR_C = r"""
#include "flowc_ring.h"

#include <stdio.h>

int main(void) {
    flowc_channels *ch = NULL;
    flowc_consumer *in = NULL;
    int rc = flowc_channels_from_env(&ch);
    if (rc == FLOWC_OK) rc = flowc_channels_input(ch, "data", &in);
    unsigned char buf[256];
    size_t len, count = 0, bytes = 0;
    while (rc == FLOWC_OK && (rc = flowc_recv(in, buf, sizeof buf, &len, 5000000000LL)) == FLOWC_OK) {
        count++;
        bytes += len;
    }
    if (rc != FLOWC_ECLOSED) {
        fprintf(stderr, "actor: %s: %s\n", flowc_strerror(rc), flowc_last_error());
        return 1;
    }
    printf("received %zu messages, %zu bytes\n", count, bytes);
    flowc_channels_free(ch);
    return 0;
}
"""


def test_ring_include_builds_a_c_actor_in_one_command(tmp_path: Path, ring_name: str) -> None:
    """The README's command line, as a shell runs it, builds an actor that works."""
    need_tool("cc")
    (tmp_path / "actor.c").write_text(ACTOR_C)
    path = os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])  # this install's flowc
    assert shutil.which("flowc", path=path), "the flowc command is not installed next to this Python"
    command = "cc $(flowc ring-include --cflags) actor.c $(flowc ring-include --libs) -o actor"
    build = subprocess.run(["sh", "-c", command], cwd=tmp_path, env={**os.environ, "PATH": path},
                           capture_output=True, text=True, timeout=RUN_TIMEOUT, check=False)
    assert build.returncode == 0, build.stderr
    with Ring.create(ring_name, 4096, 1, 1) as ring:
        tx = ring.producer(0)
        for data in (b"a", b"bc", b""):
            assert tx.send(data)
        ring.close_writers()
        io = {"inputs": {"data": {"ring": ring_name, "index": 0}}, "outputs": {}}
        proc = run(tmp_path / "actor", env={**os.environ, "FLOWC_CHANNELS": json.dumps(io)})
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "received 3 messages, 3 bytes\n"


def tsan_runs(program: Path) -> list[str] | None:
    """The command prefix under which a TSan program starts here, or None when TSan cannot run on this machine.

    TSan needs a fixed memory layout; kernels with more mmap randomisation than it supports refuse it ("unexpected
    memory mapping"), which turning address randomisation off for the process (setarch -R) works around.
    """
    for prefix in ([], ["setarch", os.uname().machine, "-R"]):
        try:
            proc = subprocess.run([*prefix, str(program)], capture_output=True, text=True, timeout=RUN_TIMEOUT,
                                  check=False)
        except FileNotFoundError:
            continue
        if proc.returncode == 64 and "ThreadSanitizer" not in proc.stderr:
            return prefix
    return None


def test_threads_under_tsan(build_dir: Path, ring_name: str) -> None:
    """Two producer threads and a consumer thread of one process: TSan sees every access to the shared lines."""
    # gcc warns that TSan does not model standalone fences (the doorbell's Dekker fence, drop_oldest's fences);
    # the payload here is ordered by release/acquire on `published` and the cursors, which TSan does model.
    program = compile_c(build_dir / "peer-tsan", PEER_C, "-O1", "-g", "-fsanitize=thread", "-Wno-tsan")
    prefix = tsan_runs(program)
    if prefix is None:
        reason = "ThreadSanitizer cannot run on this machine (its memory layout is refused, even with setarch -R)"
        if in_ci():
            pytest.fail(reason, pytrace=False)
        pytest.skip(reason)
    with Ring.create(ring_name, 4096, 2, 1):
        proc = subprocess.run([*prefix, str(program), "threads", ring_name, "2", "2000"], capture_output=True,
                              text=True, timeout=RUN_TIMEOUT, check=False,
                              env={**os.environ, "TSAN_OPTIONS": "halt_on_error=1"})
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.strip() == "ok 4000"
