"""Route benchmark: a flowc route end to end against raw pyzmq DEALER → ROUTER over loopback TCP, in one run.

The flowc side is what a user runs: one document with two nodes on this machine, ``flowc keys generate`` and two
``flowc launch`` processes; ``flowc.actors:synthetic_producer`` on node ``a`` → ring → route sender → TCP →
receiver → ring → ``flowc.actors:latency_sink`` on node ``b``, the route authenticated (Noise) and its codec
``none`` or ``lz4``. Each node is one CPU of this machine, its actor and its bridge alike (``cpu`` and
``bridge_cpus``), as two one-core machines would be; the baseline's two processes are pinned the same way.
The baseline is two processes, a DEALER sending the same timestamped messages paced the
same way (the producer's pacer) and a ROUTER receiving them, measured with and without CURVE. Latency is one
way, send to receipt, on the machine's monotonic clock; throughput at saturation is messages over the time from
the first to the last arrival. Ratios are flowc (authenticated and encrypted) over the same-run baseline with
CURVE, raw pyzmq's authenticated and encrypted mode.

Goals (issue 13): p50 ≤ 2× and p99 ≤ 3× raw pyzmq's, p99 < 1 ms at 20k msgs/s, p99.9 < 5 ms; saturation
throughput ≥ 0.8× raw for 64 B, ≥ 1× for 4 KiB with lz4.

Usage::

    python bench/route.py            # rates 1k, 20k, 100k msgs/s and saturation; 64 B and 4 KiB; none and lz4
    python bench/route.py --quick    # 20k msgs/s and saturation, 64 B none and 4 KiB lz4
    python bench/route.py --json     # one JSON object instead of the table
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import socket
import struct
import subprocess
import sys
import tempfile
import time
from array import array
from pathlib import Path
from typing import Any

CTX = mp.get_context("spawn")
HEADER = struct.Struct("<QQI")  # send time (CLOCK_MONOTONIC ns), sequence, producer id: the producer's header
SECONDS = 4.0  # each paced run lasts about this long
SATURATION_COUNT = {64: 200_000, 4096: 50_000}


def free_port() -> int:
    """A free TCP port on loopback."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def percentiles(samples: array) -> dict[str, float]:
    """p50/p99/p99.9 of nanosecond samples, in microseconds."""
    ordered = sorted(samples)
    if not ordered:
        return {"p50_us": 0.0, "p99_us": 0.0, "p999_us": 0.0}

    def at(q: float) -> float:
        return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))] / 1000, 1)

    return {"p50_us": at(0.50), "p99_us": at(0.99), "p999_us": at(0.999)}


def pace(rate: float, count: int, send: Any) -> None:
    """Send ``count`` messages at ``rate`` per second (0: as fast as possible) with the synthetic producer's pacer."""
    from flowc.runtime.actors import Pacer

    pacer = Pacer(rate)
    for seq in range(count):
        pacer.wait(seq)
        send(seq)


def raw_receiver(endpoint: str, count: int, keys: tuple[bytes, bytes] | None, ready: Any, results: Any) -> None:
    """ROUTER: receive ``count`` messages, record one-way latencies and arrival times."""
    import zmq

    os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[-1]})
    ctx = zmq.Context()
    sock = ctx.socket(zmq.ROUTER)
    if keys is not None:
        sock.curve_server = True
        sock.curve_publickey, sock.curve_secretkey = keys
    sock.bind(endpoint)
    ready.set()
    samples = array("q")
    first = last = 0
    while len(samples) < count:
        _, data = sock.recv_multipart()
        last = time.monotonic_ns()
        first = first or last
        samples.append(last - HEADER.unpack_from(data)[0])
    results.put((samples.tobytes(), first, last))
    sock.close(0)
    ctx.term()


def raw_sender(endpoint: str, rate: float, size: int, count: int, keys: tuple[bytes, bytes, bytes] | None) -> None:
    """DEALER: send ``count`` timestamped messages of ``size`` bytes at ``rate``."""
    import zmq

    os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})
    ctx = zmq.Context()
    sock = ctx.socket(zmq.DEALER)
    sock.setsockopt(zmq.SNDHWM, 0)
    if keys is not None:
        sock.curve_publickey, sock.curve_secretkey, sock.curve_serverkey = keys
    sock.connect(endpoint)
    body = bytearray(size)
    time.sleep(0.3)  # connected before the clock starts

    def send(seq: int) -> None:
        HEADER.pack_into(body, 0, time.monotonic_ns(), seq, 1)
        sock.send(body)

    pace(rate, count, send)
    sock.close(linger=10_000)
    ctx.term()


def raw_zmq(rate: float, size: int, count: int, curve: bool) -> dict[str, Any]:
    """The baseline: one paced DEALER → ROUTER stream between two processes."""
    import zmq

    server_public, server_secret = zmq.curve_keypair()
    client_public, client_secret = zmq.curve_keypair()
    endpoint = f"tcp://127.0.0.1:{free_port()}"
    ready, results = CTX.Event(), CTX.Queue()
    receiver = CTX.Process(target=raw_receiver, args=(endpoint, count, (server_public, server_secret)
                                                      if curve else None, ready, results))
    receiver.start()
    ready.wait(30)
    sender = CTX.Process(target=raw_sender, args=(endpoint, rate, size, count, (client_public, client_secret,
                                                                               server_public) if curve else None))
    sender.start()
    raw, first, last = results.get(timeout=300)
    sender.join(30)
    receiver.join(30)
    samples = array("q")
    samples.frombytes(raw)
    return {**percentiles(samples), "msgs_per_s": round((count - 1) / ((last - first) / 1e9)) if last > first else 0,
            "count": len(samples)}


DOCUMENT = """\
actors:
  feed: {{type: producer, outputs: [ticks], run: "flowc.actors:synthetic_producer",
          params: {{rate: {rate}, size: {size}, count: {count}}}}}
  sink: {{type: consumer, inputs: [ticks], run: "flowc.actors:latency_sink"}}
nodes:
  a:
    hostname: localhost
    bridge_cpus: [0]
    actors: {{feed: {{cpu: [0]}}}}
    local_channels: {{ticks: {{buffer_size: 4MiB}}}}
  b:
    hostname: localhost
    bridge_cpus: [1]
    actors: {{sink: {{cpu: [1]}}}}
    local_channels: {{ticks: {{buffer_size: 4MiB}}}}
inter_node:
  feed_route: {{source: a.ticks, targets: [b], compression: {codec}}}
"""


def flowc_route(rate: float, size: int, count: int, codec: str, work: Path) -> dict[str, Any]:
    """The flowc route end to end: two launchers of one document, the sink's report read back."""
    run = work / f"route-{int(rate)}-{size}-{codec}-{time.monotonic_ns()}"
    run.mkdir()
    (run / "route.yaml").write_text(DOCUMENT.format(rate=int(rate), size=size, count=count, codec=codec))
    flowc = [sys.executable, "-m", "flowc"]
    subprocess.run([*flowc, "build", str(run / "route.yaml"), "-o", str(run / "out"), "-t", "plan"], check=True,
                   capture_output=True)
    plan = run / "out" / "flowc" / "plan.json"
    data = json.loads(plan.read_text())
    data["routes"]["feed_route"]["port"] = free_port()
    plan.write_text(json.dumps(data))
    subprocess.run([*flowc, "keys", "generate", str(plan), "-o", str(run / "keys")], check=True, capture_output=True)
    expected = count / rate if rate else count / 20_000
    common = ["--keys", str(run / "keys"), "--oversubscribe"]
    b = subprocess.Popen([*flowc, "launch", str(plan), "--node", "b", "--report", str(run / "b.json"),
                          "--duration", str(expected + 8), *common], stderr=subprocess.DEVNULL)
    time.sleep(1.0)
    a = subprocess.run([*flowc, "launch", str(plan), "--node", "a", "--report", str(run / "a.json"), *common],
                       stderr=subprocess.DEVNULL, timeout=expected + 120, check=False)
    # The sink ends when b stops; b's duration is a bound, so stop it once the route has drained.
    time.sleep(1.0)
    b.send_signal(2)
    b.wait(60)
    report = json.loads((run / "b.json").read_text())
    sink = report["sinks"]["sink"]
    latency = report.get("latency_us") or {}
    first, last = sink.get("first_arrival_ns", 0), sink.get("last_arrival_ns", 0)
    return {"p50_us": round(latency.get("p50", 0.0), 1), "p99_us": round(latency.get("p99", 0.0), 1),
            "p999_us": round(latency.get("p999", 0.0), 1),
            "msgs_per_s": round((sink["count"] - 1) / ((last - first) / 1e9)) if last > first else 0,
            "count": sink["count"], "out_of_order": sink["out_of_order"], "launcher_a": a.returncode}


def measure(quick: bool) -> dict[str, Any]:
    """Every configuration: the baselines (plain and CURVE) and the flowc route."""
    if quick:
        configs = [(20_000, 64, "none"), (0, 64, "none"), (0, 4096, "lz4")]
    else:
        configs = [(rate, size, codec) for size in (64, 4096) for codec in ("none", "lz4")
                   for rate in (1_000, 20_000, 100_000, 0)]
    rows = []
    with tempfile.TemporaryDirectory(prefix="flowc-route-bench-") as tmp:
        for rate, size, codec in configs:
            count = int(rate * SECONDS) if rate else SATURATION_COUNT[size]
            plain = raw_zmq(rate, size, count, curve=False)
            curve = raw_zmq(rate, size, count, curve=True)
            route = flowc_route(rate, size, count, codec, Path(tmp))
            rows.append({"rate": rate, "size": size, "codec": codec, "messages": count, "raw": plain,
                         "raw_curve": curve, "flowc": route, "ratios_vs_curve": ratios(route, curve)})
    return {"cpus": sorted(os.sched_getaffinity(0)), "rows": rows}


def ratios(route: dict[str, Any], base: dict[str, Any]) -> dict[str, float | None]:
    """Flowc over the baseline, per figure."""
    out: dict[str, float | None] = {}
    for key in ("p50_us", "p99_us", "p999_us", "msgs_per_s"):
        out[key] = round(route[key] / base[key], 2) if base.get(key) else None
    return out


def render(result: dict[str, Any]) -> str:
    """The table."""
    lines = [f"route benchmark over loopback; cpus {result['cpus']}; latency one way in µs; flowc routes use "
             "Noise, ratios are against raw pyzmq with CURVE", ""]
    head = f"{'rate':>7} {'size':>5} {'codec':>5} | {'':>6}{'p50':>9} {'p99':>9} {'p99.9':>9} {'msgs/s':>9}"
    lines += [head, "-" * len(head)]
    for row in result["rows"]:
        rate = "sat" if row["rate"] == 0 else f"{row['rate'] // 1000}k"
        for label, key in (("raw", "raw"), ("rawC", "raw_curve"), ("flowc", "flowc")):
            r = row[key]
            lines.append(f"{rate:>7} {row['size']:>5} {row['codec']:>5} | {label:>6}{r['p50_us']:>9} "
                         f"{r['p99_us']:>9} {r['p999_us']:>9} {r['msgs_per_s']:>9}")
        q = row["ratios_vs_curve"]
        lines.append(f"{'':>21} | {'ratio':>6}{q['p50_us']!s:>9} {q['p99_us']!s:>9} {q['p999_us']!s:>9} "
                     f"{q['msgs_per_s']!s:>9}")
    return "\n".join(lines)


def main() -> int:
    """Measure and print (goals are reported, not enforced)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="three configurations instead of sixteen")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of the table")
    args = parser.parse_args()
    result = measure(args.quick)
    print(json.dumps(result, indent=2, sort_keys=True) if args.json else render(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
