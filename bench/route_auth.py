"""What authentication costs a route: a flowc route with CURVE against the same route without, in one run.

A :class:`Sender` and a :class:`Receiver` run in two processes on loopback (the bridges the launcher starts),
pinned to two different cores when there are two. Each configuration streams a fixed number of messages of one
size through the route and is timed from the first message taken to the last one delivered; the table shows
messages per second for both and their ratio (CURVE over unauthenticated, higher is better), per size.

Usage::

    python bench/route_auth.py            # 200,000 messages of 64 B, 20,000 of 4 KiB; three rounds each
    python bench/route_auth.py --quick    # a tenth of that
    python bench/route_auth.py --json     # one JSON object instead of the table
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import socket
import statistics
import threading
import time
from typing import Any

from flowc.runtime.bridge import Sender
from flowc.runtime.bridge_receiver import Receiver
from flowc.runtime.route_keys import CurveKeys

CTX = mp.get_context("spawn")


def free_port() -> int:
    """A free TCP port on loopback."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def pin(cpu: int) -> None:
    """Pin this process to ``cpu`` when the machine has it."""
    allowed = sorted(os.sched_getaffinity(0))
    os.sched_setaffinity(0, {allowed[cpu % len(allowed)]})


def receive(endpoint: str, count: int, keys: CurveKeys | None, done: Any) -> None:
    """Run a receiver until ``count`` messages arrived, then report the time of the last one."""
    pin(1)
    stop = threading.Event()
    got = [0]

    def deliver(_message: bytes) -> None:
        got[0] += 1
        if got[0] == count:
            done.put(time.perf_counter())
            stop.set()

    Receiver(endpoint, "bench", max_message=1 << 20, auth=keys).run(deliver, stop)


def stream(size: int, count: int, auth: bool) -> float:
    """Messages per second through one route of ``size``-byte messages."""
    sender_keys, receiver_keys = CurveKeys.pair() if auth else (None, None)
    endpoint = f"tcp://127.0.0.1:{free_port()}"
    done = CTX.Queue()
    receiver = CTX.Process(target=receive, args=(endpoint, count, receiver_keys, done))
    receiver.start()
    pin(0)
    payload = os.urandom(size)
    left = [count]
    started = [0.0]

    def take(_timeout: float) -> bytes:
        if left[0] == 0:
            raise EOFError
        if left[0] == count:
            started[0] = time.perf_counter()
        left[0] -= 1
        return payload

    Sender(endpoint, "bench", auth=sender_keys, window=4096).run(take, threading.Event())
    finished = done.get(timeout=120)
    receiver.join(30)
    return count / (finished - started[0])


def main() -> None:
    """Measure and print."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a tenth of the messages")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--rounds", type=int, default=3, help="runs per configuration; the median is shown")
    args = parser.parse_args()
    scale = 10 if args.quick else 1
    results: dict[str, Any] = {"cpus": sorted(os.sched_getaffinity(0)), "sizes": {}}
    for size, count in ((64, 200_000 // scale), (4096, 20_000 // scale)):
        rates = {"none": [], "curve": []}
        for _ in range(args.rounds):  # interleaved, so drift on the machine hits both alike
            for mode in ("none", "curve"):
                rates[mode].append(stream(size, count, mode == "curve"))
        none, curve = statistics.median(rates["none"]), statistics.median(rates["curve"])
        results["sizes"][str(size)] = {"messages": count, "none_msgs_per_s": round(none),
                                       "curve_msgs_per_s": round(curve), "curve_over_none": round(curve / none, 3)}
    if args.json:
        print(json.dumps(results, indent=2))
        return
    print(f"route throughput over loopback, cpus {results['cpus']}, median of {args.rounds}")
    print(f"{'size':>6} {'messages':>9} {'no auth msg/s':>14} {'CURVE msg/s':>12} {'CURVE / none':>13}")
    for size, row in results["sizes"].items():
        print(f"{size:>6} {row['messages']:>9} {row['none_msgs_per_s']:>14,} {row['curve_msgs_per_s']:>12,} "
              f"{row['curve_over_none']:>13.3f}")


if __name__ == "__main__":
    main()
