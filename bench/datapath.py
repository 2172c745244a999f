"""Data-path benchmark: a flowc shared-memory ring against os.pipe, multiprocessing.Queue and pyzmq ipc://.

One run measures, with the two ends pinned to two different cores: the 64 B round trip (p50/p99/p99.9), one-way
throughput for 64 B and 4 KiB messages, the CPU an idle flowc consumer burns, and the round trip with both ends on
one core (flowc against a pipe). Ratios are against baselines measured in the same run, next to the goals:

* flowc round trip ≤ 1/20 of pyzmq's, and its p99 ≤ 3 × its p50;
* flowc 64 B stream ≥ os.pipe's;
* idle flowc consumer < 5 % of a core;
* flowc round trip with both ends on one core ≤ 10 × a pipe's on one core.

Next to them, native round trips against the floor of the machine, measured in the same run:
``bench/cacheline_floor.c`` bounces one cache line between the two cores (nothing can be faster), and
``bench/ring_rtt.c`` (C API) and ``rust/flowc-ring/examples/ring_rtt.rs`` (Rust crate) ping-pong over two flowc
rings with one process per end. Goals:

* flowc C↔C round trip p50 ≤ 2 × the cache-line floor;
* flowc Python↔C (Python pings, C echoes) no slower than Python↔Python.

And the cost of watching: the 64 B flowc stream through the rings of a real node (``flowc build``, ``flowc channels
create``) while ``flowc metrics`` serves that node and a scraper GETs ``/metrics`` every 100 ms, against the same
stream with nobody watching, alternated three times each in the same run (medians). Goal: ≥ 0.95 × unwatched.

The C programs are compiled with ``cc`` into a temporary directory and the Rust example with ``cargo --offline``;
a row whose tool is missing, or whose build fails, is left out with a note.

Usage::

    python bench/datapath.py            # full run (a few minutes)
    python bench/datapath.py --quick    # under a minute
    python bench/datapath.py --json     # one JSON object instead of the table
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from flowc.runtime.report import percentile
from flowc.runtime.ring import Ring

CTX = mp.get_context("fork")  # children inherit the mapped rings and pipes; nothing has to be pickled
RING_BYTES = 1 << 20
LABELS = {"flowc": "flowc ring", "pipe": "os.pipe", "mpq": "multiprocessing.Queue", "pyzmq": "pyzmq PAIR ipc://"}
Ends = tuple[Callable[[bytes], Any], Callable[[], Any]]
BENCH = Path(__file__).resolve().parent
RUST_CRATE = BENCH.parent / "rust" / "flowc-ring"
NATIVE_LABELS = {"floor": "cache-line floor (C)", "c": "flowc ring C↔C", "rust": "flowc ring Rust↔Rust"}


class PipeTransport:
    """Two os.pipe()s; reads loop until a whole fixed-size message has arrived."""

    def __init__(self, size: int) -> None:
        """Open both pipes.

        Args:
            size: Message size in bytes (every message has this size).
        """
        self.size = size
        self.ab, self.ba = os.pipe(), os.pipe()

    def ends(self, role: str) -> Ends:
        """Send and receive functions for ``parent`` or ``child``."""
        (ab_r, ab_w), (ba_r, ba_w) = self.ab, self.ba
        w, r = (ab_w, ba_r) if role == "parent" else (ba_w, ab_r)
        size, read, write = self.size, os.read, os.write

        def recv() -> bytes:
            data = read(r, size)
            while len(data) < size:
                data += read(r, size - len(data))
            return data

        return (lambda data: write(w, data)), recv

    def close(self) -> None:
        """Close every descriptor."""
        for fd in (*self.ab, *self.ba):
            os.close(fd)


class QueueTransport:
    """Two multiprocessing.Queue objects (pickling, a lock and a feeder thread per message)."""

    def __init__(self, size: int) -> None:
        """Create both queues."""
        self.ab, self.ba = CTX.Queue(), CTX.Queue()

    def ends(self, role: str) -> Ends:
        """Send and receive functions for ``parent`` or ``child``."""
        tx, rx = (self.ab, self.ba) if role == "parent" else (self.ba, self.ab)
        return tx.put, rx.get

    def close(self) -> None:
        """Release the queues and join their feeder threads (a later fork() must not copy a busy thread)."""
        for queue in (self.ab, self.ba):
            queue.close()
            queue.join_thread()


class ZmqTransport:
    """One pyzmq PAIR socket pair over ipc://; sockets are made after the fork, as zmq requires."""

    def __init__(self, size: int) -> None:
        """Import pyzmq here, before the fork, so the child never runs an import; choose the socket path."""
        import zmq

        self.zmq = zmq
        self.address = f"ipc:///tmp/flowc-bench-{os.getpid()}-{time.monotonic_ns()}"

    def ends(self, role: str) -> Ends:
        """Send and receive functions for ``parent`` (binds) or ``child`` (connects)."""
        zmq = self.zmq
        # A fresh context per process: a context inherited across fork() hangs the child.
        self._ctx = zmq.Context()
        sock = self._ctx.socket(zmq.PAIR)
        sock.setsockopt(zmq.LINGER, 0)
        if role == "parent":
            sock.bind(self.address)
        else:
            sock.connect(self.address)
        self._sock = sock
        return sock.send, sock.recv

    def finish(self) -> None:
        """Child side: flush the last reply before the process exits (LINGER 0 would discard it)."""
        self._sock.close(linger=5000)
        self._ctx.term()

    def close(self) -> None:
        """Close the parent's socket and context and remove the socket file."""
        if hasattr(self, "_sock"):
            self._sock.close(0)
            self._ctx.term()
        try:
            os.unlink(self.address[len("ipc://"):])
        except FileNotFoundError:
            pass


class FlowcTransport:
    """Two flowc SPSC rings (there and back) with default settings."""

    def __init__(self, size: int) -> None:
        """Create both rings in /dev/shm."""
        stem = f"flowc-bench-{os.getpid()}-{time.monotonic_ns()}"
        self.names = (f"{stem}-ab", f"{stem}-ba")
        self.ab, self.ba = (Ring.create(name, RING_BYTES, 1, 1) for name in self.names)

    def ends(self, role: str) -> Ends:
        """Send and receive functions for ``parent`` or ``child``."""
        tx, rx = (self.ab, self.ba) if role == "parent" else (self.ba, self.ab)
        return tx.producer(0).send, rx.consumer(0).recv

    def close(self) -> None:
        """Unmap and remove both rings."""
        for ring, name in ((self.ab, self.names[0]), (self.ba, self.names[1])):
            ring.close()
            Ring.unlink(name)


TRANSPORTS = {"flowc": FlowcTransport, "pipe": PipeTransport, "mpq": QueueTransport, "pyzmq": ZmqTransport}

WATCHED_NODE = """
actors:
  writer: {type: producer, outputs: [ab], run: "flowc.actors:synthetic_producer"}
  reader: {type: transformer, inputs: [ab], outputs: [ba], run: "flowc.actors:relay"}
  back: {type: consumer, inputs: [ba], run: "flowc.actors:latency_sink"}
nodes:
  bench:
    hostname: localhost
    actors: {writer: {cpu: [0]}, reader: {cpu: [1]}, back: {cpu: [2]}}
    local_channels: {ab: {buffer_size: 1MiB}, ba: {buffer_size: 1MiB}}
"""


#: Messages per watched or unwatched stream: long enough (about half a second) for a scrape every 100 ms to
#: land inside it several times.
WATCHED_MESSAGES = 1_000_000


class WatchedNode:
    """The rings of a real one-node plan, served by ``flowc metrics`` and scraped every 100 ms when watched."""

    def __init__(self, workdir: str) -> None:
        """Build the plan and create the node's rings (``flowc channels create``)."""
        from flowc.model.node_view import NodeView
        from flowc.runtime.actor_main import load_node

        source = Path(workdir) / f"watched-{os.getpid()}-{time.monotonic_ns()}.yaml"
        source.write_text(WATCHED_NODE)
        self.plan = str(Path(workdir) / "out" / "flowc" / "plan.json")
        self._flowc("build", str(source), "-o", str(Path(workdir) / "out"))
        self._flowc("channels", "create", self.plan, "--node", "bench")
        self.layout = NodeView.of(load_node(self.plan, "bench"), "bench")
        self.names = (self.layout.rings["ab"].name, self.layout.rings["ba"].name)
        self.watchers: list[subprocess.Popen] = []

    @staticmethod
    def _flowc(*args: str) -> None:
        subprocess.run([sys.executable, "-m", "flowc", *args], check=True, capture_output=True, timeout=120)

    def transport(self, _size: int) -> Any:
        """A transport over the node's two rings (``ab`` there, ``ba`` back), like :class:`FlowcTransport`."""
        transport = FlowcTransport.__new__(FlowcTransport)
        transport.names = self.names
        transport.ab, transport.ba = (Ring.attach(name) for name in self.names)
        transport.close = lambda: (transport.ab.close(), transport.ba.close())
        return transport

    def watch(self) -> None:
        """Start ``flowc metrics`` for the node and a scraper that GETs its ``/metrics`` every 100 ms."""
        import socket

        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        self.watchers.append(subprocess.Popen(
            [sys.executable, "-m", "flowc", "metrics", self.plan, "--node", "bench", "--metrics-port", str(port),
             "--metrics-address", "127.0.0.1"], stderr=subprocess.DEVNULL))
        self.watchers.append(subprocess.Popen([sys.executable, "-c", SCRAPER, f"http://127.0.0.1:{port}/metrics"]))
        import httpx

        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:  # the exporter answers: its start-up is over before the stream starts
            try:
                if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.05)
        time.sleep(0.5)  # and the scraper has started scraping

    def unwatch(self) -> None:
        """Stop the exporter and the scraper; the scraper says how many scrapes succeeded."""
        for proc in self.watchers:
            proc.terminate()
        for proc in self.watchers:
            proc.wait(timeout=30)
        self.watchers.clear()

    def close(self) -> None:
        """Stop watching and remove the node's rings."""
        self.unwatch()
        self._flowc("channels", "remove", self.plan, "--node", "bench")


SCRAPER = """
import signal, sys, time, httpx
stop = []
signal.signal(signal.SIGTERM, lambda *_: stop.append(1))
ok = 0
with httpx.Client() as client:
    while not stop:
        try:
            ok += client.get(sys.argv[1], timeout=2).status_code == 200
        except httpx.TransportError:
            pass
        time.sleep(0.1)
if not ok:
    sys.exit("the scraper never got /metrics")
"""


def watched_streams(n: int, cpus: tuple[int, int], rounds: int = 3) -> tuple[float, float]:
    """Median 64 B stream rate over a real node's rings, unwatched and watched, alternating ``rounds`` times."""
    with tempfile.TemporaryDirectory(prefix="flowc-bench-watch-") as workdir:
        node = WatchedNode(workdir)
        TRANSPORTS["watched"] = node.transport
        try:
            plain, watched = [], []
            for _ in range(rounds):
                plain.append(stream("watched", n, 64, cpus))
                node.watch()
                try:
                    watched.append(stream("watched", n, 64, cpus))
                finally:
                    node.unwatch()
        finally:
            del TRANSPORTS["watched"]
            node.close()
    return sorted(plain)[rounds // 2], sorted(watched)[rounds // 2]


def _echo(transport: Any, count: int, cpu: int) -> None:
    os.sched_setaffinity(0, {cpu})
    send, recv = transport.ends("child")
    for _ in range(count):
        send(recv())
    getattr(transport, "finish", lambda: None)()


def _drain(transport: Any, count: int, cpu: int, done: int) -> None:
    os.sched_setaffinity(0, {cpu})
    _, recv = transport.ends("child")
    for _ in range(count):
        recv()
    os.write(done, b"k")
    getattr(transport, "finish", lambda: None)()


def _run_child(target: Callable[..., None], args: tuple[Any, ...]) -> mp.process.BaseProcess:
    proc = CTX.Process(target=target, args=args, daemon=True)
    proc.start()
    return proc


def round_trips(kind: str, n: int, warm: int, cpus: tuple[int, int], size: int = 64) -> list[float]:
    """Ping-pong ``n`` measured round trips of ``size`` bytes.

    Args:
        kind: A key of ``TRANSPORTS``.
        n: Measured round trips.
        warm: Unmeasured round trips first.
        cpus: (parent CPU, child CPU); the same number twice shares one core.
        size: Payload bytes.

    Returns:
        Round-trip times in µs.
    """
    os.sched_setaffinity(0, {cpus[0]})
    transport = TRANSPORTS[kind](size)
    try:
        proc = _run_child(_echo, (transport, n + warm, cpus[1]))
        samples = _ping(*transport.ends("parent"), n, warm, size)
        proc.join()
    finally:
        transport.close()  # rings and socket files must not outlive an interrupted run
    return samples


def _ping(send: Callable[[bytes], Any], recv: Callable[[], Any], n: int, warm: int, size: int) -> list[float]:
    message, clock, samples = b"p" * size, time.perf_counter_ns, []
    for i in range(n + warm):
        start = clock()
        send(message)
        recv()
        if i >= warm:
            samples.append((clock() - start) / 1000)
    return samples


def stream(kind: str, n: int, size: int, cpus: tuple[int, int]) -> float:
    """Send ``n`` messages one way and time until the consumer has them all.

    Args:
        kind: A key of ``TRANSPORTS``.
        n: Messages.
        size: Bytes per message.
        cpus: (producer CPU, consumer CPU).

    Returns:
        Messages per second.
    """
    os.sched_setaffinity(0, {cpus[0]})
    transport = TRANSPORTS[kind](size)
    done_r, done_w = os.pipe()
    try:
        proc = _run_child(_drain, (transport, n, cpus[1], done_w))
        send, _ = transport.ends("parent")
        message = b"s" * size
        send(message)  # the first message also waits for the consumer to be up
        start = time.perf_counter()
        for _ in range(n - 1):
            send(message)
        os.read(done_r, 1)
        elapsed = time.perf_counter() - start
        proc.join()
    finally:
        os.close(done_r)
        os.close(done_w)
        transport.close()
    return (n - 1) / elapsed


def _idle(ring: Ring, seconds: float, cpu: int, out: int) -> None:
    os.sched_setaffinity(0, {cpu})
    rx = ring.consumer(0)
    before, start = resource.getrusage(resource.RUSAGE_SELF), time.monotonic()
    rx.recv(timeout=seconds)
    after, wall = resource.getrusage(resource.RUSAGE_SELF), time.monotonic() - start
    cpu_s = after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime
    os.write(out, json.dumps(100 * cpu_s / wall).encode())


def idle_cpu_pct(seconds: float, cpu: int) -> float:
    """CPU % of one core that a flowc consumer burns while its ring stays empty for ``seconds``."""
    name = f"flowc-bench-idle-{os.getpid()}"
    ring = Ring.create(name, 4096, 1, 1)
    r, w = os.pipe()
    proc = _run_child(_idle, (ring, seconds, cpu, w))
    proc.join()
    value = float(os.read(r, 64))
    os.close(r)
    os.close(w)
    ring.close()
    Ring.unlink(name)
    return value


def build_native(workdir: str) -> tuple[dict[str, str], list[str]]:
    """Compile the cache-line floor and the C ping-pong, and build the Rust example.

    Args:
        workdir: A temporary directory for the C binaries.

    Returns:
        The executables by key of ``NATIVE_LABELS`` (missing when they could not be built), and one note per
        program that was not built, saying why.
    """
    built: dict[str, str] = {}
    notes: list[str] = []
    cc = shutil.which("cc")
    if cc is None:
        notes.append("cc not found: no cache-line floor, C↔C or Python↔C rows")
    else:
        flowc = [sys.executable, "-m", "flowc", "ring-include"]
        cflags = subprocess.run([*flowc, "--cflags"], capture_output=True, text=True, check=True).stdout.split()
        sources = subprocess.run([*flowc, "--sources"], capture_output=True, text=True, check=True).stdout.split()
        programs = {"floor": ([str(BENCH / "cacheline_floor.c")], []), "c": ([str(BENCH / "ring_rtt.c")], sources)}
        for key, (main_source, extra) in programs.items():
            exe = os.path.join(workdir, key)
            done = subprocess.run([cc, "-O2", *cflags, "-o", exe, *main_source, *extra], capture_output=True,
                                  text=True)
            if done.returncode == 0:
                built[key] = exe
            else:
                notes.append(f"{NATIVE_LABELS[key]} not built: {done.stderr.strip()[-300:]}")
    cargo = shutil.which("cargo")
    if cargo is None:
        notes.append("cargo not found: no Rust↔Rust row")
    else:
        manifest = RUST_CRATE / "Cargo.toml"
        done = subprocess.run([cargo, "build", "--release", "--offline", "--examples", "--manifest-path",
                               str(manifest)], capture_output=True, text=True)
        exe = RUST_CRATE / "target" / "release" / "examples" / "ring_rtt"
        if done.returncode == 0 and exe.is_file():
            built["rust"] = str(exe)
        else:
            notes.append(f"Rust example not built: {done.stderr.strip()[-300:]}")
    return built, notes


def _pinned(cpu: int) -> Callable[[], None]:
    return lambda: os.sched_setaffinity(0, {cpu})


def floor_round_trips(exe: str, n: int, cpus: tuple[int, int]) -> dict[str, float]:
    """The cache-line floor: ``n`` round trips of one cache line between ``cpus`` (bench/cacheline_floor.c).

    Returns:
        ``{"n", "p50_ns", "p99_ns", "p999_ns"}`` as the program prints it.
    """
    done = subprocess.run([exe, str(n), str(cpus[0]), str(cpus[1])], capture_output=True, text=True, check=True,
                          timeout=120)
    return json.loads(done.stdout)


def native_round_trips(exe: str, n: int, cpus: tuple[int, int]) -> dict[str, float]:
    """Ping-pong ``n`` measured 64 B round trips between two processes of ``exe`` (roles ``ping`` and ``pong``).

    The rings are created here, as the launcher would, and removed afterwards; ping runs on ``cpus[0]``, pong on
    ``cpus[1]``.

    Returns:
        ``{"n", "p50_ns", "p99_ns", "p999_ns"}`` as the ping end prints it.
    """
    transport = FlowcTransport(64)
    pong = None
    try:
        args = [*transport.names, str(n)]
        pong = subprocess.Popen([exe, "pong", *args], preexec_fn=_pinned(cpus[1]))
        done = subprocess.run([exe, "ping", *args], capture_output=True, text=True, check=True, timeout=120,
                              preexec_fn=_pinned(cpus[0]))
        if pong.wait(timeout=30) != 0:
            raise RuntimeError(f"{exe} pong exited with {pong.returncode}")
        return json.loads(done.stdout)
    finally:
        if pong is not None and pong.poll() is None:
            pong.kill()
            pong.wait()
        transport.close()


def python_c_round_trips(exe: str, n: int, cpus: tuple[int, int]) -> list[float]:
    """Python pings (as ``round_trips("flowc", ...)`` does) and ``ring_rtt pong`` echoes; n/10 warm-up round trips.

    Returns:
        Round-trip times in µs.
    """
    os.sched_setaffinity(0, {cpus[0]})
    transport = FlowcTransport(64)
    pong = None
    try:
        pong = subprocess.Popen([exe, "pong", *transport.names, str(n)], preexec_fn=_pinned(cpus[1]))
        samples = _ping(*transport.ends("parent"), n, n // 10, 64)
        if pong.wait(timeout=30) != 0:
            raise RuntimeError(f"{exe} pong exited with {pong.returncode}")
    finally:
        if pong is not None and pong.poll() is None:
            pong.kill()
            pong.wait()
        transport.close()
    return samples


def measure_native(quick: bool, cpus: tuple[int, int], result: dict[str, Any]) -> None:
    """Build and run the native round trips, adding their keys (``None`` when not measured) and notes to ``result``.

    Args:
        quick: Fewer round trips.
        cpus: The two cores to pin to.
        result: The result dictionary of ``measure``.
    """
    scale = 1 if quick else 5
    n, py_n = 100_000 * scale, 20_000 * scale
    for key in NATIVE_LABELS:
        for q in ("p50", "p99", "p999"):
            result[f"{key}_rtt_{q}_ns"] = None
    for q in ("p50", "p99", "p999"):
        result[f"flowc_py_c_rtt_{q}_us"] = None
    with tempfile.TemporaryDirectory(prefix="flowc-bench-") as workdir:
        built, notes = build_native(workdir)
        if "floor" in built and cpus[0] == cpus[1]:
            # Two busy-waiters on one core hand over only when the scheduler preempts one: no floor to speak of.
            del built["floor"]
            notes.append("one CPU only: no cache-line floor")
        for key, exe in built.items():
            run = floor_round_trips if key == "floor" else native_round_trips
            for q, value in run(exe, n, cpus).items():
                if q != "n":
                    result[f"{key}_rtt_{q}"] = value
        if "c" in built:
            rtt = python_c_round_trips(built["c"], py_n, cpus)
            for q, key in ((0.5, "p50"), (0.99, "p99"), (0.999, "p999")):
                result[f"flowc_py_c_rtt_{key}_us"] = round(percentile(rtt, q), 2)
    result["native_notes"] = notes


def measure(quick: bool, cpus: tuple[int, int]) -> dict[str, Any]:
    """Run every measurement once.

    Args:
        quick: Fewer iterations (the whole run takes under a minute).
        cpus: The two cores to pin to (equal when only one is available).

    Returns:
        The flat result dictionary that ``--json`` prints.
    """
    scale = 1 if quick else 5
    pp_n, pp_warm = 20_000 * scale, 2_000 * scale
    slow = {"mpq": 2}
    result: dict[str, Any] = {"cpus": list(cpus), "quick": quick}
    for kind in TRANSPORTS:
        div = slow.get(kind, 1)
        rtt = round_trips(kind, pp_n // div, pp_warm // div, cpus)
        for q, key in ((0.5, "p50"), (0.99, "p99"), (0.999, "p999")):
            result[f"{kind}_rtt_{key}_us"] = round(percentile(rtt, q), 2)
        for size, n in ((64, 100_000 * scale), (4096, 50_000 * scale)):
            result[f"{kind}_msgs_per_s_{size}"] = round(stream(kind, n // div, size, cpus))
    result["flowc_idle_cpu_pct"] = round(idle_cpu_pct(1.0 if quick else 3.0, cpus[1]), 2)
    shared = (cpus[0], cpus[0])
    for kind in ("flowc", "pipe"):
        rtt = round_trips(kind, 5_000 * scale, 500 * scale, shared)
        result[f"{kind}_shared_core_rtt_p50_us"] = round(percentile(rtt, 0.5), 2)
        result[f"{kind}_shared_core_rtt_p99_us"] = round(percentile(rtt, 0.99), 2)
    measure_native(quick, cpus, result)
    plain, watched = watched_streams(WATCHED_MESSAGES * scale, cpus)
    result["node_msgs_per_s_64"], result["node_watched_msgs_per_s_64"] = round(plain), round(watched)
    result["goals"] = goals(result)
    return result


def goals(r: dict[str, Any]) -> dict[str, bool]:
    """Each goal of the data path, met or not, from one run's results (a native goal only when it was measured)."""
    met = {
        "rtt_p50 <= pyzmq/20": r["flowc_rtt_p50_us"] <= r["pyzmq_rtt_p50_us"] / 20,
        "rtt_p99 <= 3 x p50": r["flowc_rtt_p99_us"] <= 3 * r["flowc_rtt_p50_us"],
        "64 B stream >= os.pipe": r["flowc_msgs_per_s_64"] >= r["pipe_msgs_per_s_64"],
        "idle consumer < 5% CPU": r["flowc_idle_cpu_pct"] < 5,
        "shared-core rtt <= 10 x pipe": r["flowc_shared_core_rtt_p50_us"] <= 10 * r["pipe_shared_core_rtt_p50_us"],
    }
    if r.get("c_rtt_p50_ns") is not None and r.get("floor_rtt_p50_ns") is not None:
        met["C<->C rtt_p50 <= 2 x floor"] = r["c_rtt_p50_ns"] <= 2 * r["floor_rtt_p50_ns"]
    if r.get("flowc_py_c_rtt_p50_us") is not None:
        met["Python<->C rtt <= Python<->Python"] = r["flowc_py_c_rtt_p50_us"] <= r["flowc_rtt_p50_us"]
    met["watched stream >= 0.95 x unwatched"] = r["node_watched_msgs_per_s_64"] >= 0.95 * r["node_msgs_per_s_64"]
    return met


def table(header: list[str], rows: list[list[str]]) -> list[str]:
    """A Markdown table, first column left-aligned and the others right-aligned."""
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]

    def line(cells: list[str]) -> str:
        padded = [c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(cells, widths, strict=True))]
        return "| " + " | ".join(padded) + " |"

    return [line(header), "|" + "|".join("-" * (w + 2) for w in widths) + "|", *map(line, rows)]


def render(r: dict[str, Any], note: str) -> str:
    """The human-readable report: tables with ratios to the same run's baselines, then the goals."""
    rtt, streams = [], []
    for kind, label in LABELS.items():
        p50, m64, m4k = r[f"{kind}_rtt_p50_us"], r[f"{kind}_msgs_per_s_64"], r[f"{kind}_msgs_per_s_4096"]
        rtt.append([label, *(f"{r[f'{kind}_rtt_{q}_us']:.2f}" for q in ("p50", "p99", "p999")),
                    f"{p50 / r['pipe_rtt_p50_us']:.3f}", f"{p50 / r['pyzmq_rtt_p50_us']:.3f}"])
        streams.append([label, f"{m64:,}", f"{m64 / r['pipe_msgs_per_s_64']:.2f}", f"{m4k:,}",
                        f"{m4k / r['pipe_msgs_per_s_4096']:.2f}", f"{m4k * 4096 / 1e6:,.0f}"])
    shared = [[LABELS[kind], f"{r[f'{kind}_shared_core_rtt_p50_us']:.2f}", f"{r[f'{kind}_shared_core_rtt_p99_us']:.2f}"]
              for kind in ("flowc", "pipe")]
    details = {
        "rtt_p50 <= pyzmq/20": f"{r['flowc_rtt_p50_us']:.2f} vs {r['pyzmq_rtt_p50_us'] / 20:.2f} µs",
        "rtt_p99 <= 3 x p50": f"p99/p50 = {r['flowc_rtt_p99_us'] / r['flowc_rtt_p50_us']:.2f}",
        "64 B stream >= os.pipe": f"{r['flowc_msgs_per_s_64'] / r['pipe_msgs_per_s_64']:.2f} x pipe",
        "idle consumer < 5% CPU": f"{r['flowc_idle_cpu_pct']:.2f}%",
        "shared-core rtt <= 10 x pipe":
            f"{r['flowc_shared_core_rtt_p50_us'] / r['pipe_shared_core_rtt_p50_us']:.2f} x pipe",
        "watched stream >= 0.95 x unwatched":
            f"{r['node_watched_msgs_per_s_64']:,} vs {r['node_msgs_per_s_64']:,} msgs/s "
            f"({r['node_watched_msgs_per_s_64'] / r['node_msgs_per_s_64']:.3f} x)",
    }
    native, from_python, native_details = render_native(r)
    details.update(native_details)
    watched = ["median of 3", f"{r['node_msgs_per_s_64']:,}", f"{r['node_watched_msgs_per_s_64']:,}",
               f"{r['node_watched_msgs_per_s_64'] / r['node_msgs_per_s_64']:.3f}"]
    return "\n".join([
        note, "", "Round trip, 64 B (µs)",
        *table(["transport", "p50", "p99", "p99.9", "p50 ÷ pipe", "p50 ÷ pyzmq"], rtt),
        "", "One-way stream (messages/s)",
        *table(["transport", "64 B", "÷ pipe", "4 KiB", "÷ pipe", "4 KiB MB/s"], streams),
        "", "Both ends on one core, round trip 64 B (µs)", *table(["transport", "p50", "p99"], shared),
        "", "Native round trip, 64 B, one process per end (ns)", *native,
        "", "flowc round trip from a Python ping, 64 B (µs)", *from_python,
        "", f"Idle flowc consumer: {r['flowc_idle_cpu_pct']:.2f}% of a core",
        "", "64 B stream through a real node's rings, watched: flowc metrics + a scrape every 100 ms (msgs/s)",
        *table(["", "unwatched", "watched", "ratio"], [watched]),
        "", "Goals",
        *(f"  [{'met' if met else 'MISSED'}] {goal:<34} {details[goal]}" for goal, met in r["goals"].items()),
    ])


def render_native(r: dict[str, Any]) -> tuple[list[str], list[str], dict[str, str]]:
    """The native table, the Python-ping table and the details of the native goals."""
    floor = r.get("floor_rtt_p50_ns")
    native = [[label, *(f"{r[f'{key}_rtt_{q}_ns']:,.0f}" for q in ("p50", "p99", "p999")),
               f"{r[f'{key}_rtt_p50_ns'] / floor:.2f}" if floor else "–"]
              for key, label in NATIVE_LABELS.items() if r.get(f"{key}_rtt_p50_ns") is not None]
    py = r["flowc_rtt_p50_us"]
    from_python = [[label, *(f"{r[f'{kind}_rtt_{q}_us']:.2f}" for q in ("p50", "p99", "p999")),
                    f"{r[f'{kind}_rtt_p50_us'] / py:.3f}"]
                   for kind, label in (("flowc", "Python↔Python"), ("flowc_py_c", "Python↔C"))
                   if r.get(f"{kind}_rtt_p50_us") is not None]
    details = {}
    if r.get("c_rtt_p50_ns") is not None and floor:
        details["C<->C rtt_p50 <= 2 x floor"] = f"{r['c_rtt_p50_ns']:,.0f} vs {2 * floor:,.0f} ns"
    if r.get("flowc_py_c_rtt_p50_us") is not None:
        details["Python<->C rtt <= Python<->Python"] = f"{r['flowc_py_c_rtt_p50_us'] / py:.3f} x Python<->Python"
    notes = [f"  note: {note}" for note in r.get("native_notes", [])]
    return ([*table(["transport", "p50", "p99", "p99.9", "p50 ÷ floor"], native), *notes],
            table(["ends", "p50", "p99", "p99.9", "p50 ÷ Python↔Python"], from_python), details)


def main() -> int:
    """Parse arguments, pin, measure, print; exit 0 (goals are reported, not enforced)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer iterations; finishes in under a minute")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of the tables")
    args = parser.parse_args()
    allowed = sorted(os.sched_getaffinity(0))
    if len(allowed) >= 2:
        cpus = (allowed[0], allowed[1])
        note = f"pinned: parent/producer on cpu{cpus[0]}, child/consumer on cpu{cpus[1]}"
    else:
        cpus = (allowed[0], allowed[0])
        note = f"only one CPU is available (cpu{allowed[0]}): every 'two-core' figure shares that core"
    result = measure(args.quick, cpus)
    result["note"] = note
    print(json.dumps(result, sort_keys=True) if args.json else render(result, note))
    return 0


if __name__ == "__main__":
    sys.exit(main())
