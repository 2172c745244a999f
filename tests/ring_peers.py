"""The ring's peer programs and what tests share to drive them: the C peer, the Rust actor programs, frames.

The C peer (:data:`PEER_C`) and the Python peer (``ring_peer_python.py``, which also defines ``message``, what
both send and check) take the same modes and arguments; the Rust programs (``flowc-ring-producer`` and
``flowc-ring-consumer``) attach through ``FLOWC_CHANNELS`` and move length-prefixed frames on stdin/stdout.
:func:`c_peer` and :func:`rust_programs` build once per test session, and fail the test (not skip it) when the
compiler they need is missing.
"""

from __future__ import annotations

import functools
import itertools
import json
import os
import shutil
import struct
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from types import SimpleNamespace

import pytest

from flowc.cli.ring import ring_dirs
from flowc.runtime.ring import Ring

from conftest import ROOT

INCLUDE, SOURCES = ring_dirs()
STRICT = ["-Wall", "-Wextra", "-Werror"]
CRATE = ROOT / "rust" / "flowc-ring"
#: The Python peer program: ``[sys.executable, PYTHON_PEER, mode, ...]``.
PYTHON_PEER = Path(__file__).resolve().parent / "ring_peer_python.py"
#: docs/ring-abi.md 2.1: how many consumers sleep on the data doorbell (``u32``); above 0, a consumer is waiting.
DATA_WAITERS = 196
#: docs/ring-abi.md 2.1: how many producers sleep on the space doorbell (``u32``); above 0, a producer is blocked.
SPACE_WAITERS = 260
#: docs/ring-abi.md 2.3, shared rings: offsets in a consumer line of ``taken`` (line 0: the group's next position
#: to hand out, ``u64``), ``holding`` (the position this consumer took and is copying, ``u64``; 2^64 - 1: none) and
#: ``holder_pid`` (``i32``). Line 0's ``cursor`` (offset 0) is the group's release position.
TAKEN, HOLDING, HOLDER_PID = 24, 32, 40
NOT_HOLDING = (1 << 64) - 1
_ring_numbers = itertools.count()

# One program with a mode per use: `recv`/`send` exchange checkable messages (as `message` of ring_peer_python.py),
# `oversize` sends the largest message and then one byte more (refused), `dump` writes what a consumer receives to
# stdout as frames (optionally slowly), `attach` reports what attaching a (possibly corrupt) segment gives, `env`
# relays through FLOWC_CHANNELS, `threads` runs producers and a consumer as threads of one process (what TSan can
# see). Errors go to stderr. Exit 0: done, 2: a ring call failed, 3: attach or FLOWC_CHANNELS failed, 4: a message
# differed from the expected one.
PEER_C = r"""
#define _POSIX_C_SOURCE 200809L
#include "flowc_ring.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

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
    fprintf(stderr, "%s: %s: %s\n", what, flowc_strerror(rc), flowc_last_error());
    return rc == FLOWC_EBADSEG || rc == FLOWC_ENOENT || rc == FLOWC_EBADENV ? 3 : 2;
}

static int open_ring(const char *name, flowc_ring **ring, flowc_ring_info *info) {
    int rc = flowc_ring_attach(name, ring);
    if (rc != FLOWC_OK) return failed("attach", rc);
    flowc_ring_info_of(*ring, info);
    return 0;
}

/* attach `name` and open producer `index`: 0, or the exit code (the reason is on stderr) */
static int open_producer(const char *name, uint32_t index, flowc_ring **ring, flowc_ring_info *info,
                         flowc_producer **p) {
    int rc = open_ring(name, ring, info);
    if (rc == 0 && (rc = flowc_producer_open(*ring, index, p)) != FLOWC_OK) return failed("producer_open", rc);
    return rc;
}

/* the same for consumer `index` */
static int open_consumer(const char *name, uint32_t index, flowc_ring **ring, flowc_ring_info *info,
                         flowc_consumer **c) {
    int rc = open_ring(name, ring, info);
    if (rc == 0 && (rc = flowc_consumer_open(*ring, index, c)) != FLOWC_OK) return failed("consumer_open", rc);
    return rc;
}

static int do_recv(const char *name, uint32_t index, uint32_t n, uint32_t who) {
    flowc_ring *ring;
    flowc_ring_info info;
    flowc_consumer *c;
    int rc = open_consumer(name, index, &ring, &info, &c);
    if (rc) return rc;
    unsigned char *buf = malloc(info.max_message);
    unsigned long long bytes = 0;
    for (uint32_t k = 0; k < n; k++) {
        size_t len = 0;
        rc = flowc_recv(c, buf, info.max_message, &len, TIMEOUT_NS);
        if (rc != FLOWC_OK) return failed("recv", rc);
        if (!check(buf, len, k, who, info.max_message)) {
            fprintf(stderr, "message %u differs (len %zu)\n", k, len);
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
    int rc = open_producer(name, index, &ring, &info, &p);
    if (rc) return rc;
    unsigned char *buf = malloc(info.max_message);
    for (uint32_t k = 0; k < n; k++) {
        size_t len = msg_len(k, info.max_message);
        fill(buf, k, who, len);
        if ((rc = flowc_send(p, buf, len, TIMEOUT_NS)) != FLOWC_OK) return failed("send", rc);
    }
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
    int rc = open_consumer(name, 0, &ring, &info, &c);
    if (rc) return rc;
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

/* one message of exactly max_message, then one byte more: the second must be refused (exit 2 with the reason) */
static int do_oversize(const char *name, uint32_t index) {
    flowc_ring *ring;
    flowc_ring_info info;
    flowc_producer *p;
    int rc = open_producer(name, index, &ring, &info, &p);
    if (rc) return rc;
    unsigned char *buf = calloc(1, info.max_message + 1);
    fill(buf, 49, 0, info.max_message);
    if ((rc = flowc_send(p, buf, info.max_message, TIMEOUT_NS)) != FLOWC_OK) return failed("send", rc);
    if ((rc = flowc_send(p, buf, info.max_message + 1, 0)) != FLOWC_OK) return failed("send", rc);
    printf("ok: a message over the limit was sent\n");
    return 0;
}

/* every message to stdout as a frame ([u32 len] then the bytes), PACE_US microseconds apart, until closed */
static int do_dump(const char *name, uint32_t index, uint32_t pace_us) {
    flowc_ring *ring;
    flowc_ring_info info;
    flowc_consumer *c;
    int rc = open_consumer(name, index, &ring, &info, &c);
    if (rc) return rc;
    unsigned char *buf = malloc(info.max_message);
    struct timespec pace = {(time_t)(pace_us / 1000000u), (long)(pace_us % 1000000u) * 1000L};
    size_t len;
    while ((rc = flowc_recv(c, buf, info.max_message, &len, TIMEOUT_NS)) == FLOWC_OK) {
        uint32_t len32 = (uint32_t)len;
        if (fwrite(&len32, 4, 1, stdout) != 1 || fwrite(buf, 1, len, stdout) != len) {
            perror("write");
            return 2;
        }
        if (pace_us) nanosleep(&pace, NULL);
    }
    if (rc != FLOWC_ECLOSED) return failed("recv", rc);
    free(buf);
    flowc_consumer_close(c);
    flowc_ring_close(ring);
    if (fflush(stdout) == 0) return 0;
    perror("write");
    return 2;
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
            fprintf(stderr, "message %u of producer %u differs\n", next[who < producers ? who : 0], who);
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
    if (argc == 4 && !strcmp(argv[1], "oversize")) return do_oversize(argv[2], (uint32_t)atoi(argv[3]));
    if (argc == 5 && !strcmp(argv[1], "dump"))
        return do_dump(argv[2], (uint32_t)atoi(argv[3]), (uint32_t)atoi(argv[4]));
    if (argc == 5 && !strcmp(argv[1], "threads"))
        return do_threads(argv[2], (uint32_t)atoi(argv[3]), (uint32_t)atoi(argv[4]));
    if (argc == 6) {
        uint32_t index = (uint32_t)atoi(argv[3]), n = (uint32_t)atoi(argv[4]), who = (uint32_t)atoi(argv[5]);
        if (!strcmp(argv[1], "recv")) return do_recv(argv[2], index, n, who);
        if (!strcmp(argv[1], "send")) return do_send(argv[2], index, n, who);
    }
    fprintf(stderr, "usage: peer recv|send RING INDEX COUNT WHO | oversize RING INDEX | dump RING INDEX PACE_US | "
                    "attach RING | env [N] | threads RING P N\n");
    return 64;
}
"""


_U32, _U64 = struct.Struct("<I"), struct.Struct("<Q")  # shared words as :func:`peek_u32` and :func:`peek_u64` read them


def need_tool(*names: str) -> str:
    """Return the path of the first of ``names`` on ``PATH``; fail the calling test when there is none.

    Args:
        names: Executable names to try, in order.

    Returns:
        The absolute path of the first one found.
    """
    for name in names:
        if found := shutil.which(name):
            return found
    pytest.fail(f"{' or '.join(repr(n) for n in names)} is not installed; the ring's peer programs need it",
                pytrace=False)


def compile_c(out: Path, source: str, *flags: str, cxx: bool = False) -> Path:
    """Build ``source`` with the ring library into ``out``; the library itself is always C (gcc, C11).

    Args:
        out: The program to write (its directory holds the objects too).
        source: The main translation unit's text.
        flags: Extra compiler flags (optimisation, sanitizers).
        cxx: Compile ``source`` as C++17 with g++.

    Returns:
        ``out``.
    """
    gcc = need_tool("gcc")
    out.parent.mkdir(parents=True, exist_ok=True)
    objects = []
    for lib in SOURCES:
        obj = out.parent / f"{out.name}-{lib.stem}.o"
        subprocess.run([gcc, "-std=c11", *STRICT, *flags, f"-I{INCLUDE}", "-c", str(lib), "-o", str(obj)],
                       check=True, capture_output=True, text=True)
        objects.append(str(obj))
    main = out.parent / (f"{out.name}.cpp" if cxx else f"{out.name}.c")
    main.write_text(source)
    compiler, std = (need_tool("g++"), "-std=c++17") if cxx else (gcc, "-std=c11")
    proc = subprocess.run([compiler, std, *STRICT, *flags, f"-I{INCLUDE}", str(main), *objects, "-pthread", "-o",
                           str(out)], capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr
    return out


def c_peer(factory: pytest.TempPathFactory) -> Path:
    """The C peer built with ``-O2``, once per test session.

    Args:
        factory: The session's temporary directory factory (the build goes under its base directory).

    Returns:
        The program.
    """
    return _c_peer(factory.getbasetemp())


@functools.cache
def _c_peer(base: Path) -> Path:
    """Build the C peer under ``base`` (cached: one build per session's base directory)."""
    return compile_c(base / "ring-peers" / "peer", PEER_C, "-O2")


@functools.cache
def rust_programs() -> SimpleNamespace:
    """Build the crate's actor programs and examples (release, offline), once per test session.

    Returns:
        ``producer`` and ``consumer``: the paths of ``flowc-ring-producer`` and ``flowc-ring-consumer``;
        ``examples``: the directory of the example programs (``count_sink``, ``ring_rtt``).
    """
    cargo = need_tool("cargo")
    built = subprocess.run([cargo, "build", "--release", "--offline", "--bins", "--examples", "--manifest-path",
                            str(CRATE / "Cargo.toml")], capture_output=True, text=True, timeout=600, check=False)
    if built.returncode != 0:
        pytest.fail(f"cargo build failed:\n{built.stderr[-4000:]}", pytrace=False)
    release = CRATE / "target" / "release"
    return SimpleNamespace(producer=release / "flowc-ring-producer", consumer=release / "flowc-ring-consumer",
                           examples=release / "examples")


def frames(messages: list[bytes]) -> bytes:
    """The Rust programs' stdin/stdout format: each message as a ``u32`` little-endian length, then its bytes."""
    return b"".join(struct.pack("<I", len(m)) + m for m in messages)


def unframe(data: bytes) -> list[bytes]:
    """The messages of :func:`frames` output; a truncated last frame fails the calling test."""
    messages, at = [], 0
    while at < len(data):
        (size,) = struct.unpack_from("<I", data, at)
        messages.append(data[at + 4:at + 4 + size])
        at += 4 + size
    assert at == len(data), "a truncated frame"
    return messages


def actor_env(ring_name: str, index: int, side: str) -> dict[str, str]:
    """The environment of an actor with one channel ``data``: ``side`` (``inputs``/``outputs``) at ``index``."""
    io: dict[str, dict[str, object]] = {"inputs": {}, "outputs": {}}
    io[side]["data"] = {"ring": ring_name, "index": index}
    return {**os.environ, "FLOWC_CHANNELS": json.dumps(io)}


@contextmanager
def ring_maker(prefix: str) -> Iterator[Callable[..., Ring]]:
    """Make rings named ``<prefix>-<pid>-<n>`` (unique to this process); close and unlink them on exit.

    Args:
        prefix: The start of their names.

    Yields:
        ``make(buffer_size=4096, producers=1, consumers=1, policy="backpressure", delivery="broadcast") -> Ring``.
    """
    rings: list[Ring] = []

    def make(buffer_size: int = 4096, producers: int = 1, consumers: int = 1, policy: str = "backpressure",
             delivery: str = "broadcast") -> Ring:
        ring = Ring.create(f"{prefix}-{os.getpid()}-{next(_ring_numbers)}", buffer_size, producers, consumers,
                           policy=policy, delivery=delivery)
        rings.append(ring)
        return ring

    try:
        yield make
    finally:
        for ring in rings:
            ring.close()
            Ring.unlink(ring.name)


def _peek(ring_name: str, offset: int, word: struct.Struct) -> int:
    """The little-endian ``word`` of the segment ``/dev/shm/<ring_name>`` at ``offset``, as another process sees it."""
    fd = os.open(f"/dev/shm/{ring_name}", os.O_RDONLY)
    try:
        return word.unpack(os.pread(fd, word.size, offset))[0]
    finally:
        os.close(fd)


def peek_u32(ring_name: str, offset: int) -> int:
    """A ``u32`` of the segment ``/dev/shm/<ring_name>`` at ``offset``, read as another process sees it."""
    return _peek(ring_name, offset, _U32)


def peek_u64(ring_name: str, offset: int) -> int:
    """A ``u64`` of the segment ``/dev/shm/<ring_name>`` at ``offset``, read as another process sees it."""
    return _peek(ring_name, offset, _U64)


def consumer_line(ring: Ring, index: int) -> int:
    """The byte offset of consumer line ``index`` of ``ring`` (docs/ring-abi.md 2.3)."""
    producers = len(ring.stats()["sent_per_producer"])
    return 384 + 64 * (producers + index)


def wait_until(condition: Callable[[], bool], what: str, timeout: float = 30.0) -> None:
    """Poll ``condition`` (a counter in a segment, say) until it holds; fail the test after ``timeout`` seconds.

    Args:
        condition: What to wait for; cheap, called every 2 ms.
        what: The failure message's words for it.
        timeout: Seconds.
    """
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.002)
