"""The ring's C API (flowc_ring.h) against rings the Python runtime creates.

Both directions, hostile headers and positions, hostile FLOWC_CHANNELS, a C++ build of the header, and sanitizer
builds (ASan+UBSan, TSan).
"""

from __future__ import annotations

import json
import os
import struct
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from flowc.cli.ring import ring_dirs
from flowc.runtime import _ring
from flowc.runtime.ring import Ring, RingError

from conftest import in_ci, require_tool

INCLUDE, SOURCES = ring_dirs()
PREFIX = f"flowc-ringc-{os.getpid()}-"
LAYOUT = _ring.LAYOUT
STRICT = ["-Wall", "-Wextra", "-Werror"]
RUN_TIMEOUT = 60

# One program with a mode per test: `recv`/`send` exchange checkable messages with Python, `attach` reports what
# attaching a (possibly corrupt) segment gives, `env` relays through FLOWC_CHANNELS, `threads` runs producers and
# a consumer as threads of one process (what TSan can see). Exit 0: done, 2: a ring call failed, 3: attach or
# FLOWC_CHANNELS failed, 4: a message differed from the expected one.
PEER_C = r"""
#include "flowc_ring.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define TIMEOUT_NS 20000000000LL

/* message k of producer `who`: [u32 k][u32 who] then bytes (k + j) & 0xff, length from k and the ring's limit */
static size_t msg_len(uint32_t k, size_t maxlen) {
    return k % 50u == 49u ? maxlen : 8u + ((size_t)k * 37u) % (maxlen - 7u);
}

static void fill(unsigned char *buf, uint32_t k, uint32_t who, size_t len) {
    memcpy(buf, &k, 4);
    memcpy(buf + 4, &who, 4);
    for (size_t j = 8; j < len; j++) buf[j] = (unsigned char)((k + j) & 0xffu);
}

static int check(const unsigned char *buf, size_t len, uint32_t k, uint32_t who, size_t maxlen) {
    if (len != msg_len(k, maxlen)) return 0;
    uint32_t got_k, got_who;
    memcpy(&got_k, buf, 4);
    memcpy(&got_who, buf + 4, 4);
    if (got_k != k || got_who != who) return 0;
    for (size_t j = 8; j < len; j++)
        if (buf[j] != (unsigned char)((k + j) & 0xffu)) return 0;
    return 1;
}

static int failed(const char *what, int rc) {
    printf("%s: %s: %s\n", what, flowc_strerror(rc), flowc_last_error());
    return rc == FLOWC_EBADSEG || rc == FLOWC_ENOENT || rc == FLOWC_EBADENV ? 3 : 2;
}

static int open_ring(const char *name, flowc_ring **ring, flowc_ring_info *info) {
    int rc = flowc_ring_attach(name, ring);
    if (rc != FLOWC_OK) return failed("attach", rc);
    flowc_ring_info_of(*ring, info);
    return 0;
}

static int do_recv(const char *name, uint32_t index, uint32_t n, uint32_t who) {
    flowc_ring *ring;
    flowc_ring_info info;
    flowc_consumer *c;
    int rc = open_ring(name, &ring, &info);
    if (rc) return rc;
    if ((rc = flowc_consumer_open(ring, index, &c)) != FLOWC_OK) return failed("consumer_open", rc);
    unsigned char *buf = malloc(info.max_message);
    unsigned long long bytes = 0;
    for (uint32_t k = 0; k < n; k++) {
        size_t len = 0;
        rc = flowc_recv(c, buf, info.max_message, &len, TIMEOUT_NS);
        if (rc != FLOWC_OK) return failed("recv", rc);
        if (!check(buf, len, k, who, info.max_message)) {
            printf("message %u differs (len %zu)\n", k, len);
            return 4;
        }
        bytes += len;
    }
    printf("ok %u %llu\n", n, bytes);
    free(buf);
    flowc_consumer_close(c);
    flowc_ring_close(ring);
    return 0;
}

static int do_send(const char *name, uint32_t index, uint32_t n, uint32_t who) {
    flowc_ring *ring;
    flowc_ring_info info;
    flowc_producer *p;
    int rc = open_ring(name, &ring, &info);
    if (rc) return rc;
    if ((rc = flowc_producer_open(ring, index, &p)) != FLOWC_OK) return failed("producer_open", rc);
    unsigned char *buf = malloc(info.max_message + 1);
    for (uint32_t k = 0; k < n; k++) {
        size_t len = msg_len(k, info.max_message);
        fill(buf, k, who, len);
        if ((rc = flowc_send(p, buf, len, TIMEOUT_NS)) != FLOWC_OK) return failed("send", rc);
    }
    rc = flowc_send(p, buf, info.max_message + 1, 0);
    if (rc != FLOWC_ETOOBIG) return failed("oversized send", rc);
    printf("ok %u\n", n);
    free(buf);
    flowc_producer_close(p);
    flowc_ring_close(ring);
    return 0;
}

static int do_attach(const char *name) {
    flowc_ring *ring;
    flowc_ring_info info;
    flowc_consumer *c;
    int rc = open_ring(name, &ring, &info);
    if (rc) return rc;
    if ((rc = flowc_consumer_open(ring, 0, &c)) != FLOWC_OK) return failed("consumer_open", rc);
    unsigned char buf[64];
    size_t len;
    rc = flowc_recv(c, buf, sizeof buf, &len, 0);
    if (rc != FLOWC_ETIMEOUT) return failed("recv", rc);
    printf("ok capacity %llu\n", (unsigned long long)info.capacity);
    flowc_consumer_close(c);
    flowc_ring_close(ring);
    return 0;
}

static int do_env(uint32_t n) {
    flowc_channels *ch;
    flowc_consumer *in;
    flowc_producer *out;
    int rc = flowc_channels_from_env(&ch);
    if (rc != FLOWC_OK) return failed("channels", rc);
    if ((rc = flowc_channels_input(ch, "in", &in)) != FLOWC_OK) return failed("input", rc);
    if ((rc = flowc_channels_output(ch, "out", &out)) != FLOWC_OK) return failed("output", rc);
    unsigned char buf[4096];
    for (uint32_t k = 0; k < n; k++) {
        size_t len;
        if ((rc = flowc_recv(in, buf, sizeof buf, &len, TIMEOUT_NS)) != FLOWC_OK) return failed("recv", rc);
        if ((rc = flowc_send(out, buf, len, TIMEOUT_NS)) != FLOWC_OK) return failed("send", rc);
    }
    printf("ok %u inputs %u outputs %u first %s\n", n, flowc_channels_count(ch, 0), flowc_channels_count(ch, 1),
           flowc_channels_name(ch, 0, 0));
    flowc_channels_free(ch);
    return 0;
}

typedef struct {
    flowc_ring *ring;
    uint32_t who, n;
    size_t maxlen;
    int rc;
} worker;

static void *produce(void *arg) {
    worker *w = arg;
    flowc_producer *p;
    unsigned char *buf = malloc(w->maxlen);
    w->rc = flowc_producer_open(w->ring, w->who, &p);
    for (uint32_t k = 0; w->rc == FLOWC_OK && k < w->n; k++) {
        size_t len = msg_len(k, w->maxlen);
        fill(buf, k, w->who, len);
        w->rc = flowc_send(p, buf, len, TIMEOUT_NS);
    }
    if (w->rc == FLOWC_OK) flowc_producer_close(p);
    free(buf);
    return NULL;
}

static int do_threads(const char *name, uint32_t producers, uint32_t n) {
    flowc_ring *ring;
    flowc_ring_info info;
    flowc_consumer *c;
    int rc = open_ring(name, &ring, &info);
    if (rc) return rc;
    if ((rc = flowc_consumer_open(ring, 0, &c)) != FLOWC_OK) return failed("consumer_open", rc);
    worker w[8];
    pthread_t t[8];
    for (uint32_t i = 0; i < producers; i++) {
        w[i] = (worker){ring, i, n, info.max_message, 0};
        pthread_create(&t[i], NULL, produce, &w[i]);
    }
    uint32_t next[8] = {0};
    unsigned char *buf = malloc(info.max_message);
    for (uint32_t got = 0; got < producers * n; got++) {
        size_t len;
        if ((rc = flowc_recv(c, buf, info.max_message, &len, TIMEOUT_NS)) != FLOWC_OK) return failed("recv", rc);
        uint32_t who;
        memcpy(&who, buf + 4, 4);
        if (who >= producers || !check(buf, len, next[who], who, info.max_message)) {
            printf("message %u of producer %u differs\n", next[who < producers ? who : 0], who);
            return 4;
        }
        next[who]++;
    }
    for (uint32_t i = 0; i < producers; i++) {
        pthread_join(t[i], NULL);
        if (w[i].rc != FLOWC_OK) return failed("producer thread", w[i].rc);
    }
    printf("ok %u\n", producers * n);
    free(buf);
    flowc_consumer_close(c);
    flowc_ring_close(ring);
    return 0;
}

int main(int argc, char **argv) {
    if (argc >= 2 && !strcmp(argv[1], "env")) return do_env(argc > 2 ? (uint32_t)atoi(argv[2]) : 0);
    if (argc == 3 && !strcmp(argv[1], "attach")) return do_attach(argv[2]);
    if (argc == 5 && !strcmp(argv[1], "threads"))
        return do_threads(argv[2], (uint32_t)atoi(argv[3]), (uint32_t)atoi(argv[4]));
    if (argc == 6) {
        uint32_t index = (uint32_t)atoi(argv[3]), n = (uint32_t)atoi(argv[4]), who = (uint32_t)atoi(argv[5]);
        if (!strcmp(argv[1], "recv")) return do_recv(argv[2], index, n, who);
        if (!strcmp(argv[1], "send")) return do_send(argv[2], index, n, who);
    }
    fprintf(stderr, "usage: peer recv|send RING INDEX COUNT WHO | attach RING | env [N] | threads RING P N\n");
    return 64;
}
"""

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


def message(k: int, who: int, maxlen: int) -> bytes:
    """Message ``k`` of producer ``who``, as ``msg_len``/``fill`` in the C program make it."""
    length = maxlen if k % 50 == 49 else 8 + (k * 37) % (maxlen - 7)
    return struct.pack("<II", k, who) + bytes((k + j) & 0xFF for j in range(8, length))


def compile_c(out: Path, source: str, *flags: str, cxx: bool = False) -> Path:
    """Build ``source`` with the ring library into ``out``; the library itself is always C (gcc, C11)."""
    gcc = require_tool("gcc")
    out.parent.mkdir(parents=True, exist_ok=True)
    objects = []
    for lib in SOURCES:
        obj = out.parent / f"{out.name}-{lib.stem}.o"
        subprocess.run([gcc, "-std=c11", *STRICT, *flags, f"-I{INCLUDE}", "-c", str(lib), "-o", str(obj)],
                       check=True, capture_output=True, text=True)
        objects.append(str(obj))
    main = out.parent / (f"{out.name}.cpp" if cxx else f"{out.name}.c")
    main.write_text(source)
    compiler, std = (require_tool("g++"), "-std=c++17") if cxx else (gcc, "-std=c11")
    proc = subprocess.run([compiler, std, *STRICT, *flags, f"-I{INCLUDE}", str(main), *objects, "-pthread", "-o",
                           str(out)], capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr
    return out


@pytest.fixture(scope="module")
def build_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("ring_c")


@pytest.fixture(scope="module")
def peer(build_dir: Path) -> Path:
    return compile_c(build_dir / "peer", PEER_C, "-O2")


@pytest.fixture(scope="module")
def asan_peer(build_dir: Path) -> Path:
    return compile_c(build_dir / "peer-asan", PEER_C, "-O1", "-g", "-fsanitize=address,undefined",
                     "-fno-sanitize-recover=undefined", "-fno-omit-frame-pointer")


@pytest.fixture
def ring_name() -> Iterator[str]:
    name = f"{PREFIX}{threading.get_ident() % 10000}-{os.urandom(3).hex()}"
    yield name
    for suffix in ("", "-in", "-out"):
        Ring.unlink(f"{name}{suffix}")


def run(program: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
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
    """The C producer sends ``count`` messages and one too large (refused); Python checks order and content."""
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
    python_to_c(peer, ring_name, 2000)


def test_c_to_python(peer: Path, ring_name: str) -> None:
    c_to_python(peer, ring_name, 2000)


def test_largest_message_both_ways(peer: Path, ring_name: str) -> None:
    with Ring.create(ring_name, 1 << 16, 1, 1) as ring:
        largest = message(49, 0, ring.max_message)
        assert len(largest) == ring.max_message
        child = subprocess.Popen([str(peer), "recv", ring_name, "0", "50", "0"], stdout=subprocess.PIPE, text=True)
        tx = ring.producer(0)
        for k in range(50):
            assert tx.send(message(k, 0, ring.max_message), timeout=20)
        assert child.wait(timeout=RUN_TIMEOUT) == 0


def test_closed_ring_drains_then_reports_closed(peer: Path, ring_name: str) -> None:
    with Ring.create(ring_name, 4096, 1, 1) as ring:
        tx = ring.producer(0)
        for k in range(3):
            assert tx.send(message(k, 0, ring.max_message))
        ring.close_writers()
        proc = run(peer, "recv", ring_name, "0", "4", "0")
        assert proc.returncode == 2 and "recv: ring closed" in proc.stdout


def corrupt(ring: Ring, field: str, value: int, size: int = 8, base: int = 0) -> None:
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
    with Ring.create(ring_name, 4096, 1, 1) as ring:
        corrupt(ring, field, value, size)
        proc = run(peer, "attach", ring_name)
        assert proc.returncode == 3, proc.stdout + proc.stderr
        assert f"not a valid flowc ring segment: {why}" in proc.stdout


@pytest.mark.parametrize(("published", "cursor", "why"), [
    (3 * 4096, 0, "consumer cursor more than a ring behind"),
    (64, 13, "unaligned consumer cursor"),
    (0, 1 << 20, "consumer cursor ahead of the published position"),
])
def test_positions_past_capacity_break_the_ring(peer: Path, ring_name: str, published: int, cursor: int,
                                                why: str) -> None:
    with Ring.create(ring_name, 4096, 1, 1) as ring:
        corrupt(ring, "published", published)
        corrupt(ring, "reserve", published)
        corrupt(ring, "cursor", cursor, base=consumer_line(ring))
        proc = run(peer, "attach", ring_name)
        assert proc.returncode == 2, proc.stdout + proc.stderr
        assert f"ring broken: {why}" in proc.stdout
        assert ring.stats()["broken"]
        with pytest.raises(RingError, match="broken"):
            ring.consumer(0).recv(timeout=0)


def test_corrupt_record_length_breaks_the_ring(peer: Path, ring_name: str) -> None:
    with Ring.create(ring_name, 4096, 1, 1) as ring:
        assert ring.producer(0).send(b"x" * 64)
        data = _ring.layout_size(0, 1, 1)
        ring._mm[data:data + 4] = (1 << 31).to_bytes(4, "little")
        proc = run(peer, "recv", ring_name, "0", "1", "0")
        assert proc.returncode == 2 and "ring broken: corrupt record length" in proc.stdout


def test_unaligned_reserve_breaks_the_ring_for_a_c_producer(peer: Path, ring_name: str) -> None:
    with Ring.create(ring_name, 4096, 1, 1) as ring:
        corrupt(ring, "reserve", 5)
        proc = run(peer, "send", ring_name, "0", "1", "0")
        assert proc.returncode == 2 and "ring broken: unaligned reserve position" in proc.stdout


def test_missing_ring(peer: Path) -> None:
    proc = run(peer, "attach", f"{PREFIX}absent")
    assert proc.returncode == 3 and "no ring segment named" in proc.stdout


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
        assert proc.returncode == 0, proc.stdout
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
    proc = run(asan_peer, "env", env={**os.environ, "FLOWC_CHANNELS": text})
    assert proc.returncode == 3, proc.stdout + proc.stderr
    assert "FLOWC_CHANNELS" in proc.stdout and "ERROR: AddressSanitizer" not in proc.stderr


def test_unset_channels_fail_cleanly(peer: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "FLOWC_CHANNELS"}
    proc = run(peer, "env", env=env)
    assert proc.returncode == 3 and "FLOWC_CHANNELS is not set" in proc.stdout


def test_channels_naming_a_missing_ring(peer: Path) -> None:
    io = {"inputs": {"in": {"ring": f"{PREFIX}absent", "index": 0}}, "outputs": {}}
    proc = run(peer, "env", env={**os.environ, "FLOWC_CHANNELS": json.dumps(io)})
    assert proc.returncode == 3 and "channel 'in': no ring segment named" in proc.stdout


def test_exchange_under_asan_and_ubsan(asan_peer: Path, ring_name: str) -> None:
    python_to_c(asan_peer, ring_name, 1000)
    Ring.unlink(ring_name)
    c_to_python(asan_peer, ring_name, 1000)


def test_header_is_cxx_clean(build_dir: Path, ring_name: str) -> None:
    program = compile_c(build_dir / "peer-cxx", PEER_CXX, "-O1", cxx=True)
    with Ring.create(ring_name, 4096, 1, 1) as ring:
        proc = run(program, ring_name)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        assert proc.stdout.split() == ["ok", str(ring.max_message)]
        assert ring.consumer(0).recv(timeout=1) == b"hello from C++"


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
